//! `provisioner apply -f FILE` and `provisioner get KIND [NAME]`: Tinkerbell's objects in
//! and out, as kubectl does it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use provisioner::store::{Store, StoreError};
use provisioner::tinkerbell::convert::{
    Applied, apply_objects, hardware_object, template_object, workflow_object,
};
use provisioner::tinkerbell::objects::{DEFAULT_NAMESPACE, Kind, parse_objects};
use serde_json::{Value, json};

use super::output::Output;

/// `provisioner apply`.
#[derive(Args)]
pub struct ApplyArgs {
    /// A YAML (or JSON) file of Tinkerbell Hardware, Template and Workflow objects
    /// (`tinkerbell.org/v1alpha1`; v1alpha2 Hardware), documents separated by `---`, or a
    /// `kind: List`; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE.yaml")]
    file: PathBuf,
}

/// How `get` writes objects.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One line per object: its id and a summary.
    Table,
    /// Tinkerbell's objects as YAML (a `List` when more than one may match).
    Yaml,
    /// Tinkerbell's objects as JSON (a `List` when more than one may match).
    Json,
}

/// `provisioner get`.
#[derive(Args)]
pub struct GetArgs {
    /// hardware (hw), template (tpl) or workflow (wf); plurals and `<kind>.tinkerbell.org`
    /// work too.
    #[arg(value_name = "KIND")]
    kind: String,
    /// The object's name (in --namespace) or its `namespace/name` id; every object when
    /// absent (of every namespace, unless --namespace is given).
    name: Option<String>,
    /// The namespace of NAME (and the only one listed without NAME).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
}

pub fn apply(store: &Store, out: &Output, args: &ApplyArgs) -> anyhow::Result<()> {
    let (text, source) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the objects from standard input")?;
        (text, "standard input".to_string())
    } else {
        (
            super::output::read(&args.file)?,
            args.file.display().to_string(),
        )
    };
    let objects = parse_objects(&text).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "{source}: nothing applied, fix these first:\n  {}",
            lines.join("\n  ")
        )
    })?;
    anyhow::ensure!(
        !objects.is_empty(),
        "{source} holds no objects: expected Tinkerbell Hardware, Template or Workflow YAML"
    );
    for object in &objects {
        for warning in &object.warnings {
            eprintln!(
                "warning: {} ({}): {warning}",
                object.location,
                object.label()
            );
        }
    }
    let results = apply_objects(store, &objects).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "{source}: nothing applied, fix these first:\n  {}",
            lines.join("\n  ")
        )
    })?;
    let mut failed = Vec::new();
    let mut applied: Vec<&Applied> = Vec::new();
    for result in &results {
        match result {
            Ok(done) => {
                if !out.json {
                    println!("{done}");
                }
                applied.push(done);
            }
            Err(error) => failed.push(error.to_string()),
        }
    }
    if out.json {
        let list: Vec<Value> = applied
            .iter()
            .map(|done| json!({"object": done.object, "outcome": done.outcome}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} objects not applied:\n  {}",
            failed.len(),
            results.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

pub fn get(store: &Store, out: &Output, args: &GetArgs) -> anyhow::Result<()> {
    let kind = Kind::from_resource(&args.kind).with_context(|| {
        format!(
            "{:?} is not a kind `get` knows: write hardware (hw), template (tpl) or workflow (wf)",
            args.kind
        )
    })?;
    let id = args.name.as_deref().map(|name| {
        if name.contains('/') {
            name.to_string()
        } else {
            let namespace = args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            format!("{namespace}/{name}")
        }
    });
    let not_found = |error: StoreError, id: &str| match error {
        StoreError::NotFound { .. } => anyhow::anyhow!(
            "{} {id:?} not found: `provisioner get {}` lists them",
            kind.resource(),
            args.kind
        ),
        other => other.into(),
    };
    // Each row: the object and its table line.
    let rows: Vec<(Value, String)> = match kind {
        Kind::Hardware => one_or_all(
            id.as_deref(),
            |id| store.get_hardware(id),
            || store.list_hardware(),
            not_found,
        )?
        .iter()
        .map(|h| {
            let line = format!("{}  {}  {}", h.id, h.macs.join(","), h.ips.join(","));
            (hardware_object(h), line)
        })
        .collect(),
        Kind::Template => one_or_all(
            id.as_deref(),
            |id| store.get_template(id),
            || store.list_templates(),
            not_found,
        )?
        .iter()
        .map(|t| (template_object(t), format!("{}  {}", t.id, t.created_at)))
        .collect(),
        Kind::Workflow => one_or_all(
            id.as_deref(),
            |id| store.get_workflow(id),
            || store.list_workflows(),
            not_found,
        )?
        .iter()
        .map(|w| {
            let line = format!("{}  {}  template {}", w.id, w.state, w.template_id);
            (workflow_object(w), line)
        })
        .collect(),
    };
    let rows: Vec<(Value, String)> = match (&id, &args.namespace) {
        (None, Some(namespace)) => rows
            .into_iter()
            .filter(|(object, _)| {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(namespace.as_str())
            })
            .collect(),
        _ => rows,
    };
    let document = if id.is_some() {
        rows.first()
            .map(|(object, _)| object.clone())
            .unwrap_or(Value::Null)
    } else {
        json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": rows.iter().map(|(object, _)| object.clone()).collect::<Vec<_>>(),
        })
    };
    match (args.output, out.json) {
        (Format::Json, _) | (Format::Table, true) => {
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        (Format::Yaml, _) => print!("{}", serde_yaml_ng::to_string(&kubectl_order(&document))?),
        (Format::Table, false) => rows.iter().for_each(|(_, line)| println!("{line}")),
    }
    Ok(())
}

/// The record `id` names (its absence said by `not_found`), or every record without an id.
fn one_or_all<T>(
    id: Option<&str>,
    get: impl FnOnce(&str) -> Result<T, StoreError>,
    list: impl FnOnce() -> Result<Vec<T>, StoreError>,
    not_found: impl FnOnce(StoreError, &str) -> anyhow::Error,
) -> anyhow::Result<Vec<T>> {
    match id {
        Some(id) => Ok(vec![get(id).map_err(|error| not_found(error, id))?]),
        None => Ok(list()?),
    }
}

/// The document as YAML with kubectl's key order at the top of each object (`apiVersion`,
/// `kind`, `metadata`, `spec`, `status`, `items`, then the rest); nested keys stay sorted.
fn kubectl_order(value: &Value) -> serde_yaml_ng::Value {
    const FIRST: [&str; 6] = ["apiVersion", "kind", "metadata", "spec", "status", "items"];
    let to_yaml =
        |value: &Value| serde_yaml_ng::to_value(value).unwrap_or(serde_yaml_ng::Value::Null);
    let Value::Object(map) = value else {
        return to_yaml(value);
    };
    let mut ordered = serde_yaml_ng::Mapping::new();
    let rest = map.keys().filter(|key| !FIRST.contains(&key.as_str()));
    for key in FIRST.iter().copied().chain(rest.map(String::as_str)) {
        let Some(field) = map.get(key) else { continue };
        let field = match (key, field) {
            ("items", Value::Array(items)) => {
                serde_yaml_ng::Value::Sequence(items.iter().map(kubectl_order).collect())
            }
            _ => to_yaml(field),
        };
        ordered.insert(serde_yaml_ng::Value::String(key.to_string()), field);
    }
    serde_yaml_ng::Value::Mapping(ordered)
}
