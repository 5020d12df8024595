//! Tinkerbell's objects to the provisioner's records (`apply`) and back (`get`).

use std::collections::BTreeMap;

use bootkit_common::mac::MacAddr;
use serde_json::{Map, Value, json};

use super::Outcome;
use super::objects::{
    HardwareSpecV1alpha1, HardwareSpecV1alpha2, Kind, Object, ObjectError, TemplateSpec, Version,
    WorkflowSpecV1alpha1, parse_objects,
};
use crate::store::{
    ActionRecord, Hardware, HardwareSpec, Store, StoreError, TemplateRecord, Workflow,
};
use crate::template::Template;

/// What applying one object did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// `hardware.tinkerbell.org/default/machine-1`, as kubectl names it.
    pub object: String,
    /// Created, configured or unchanged.
    pub outcome: Outcome,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.object, self.outcome)
    }
}

/// What applying a document of objects did: the objects applied, those the store refused,
/// and the warnings about objects (a field this provisioner ignores, ...). The CLI's `apply`
/// prints it, and the admin API's `POST /api/v1/objects/apply` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApplyReport {
    /// Each object applied, in the order applied.
    pub applied: Vec<Applied>,
    /// Why each refused object was refused, naming it.
    pub failed: Vec<String>,
    /// `document 2 (Hardware default/machine-1): ...`.
    pub warnings: Vec<String>,
}

/// Parses `text` (YAML or JSON: documents separated by `---`, or a `kind: List`) and applies
/// its objects as [`apply_objects`] does. Err: the errors found before anything was applied.
pub fn apply_document(store: &Store, text: &str) -> Result<ApplyReport, Vec<ObjectError>> {
    let objects = parse_objects(text)?;
    let warnings = objects
        .iter()
        .flat_map(|object| {
            object
                .warnings
                .iter()
                .map(|warning| format!("{} ({}): {warning}", object.location, object.label()))
        })
        .collect();
    let mut report = ApplyReport {
        warnings,
        ..ApplyReport::default()
    };
    for result in apply_objects(store, &objects)? {
        match result {
            Ok(applied) => report.applied.push(applied),
            Err(error) => report.failed.push(error.to_string()),
        }
    }
    Ok(report)
}

