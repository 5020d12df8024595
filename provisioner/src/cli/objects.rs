//! `provisioner apply -f FILE` and `provisioner get KIND [NAME]`: Tinkerbell's objects in
//! and out, as kubectl does it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use provisioner::tinkerbell::convert::{hardware_object, template_object, workflow_object};
use provisioner::tinkerbell::objects::{DEFAULT_NAMESPACE, Kind};
use serde_json::{Value, json};

use super::output::Output;
use super::remote::{Backend, is_not_found};

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

pub fn apply(backend: &Backend, out: &Output, args: &ApplyArgs) -> anyhow::Result<()> {
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
    let report = backend
        .apply_objects(&text)
        .with_context(|| format!("applying {source}"))?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    let total = report.applied.len() + report.failed.len();
    anyhow::ensure!(
        total > 0,
        "{source} holds no objects: expected Tinkerbell Hardware, Template or Workflow YAML"
    );
    if out.json {
        println!("{}", serde_json::to_string_pretty(&report.applied)?);
    } else {
        report.applied.iter().for_each(|done| println!("{done}"));
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} of {total} objects not applied:\n  {}",
            report.failed.len(),
            report.failed.join("\n  ")
        );
    }
    Ok(())
}

pub fn get(backend: &Backend, out: &Output, args: &GetArgs) -> anyhow::Result<()> {
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
    let not_found = |error: anyhow::Error, id: &str| {
        if is_not_found(&error, &kind.name().to_ascii_lowercase()) {
            anyhow::anyhow!(
                "{} {id:?} not found: `provisioner get {}` lists them",
                kind.resource(),
                args.kind
            )
        } else {
            error
        }
    };
    // Each row: the object and its table line.
    let rows: Vec<(Value, String)> = match kind {
        Kind::Hardware => one_or_all(
            id.as_deref(),
            |id| backend.get_hardware(id),
            || backend.list_hardware(),
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
            |id| backend.get_template(id),
            || backend.list_templates(),
            not_found,
        )?
        .iter()
        .map(|t| (template_object(t), format!("{}  {}", t.id, t.created_at)))
        .collect(),
        Kind::Workflow => one_or_all(
            id.as_deref(),
            |id| backend.get_workflow(id),
            || backend.list_workflows(),
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
    get: impl FnOnce(&str) -> anyhow::Result<T>,
    list: impl FnOnce() -> anyhow::Result<Vec<T>>,
    not_found: impl FnOnce(anyhow::Error, &str) -> anyhow::Error,
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