/// The message for errors that stopped a whole document: each on a line of its own.
pub fn nothing_applied(errors: &[ObjectError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!(
        "nothing applied, fix these first:\n  {}",
        lines.join("\n  ")
    )
}

/// What an object asks of the store, checked before anything is applied.
enum Plan {
    Hardware {
        spec: HardwareSpec,
        /// The object's field of each of `spec.macs`, for errors about one.
        mac_fields: Vec<String>,
    },
    Template {
        data: String,
        /// False for text that only parses once rendered (see [`plan`]).
        checked: bool,
    },
    Workflow {
        template_id: String,
        hardware_id: Option<String>,
        map: BTreeMap<String, String>,
    },
}

/// Applies objects to the store. Every object is checked first: if any is wrong, nothing is
/// applied and every error is returned. Then Hardware and Templates are applied, then
/// Workflows (which refer to them), each kind in file order; each result says what the
/// object did, or why the store refused it (a conflict, a missing reference).
pub fn apply_objects(
    store: &Store,
    objects: &[Object],
) -> Result<Vec<Result<Applied, ObjectError>>, Vec<ObjectError>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for object in objects {
        match plan(object) {
            Ok(plan) => plans.push((object, plan)),
            Err(error) => errors.push(error),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (workflows, others): (Vec<_>, Vec<_>) = plans
        .into_iter()
        .partition(|(_, plan)| matches!(plan, Plan::Workflow { .. }));
    Ok(others
        .into_iter()
        .chain(workflows)
        .map(|(object, plan)| execute(store, object, plan))
        .collect())
}

/// Checks an object and says what it asks of the store.
fn plan(object: &Object) -> Result<Plan, ObjectError> {
    match (object.kind, object.version) {
        (Kind::Hardware, version) => {
            let (spec, mac_fields) = hardware_spec(object, version)?;
            Ok(Plan::Hardware { spec, mac_fields })
        }
        (Kind::Template, Version::V1alpha1) => {
            let spec: TemplateSpec = object.typed_spec()?;
            let data = spec
                .data
                .ok_or_else(|| object.error("spec.data", "missing: the template's YAML"))?;
            // A block scalar the outer document's check skipped: measured on its own.
            crate::limits::check_yaml_depth(&data, crate::limits::DEFAULT_YAML_DEPTH)
                .map_err(|error| object.error("spec.data", error.to_string()))?;
            let checked = match Template::parse(&data) {
                Ok(_) => true,
                // Go template actions other than `{{.key}}` can make the text YAML only
                // once rendered (`DEST_DISK: {{ index .Hardware.Disks 0 }}`); it is checked
                // when a workflow renders it, as upstream does.
                Err(_) if data.contains("{{") => false,
                Err(error) => {
                    return Err(object.error(format!("spec.data: {}", error.field), error.reason));
                }
            };
            Ok(Plan::Template { data, checked })
        }
        (Kind::Workflow, Version::V1alpha1) => {
            let spec: WorkflowSpecV1alpha1 = object.typed_spec()?;
            if spec.disabled == Some(true) {
                return Err(object.error(
                    "spec.disabled",
                    "true is not supported: the provisioner serves every workflow it has; \
                     apply the workflow when it should run",
                ));
            }
            let template = spec
                .template_ref
                .filter(|name| !name.is_empty())
                .ok_or_else(|| object.error("spec.templateRef", "missing: the Template's name"))?;
            Ok(Plan::Workflow {
                template_id: format!("{}/{template}", object.namespace),
                hardware_id: spec
                    .hardware_ref
                    .filter(|name| !name.is_empty())
                    .map(|name| format!("{}/{name}", object.namespace)),
                map: spec.hardware_map.unwrap_or_default(),
            })
        }
        (kind, Version::V1alpha2) => Err(object.error(
            "apiVersion",
            format!(
                "tinkerbell.org/v1alpha2 {} is not supported: v1alpha2 workflows run Task \
                 objects (spec.tasks[].taskRef), which the provisioner does not have; write it \
                 as tinkerbell.org/v1alpha1 (a Template with spec.data, a Workflow with \
                 templateRef, hardwareRef and hardwareMap)",
                kind.name()
            ),
        )),
    }
}

/// Applies one checked object.
fn execute(store: &Store, object: &Object, plan: Plan) -> Result<Applied, ObjectError> {
    let outcome = match plan {
        Plan::Hardware { spec, mac_fields } => {
            let applied = store.apply_hardware(&spec, &object.stored);
            applied
                .map_err(|error| match error {
                    StoreError::Invalid(field) => {
                        let at = field
                            .field
                            .strip_prefix("macs[")
                            .and_then(|rest| rest.strip_suffix(']'))
                            .and_then(|index| index.parse::<usize>().ok())
                            .and_then(|index| mac_fields.get(index));
                        object.error(
                            at.map_or(field.field.as_str(), String::as_str),
                            field.reason,
                        )
                    }
                    other => object.error("(store)", other.to_string()),
                })?
                .0
        }
        Plan::Template { data, checked } => {
            store
                .apply_template(&object.id(), &object.name, &data, checked, &object.stored)
                .map_err(|error| match error {
                    StoreError::Invalid(field) => {
                        object.error(format!("spec.data: {}", field.field), field.reason)
                    }
                    other => object.error("(store)", other.to_string()),
                })?
                .0
        }
        Plan::Workflow {
            template_id,
            hardware_id,
            map,
        } => {
            if let Some(hardware_id) = hardware_id {
                store.get_hardware(&hardware_id).map_err(|_| {
                    object.error(
                        "spec.hardwareRef",
                        format!("no Hardware {hardware_id}: apply it first (or in the same file)"),
                    )
                })?;
            }
            store.get_template(&template_id).map_err(|_| {
                object.error(
                    "spec.templateRef",
                    format!("no Template {template_id}: apply it first (or in the same file)"),
                )
            })?;
            store
                .apply_workflow(&object.id(), &template_id, &map, &object.stored)
                .map_err(|error| match error {
                    StoreError::Invalid(field) => object.error(
                        format!("spec.templateRef {template_id} rendered: {}", field.field),
                        field.reason,
                    ),
                    other => object.error("spec", other.to_string()),
                })?
                .0
        }
    };
    Ok(Applied {
        object: format!("{}/{}", object.kind.resource(), object.id()),
        outcome,
    })
}

/// The hardware record a Hardware object describes (its id, MACs and IPs), and the object's
/// field of each MAC.
fn hardware_spec(
    object: &Object,
    version: Version,
) -> Result<(HardwareSpec, Vec<String>), ObjectError> {
    let mut macs: Vec<(String, String)> = Vec::new();
    let mut ips: Vec<(String, String)> = Vec::new();
    match version {
        Version::V1alpha1 => {
            let spec: HardwareSpecV1alpha1 = object.typed_spec()?;
            for (index, interface) in spec.interfaces.into_iter().flatten().enumerate() {
                let Some(dhcp) = interface.dhcp else { continue };
                let at = format!("spec.interfaces[{index}].dhcp");
                if let Some(mac) = dhcp.mac {
                    macs.push((format!("{at}.mac"), mac));
                }
                if let Some(address) = dhcp.ip.and_then(|ip| ip.address) {
                    ips.push((format!("{at}.ip.address"), address));
                }
            }
        }
        Version::V1alpha2 => {
            let spec: HardwareSpecV1alpha2 = object.typed_spec()?;
            for (mac, interface) in spec.network_interfaces.into_iter().flatten() {
                let at = format!("spec.networkInterfaces.{mac}");
                macs.push((at.clone(), mac));
                let ipam = interface.ipam.unwrap_or_default();
                for (family, ip) in [("ipv4", ipam.ipv4), ("ipv6", ipam.ipv6)] {
                    if let Some(address) = ip.and_then(|ip| ip.address) {
                        ips.push((format!("{at}.ipam.{family}.address"), address));
                    }
                }
            }
        }
    }
    if macs.is_empty() {
        let field = match version {
            Version::V1alpha1 => "spec.interfaces",
            Version::V1alpha2 => "spec.networkInterfaces",
        };
        return Err(object.error(
            field,
            "no interface has a MAC: the provisioner matches machines by MAC (give \
             interfaces[].dhcp.mac, or networkInterfaces keyed by MAC in v1alpha2)",
        ));
    }
    let mut normalized: Vec<String> = Vec::new();
    for (field, mac) in &macs {
        let parsed = mac
            .trim()
            .parse::<MacAddr>()
            .map_err(|error| object.error(field, format!("{mac:?}: {error}")))?
            .to_string();
        if normalized.contains(&parsed) {
            return Err(object.error(field, format!("{parsed} is given for two interfaces")));
        }
        normalized.push(parsed);
    }
    let mut addresses = Vec::new();
    for (field, address) in &ips {
        let parsed: std::net::IpAddr = address
            .trim()
            .parse()
            .map_err(|_| object.error(field, format!("{address:?} is not an IP address")))?;
        addresses.push(parsed.to_string());
    }
    let spec = HardwareSpec {
        id: Some(object.id()),
        macs: normalized,
        ips: addresses,
        attributes: Map::new(),
    };
    Ok((spec, macs.into_iter().map(|(field, _)| field).collect()))
}

/// The object a hardware record is written back as: the applied object, or (for hardware
/// made by `hardware create` or discovery) a v1alpha1 Hardware with its MACs and IPs.
pub fn hardware_object(hardware: &Hardware) -> Value {
    written_back(
        hardware.object.as_ref(),
        "Hardware",
        &hardware.id,
        &hardware.created_at,
        || {
            let interfaces: Vec<Value> = hardware
                .macs
                .iter()
                .enumerate()
                .map(|(index, mac)| match hardware.ips.get(index) {
                    Some(ip) => json!({"dhcp": {"mac": mac, "ip": {"address": ip}}}),
                    None => json!({"dhcp": {"mac": mac}}),
                })
                .collect();
            json!({"interfaces": interfaces})
        },
    )
}

/// The object a template is written back as: the applied object, or a v1alpha1 Template
/// with its data.
pub fn template_object(template: &TemplateRecord) -> Value {
    written_back(
        template.object.as_ref(),
        "Template",
        &template.id,
        &template.created_at,
        || json!({"data": template.data}),
    )
}

/// The object a workflow is written back as: the applied object (or a v1alpha1 Workflow
/// with its template and hardware map), with upstream's `status`: the workflow's state and
/// every task with its actions and their state, times and messages.
pub fn workflow_object(workflow: &Workflow) -> Value {
    let mut object = written_back(
        workflow.object.as_ref(),
        "Workflow",
        &workflow.id,
        &workflow.created_at,
        || json!({"templateRef": workflow.template_id, "hardwareMap": workflow.hardware}),
    );
    if let Value::Object(map) = &mut object {
        map.insert("status".into(), workflow_status(workflow));
    }
    object
}

/// A record as an object: the one it was applied as or, for a record made outside `apply`,
/// a v1alpha1 `kind` named by `id` with `spec()`; either with the record's creation time.
fn written_back(
    applied: Option<&Value>,
    kind: &str,
    id: &str,
    created_at: &str,
    spec: impl FnOnce() -> Value,
) -> Value {
    let mut object = applied.cloned().unwrap_or_else(|| {
        json!({
            "apiVersion": Version::V1alpha1.api_version(),
            "kind": kind,
            "metadata": synthesized_metadata(id),
            "spec": spec(),
        })
    });
    set_creation_timestamp(&mut object, created_at);
    object
}

/// `metadata` for a record made outside `apply`: a `namespace/name` id splits; any other id
/// is the name, in no namespace (re-applying it makes a record `default/<id>`).
fn synthesized_metadata(id: &str) -> Value {
    match id.split_once('/') {
        Some((namespace, name)) => json!({"name": name, "namespace": namespace}),
        None => json!({"name": id}),
    }
}

fn set_creation_timestamp(object: &mut Value, created_at: &str) {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.insert("creationTimestamp".into(), Value::String(created_at.into()));
    }
}

fn workflow_status(workflow: &Workflow) -> Value {
    let mut tasks: Vec<(String, Value)> = Vec::new();
    for action in &workflow.actions {
        let entry = match tasks.iter_mut().find(|(id, _)| *id == action.task_id) {
            Some((_, task)) => task,
            None => {
                tasks.push((
                    action.task_id.clone(),
                    json!({
                        "id": action.task_id,
                        "name": action.task_name,
                        "agentID": action.rendered_worker(),
                        "actions": [],
                    }),
                ));
                let Some((_, task)) = tasks.last_mut() else {
                    continue;
                };
                task
            }
        };
        if let Some(Value::Array(actions)) = entry.get_mut("actions") {
            actions.push(action_status(action));
        }
    }
    let mut status = json!({
        "state": workflow.state.to_string(),
        "globalTimeout": workflow.global_timeout,
        "tasks": tasks.into_iter().map(|(_, task)| task).collect::<Vec<_>>(),
    });
    if let Some(current) = workflow
        .actions
        .iter()
        .find(|action| !matches!(action.state, crate::state::State::Success))
        .or(workflow.actions.last())
        && let Value::Object(map) = &mut status
    {
        map.insert(
            "currentState".into(),
            json!({
                "agentID": current.rendered_worker(),
                "taskID": current.task_id,
                "actionID": current.action_id,
                "state": current.state.to_string(),
                "actionName": current.name,
                "taskName": current.task_name,
            }),
        );
    }
    status
}

/// An action as upstream's `status.tasks[].actions[]` writes it (fields empty in Go are left
/// out, as its `omitempty` does).
fn action_status(action: &ActionRecord) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), json!(action.action_id));
    map.insert("name".into(), json!(action.name));
    map.insert("image".into(), json!(action.image));
    if action.timeout != 0 {
        map.insert("timeout".into(), json!(action.timeout));
    }
    if !action.command.is_empty() {
        map.insert("command".into(), json!(action.command));
    }
    if !action.volumes.is_empty() {
        map.insert("volumes".into(), json!(action.volumes));
    }
    if !action.pid.is_empty() {
        map.insert("pid".into(), json!(action.pid));
    }
    if !action.network.is_empty() {
        map.insert("namespaces".into(), json!({"network": action.network}));
    }
    let environment: BTreeMap<&str, &str> = action
        .environment
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    if !environment.is_empty() {
        map.insert("environment".into(), json!(environment));
    }
    map.insert("state".into(), json!(action.state.to_string()));
    if let Some(start) = &action.started_at {
        map.insert("executionStart".into(), json!(start));
    }
    if let Some(stop) = &action.stopped_at {
        map.insert("executionStop".into(), json!(stop));
    }
    if let Some(ms) = action.duration_ms {
        // Go's time.Duration text, as upstream writes executionDuration.
        let duration = std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        map.insert(
            "executionDuration".into(),
            json!(format!("{}s", duration.as_secs_f64())),
        );
    }
    if !action.message.is_empty() {
        map.insert("message".into(), json!(action.message));
    }
    Value::Object(map)
}
