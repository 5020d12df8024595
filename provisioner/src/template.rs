//! Tinkerbell's workflow templates: parsing, validation and `{{.key}}` substitution.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A template or workflow input that is wrong, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The field, as a path (`tasks[0].actions[1].image`).
    pub field: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A template as Tinkerbell writes it. Fields a valid template must have are optional
/// here so that [`Template::parse`] can name each missing one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Template format version (Tinkerbell's `"0.1"`); required.
    pub version: Option<String>,
    /// Upstream's template id (tink v0.12 and Tinkerbell write it); kept as written, the
    /// provisioner's own template id is the stored record's.
    pub id: Option<String>,
    /// The template's name; required.
    pub name: Option<String>,
    /// Seconds the whole workflow may take.
    pub global_timeout: Option<i64>,
    /// The tasks, run in order; at least one, names unique.
    #[serde(default)]
    pub tasks: Vec<Task>,
}

/// A task of a template: actions run on one worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The task's name; required.
    pub name: Option<String>,
    /// The worker that runs the task (a hardware id or MAC, or a `{{.device_1}}` placeholder filled
    /// from the workflow's hardware map); required.
    pub worker: Option<String>,
    /// Volumes (`host:container[:ro]`) every action of the task gets.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Environment every action of the task gets.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// The actions, run in order; at least one, names unique.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// One container run of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The action's name; required, unique in its task.
    pub name: Option<String>,
    /// The container image; required.
    pub image: Option<String>,
    /// Seconds; 0 or absent leaves the limit to the worker.
    pub timeout: Option<i64>,
    /// Command and arguments; empty: the image's own.
    #[serde(default)]
    pub command: Vec<String>,
    /// Run when the action times out.
    #[serde(default, rename = "on-timeout")]
    pub on_timeout: Vec<String>,
    /// Run when the action fails.
    #[serde(default, rename = "on-failure")]
    pub on_failure: Vec<String>,
    /// Volumes (`host:container[:ro]`), after the task's.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Environment, overlaid on the task's.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// PID namespace: `host` shares the host's; absent: the container's own (tink v0.12's
    /// key; current Tinkerbell writes `namespaces.pid`).
    pub pid: Option<String>,
    /// The Linux namespaces the action's container runs in (current Tinkerbell).
    pub namespaces: Option<ActionNamespaces>,
}

/// `namespaces:` of an action, as current Tinkerbell writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionNamespaces {
    /// `host`: the host's network; another value names the network the worker puts the
    /// container in; absent: the worker's default.
    pub network: Option<String>,
    /// `host`: the host's PID namespace; absent: the container's own.
    pub pid: Option<String>,
}

impl Action {
    /// The PID namespace asked for, by either key; `None`: the container's own.
    pub fn pid_namespace(&self) -> Option<&str> {
        self.namespaces
            .as_ref()
            .and_then(|namespaces| namespaces.pid.as_deref())
            .or(self.pid.as_deref())
    }

    /// The network namespace asked for (`namespaces.network`); `None`: the worker's default.
    pub fn network_namespace(&self) -> Option<&str> {
        self.namespaces
            .as_ref()
            .and_then(|namespaces| namespaces.network.as_deref())
    }
}

impl Template {
    /// Parses and validates a template. Errors name the field, e.g.
    /// `tasks[0].actions[2].image: missing`.
    pub fn parse(yaml: &str) -> Result<Self, FieldError> {
        let template: Template = serde_yaml_ng::from_str(yaml).map_err(yaml_error)?;
        template.validate()?;
        Ok(template)
    }

    fn validate(&self) -> Result<(), FieldError> {
        required("version", &self.version)?;
        required("name", &self.name)?;
        non_negative("global_timeout", self.global_timeout)?;
        check_named_list("tasks", "task", &self.tasks, |task| &task.name)?;
        for (task_index, task) in self.tasks.iter().enumerate() {
            let at = format!("tasks[{task_index}]");
            required(&format!("{at}.worker"), &task.worker)?;
            let actions = format!("{at}.actions");
            check_named_list(&actions, "action", &task.actions, |action| &action.name)?;
            for (action_index, action) in task.actions.iter().enumerate() {
                let at = format!("{actions}[{action_index}]");
                required(&format!("{at}.image"), &action.image)?;
                non_negative(&format!("{at}.timeout"), action.timeout)?;
                let both_pids = action
                    .namespaces
                    .as_ref()
                    .and_then(|namespaces| namespaces.pid.as_ref())
                    .zip(action.pid.as_ref());
                if let Some((namespaced, legacy)) = both_pids
                    && namespaced != legacy
                {
                    return Err(FieldError::new(
                        format!("{at}.namespaces.pid"),
                        format!(
                            "{namespaced:?} contradicts the action's `pid: {legacy}`; keep one of \
                             the two keys"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks that the list at `at` has at least one item and that each item has a name of
/// its own.
fn check_named_list<T>(
    at: &str,
    what: &str,
    items: &[T],
    name_of: impl Fn(&T) -> &Option<String>,
) -> Result<(), FieldError> {
    if items.is_empty() {
        return Err(FieldError::new(
            at,
            format!("missing: at least one {what} is needed"),
        ));
    }
    let mut seen = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let field = format!("{at}[{index}].name");
        let name = required(&field, name_of(item))?;
        if seen.contains(&name) {
            return Err(FieldError::new(
                field,
                format!("another {what} here is named {name:?}"),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

fn non_negative(field: &str, value: Option<i64>) -> Result<(), FieldError> {
    match value {
        Some(seconds) if seconds < 0 => Err(FieldError::new(field, "must not be negative")),
        _ => Ok(()),
    }
}

fn required<'a>(field: &str, value: &'a Option<String>) -> Result<&'a str, FieldError> {
    match value.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(FieldError::new(field, "missing")),
    }
}

/// serde_yaml_ng reports the path as a prefix (`tasks[0].timeout: invalid type ...`);
/// split it off so the field is named the same way as validation errors name it.
fn yaml_error(error: serde_yaml_ng::Error) -> FieldError {
    let text = error.to_string();
    match text.split_once(": ") {
        Some((path, reason)) if !path.contains(' ') => FieldError::new(path, reason),
        _ => FieldError::new("template", format!("not valid YAML: {text}")),
    }
}

/// Replaces each `{{.key}}` (spaces inside the braces allowed) with `values[key]`.
///
/// Only these forms of Go's template language are supported: `{{.key}}`, a field chain
/// `{{.hardware.status.attributes.inBand.memory.totalBytes}}` (the whole chain is the key), and
/// a list item by position, `{{ (index .hardware.status.attributes.inBand.blockDevices 0).name }}`
/// (the key `hardware.status.attributes.inBand.blockDevices.0.name`). Tinkerbell templates use
/// them to name the workflow's hardware. Anything else between `{{` and `}}` is an error, as is
/// a key the map does not have.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, FieldError> {
    let mut rendered = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        rendered.push_str(&rest[..open]);
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or_else(|| {
            FieldError::new(
                "template",
                format!("unclosed {{{{ in {:?}", excerpt(&rest[open..])),
            )
        })?;
        let expression = after_open[..close].trim();
        let key = value_key(expression).ok_or_else(|| {
            FieldError::new(
                "template",
                format!(
                    "unsupported expression {{{{{expression}}}}}: only {{{{.key}}}}, {{{{.a.b.c}}}} \
                     and {{{{(index .a.list N).field}}}} are supported"
                ),
            )
        })?;
        let value = values.get(&key).ok_or_else(|| {
            FieldError::new(
                "hardware",
                format!(
                    "the template uses {{{{{expression}}}}} but the hardware map has no key {key:?}"
                ),
            )
        })?;
        rendered.push_str(value);
        rest = &after_open[close + 2..];
    }
    rendered.push_str(rest);
    Ok(rendered)
}

/// The keys of `text`'s supported expressions (what [`substitute`] would look up), so that a
/// caller with many optional values (a node's whole inventory) can keep only those used.
pub fn used_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            break;
        };
        keys.extend(value_key(after_open[..close].trim()));
        rest = &after_open[close + 2..];
    }
    keys
}

/// The values key an expression names: `.a.b` is `a.b`; `(index .a.list 2).name` is
/// `a.list.2.name` (Go's `index` of a list by position, then an optional field chain).
fn value_key(expression: &str) -> Option<String> {
    if let Some(chain) = expression.strip_prefix('.') {
        return is_field_chain(chain).then(|| chain.to_string());
    }
    let inner = expression.strip_prefix('(')?;
    let (call, after) = inner.split_once(')')?;
    let mut words = call.split_whitespace();
    let (Some("index"), Some(list), Some(position), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return None;
    };
    let list = list
        .strip_prefix('.')
        .filter(|chain| is_field_chain(chain))?;
    let position: usize = position.parse().ok()?;
    let mut key = format!("{list}.{position}");
    if !after.is_empty() {
        let field = after
            .strip_prefix('.')
            .filter(|chain| is_field_chain(chain))?;
        key.push('.');
        key.push_str(field);
    }
    Some(key)
}

/// `a`, `a.b_c.D1`: names of letters, digits and `_`, joined by dots.
fn is_field_chain(chain: &str) -> bool {
    chain.split('.').all(is_identifier)
}

fn is_identifier(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn excerpt(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
version: "0.1"
name: demo
global_timeout: 600
tasks:
  - name: os
    worker: "{{.device_1}}"
    volumes: ["/dev:/dev"]
    environment: {A: "1"}
    actions:
      - name: one
        image: busybox
        timeout: 60
        command: ["sh", "-c", "true"]
        on-timeout: ["echo", "t"]
        on-failure: ["echo", "f"]
        pid: host
"#;

    #[test]
    fn a_tinkerbell_template_parses() {
        let template = Template::parse(VALID).unwrap();
        let action = &template.tasks[0].actions[0];
        assert_eq!(action.on_timeout, ["echo", "t"]);
        assert_eq!(action.on_failure, ["echo", "f"]);
        assert_eq!(action.pid.as_deref(), Some("host"));
        assert_eq!(template.global_timeout, Some(600));
    }

    #[test]
    fn a_missing_image_names_its_field() {
        let yaml = VALID.replace("        image: busybox\n", "");
        let error = Template::parse(&yaml).unwrap_err();
        assert_eq!(error.to_string(), "tasks[0].actions[0].image: missing");
    }

    #[test]
    fn duplicate_action_names_in_a_task_are_refused() {
        let yaml = VALID.replace(
            "        on-failure",
            "      - name: one\n        image: busybox\n        on-failure",
        );
        let error = Template::parse(&yaml).unwrap_err();
        assert_eq!(error.field, "tasks[0].actions[1].name", "{error}");
    }

    #[test]
    fn a_wrong_type_names_its_field() {
        let yaml = VALID.replace("        timeout: 60", "        timeout: soon");
        let error = Template::parse(&yaml).unwrap_err();
        assert_eq!(error.field, "tasks[0].actions[0].timeout", "{error}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let yaml = VALID.replace("pid: host", "pidd: host");
        let error = Template::parse(&yaml).unwrap_err();
        assert_eq!(error.field, "tasks[0].actions[0]", "{error}");
        assert!(error.reason.contains("pidd"), "{error}");
    }

    /// Current Tinkerbell's keys: a top-level `id` and `namespaces: {network, pid}`.
    #[test]
    fn upstreams_id_and_namespaces_are_accepted_and_honoured() {
        let yaml = VALID
            .replace("version: \"0.1\"", "version: \"0.1\"\nid: 5f1e-template")
            .replace(
                "        pid: host\n",
                "        namespaces:\n          network: host\n          pid: host\n",
            );
        let template = Template::parse(&yaml).unwrap();
        assert_eq!(template.id.as_deref(), Some("5f1e-template"));
        let action = &template.tasks[0].actions[0];
        assert_eq!(action.network_namespace(), Some("host"));
        assert_eq!(action.pid_namespace(), Some("host"));
        // tink v0.12's `pid:` alone means the same PID namespace.
        let legacy = Template::parse(VALID).unwrap();
        assert_eq!(legacy.tasks[0].actions[0].pid_namespace(), Some("host"));
        assert_eq!(legacy.tasks[0].actions[0].network_namespace(), None);
    }

    #[test]
    fn a_misspelt_or_contradicting_namespace_is_named() {
        let misspelt = VALID.replace(
            "        pid: host\n",
            "        namespaces:\n          netwrok: host\n",
        );
        let error = Template::parse(&misspelt).unwrap_err();
        assert!(error.to_string().contains("netwrok"), "{error}");
        let contradicting = VALID.replace(
            "        pid: host\n",
            "        pid: host\n        namespaces:\n          pid: container\n",
        );
        let error = Template::parse(&contradicting).unwrap_err();
        assert_eq!(error.field, "tasks[0].actions[0].namespaces.pid", "{error}");
    }

    #[test]
    fn substitution_replaces_keys_and_names_unknown_ones() {
        let values = BTreeMap::from([("device_1".to_string(), "52:54:00:00:00:01".to_string())]);
        assert_eq!(
            substitute("w: {{.device_1}} {{ .device_1 }}", &values).unwrap(),
            "w: 52:54:00:00:00:01 52:54:00:00:00:01"
        );
        let error = substitute("{{.device_2}}", &values).unwrap_err();
        assert!(error.reason.contains("\"device_2\""), "{error}");
        assert!(substitute("{{ if .x }}", &values).is_err());
        assert!(substitute("{{.device_1", &values).is_err());
    }

    /// Go's field chains and `index` by position, as Tinkerbell templates reach into the
    /// hardware object (`{{ .hardware.status.attributes... }}`).
    #[test]
    fn field_chains_and_index_name_dotted_keys() {
        let values = BTreeMap::from([
            (
                "hardware.memory.totalBytes".to_string(),
                "8589934592".to_string(),
            ),
            ("hardware.disks.1.name".to_string(), "nvme0n1".to_string()),
            ("hardware.disks.1".to_string(), "second".to_string()),
        ]);
        assert_eq!(
            substitute(
                "m={{ .hardware.memory.totalBytes }} d={{ (index .hardware.disks 1).name }} \
                 i={{(index .hardware.disks 1)}}",
                &values
            )
            .unwrap(),
            "m=8589934592 d=nvme0n1 i=second"
        );
        let missing = substitute("{{ (index .hardware.disks 0).name }}", &values).unwrap_err();
        assert!(
            missing.reason.contains("\"hardware.disks.0.name\""),
            "{missing}"
        );
        for unsupported in [
            "{{ .hardware..memory }}",
            "{{ .hardware.memory. }}",
            "{{ (index .hardware.disks x).name }}",
            "{{ (index .hardware.disks 0 1) }}",
            "{{ (len .hardware.disks) }}",
            "{{ (index .hardware.disks 0)name }}",
        ] {
            let error = substitute(unsupported, &values).unwrap_err();
            assert!(
                error.reason.contains("unsupported"),
                "{unsupported}: {error}"
            );
        }
    }

    #[test]
    fn used_keys_are_what_substitution_looks_up() {
        let keys = used_keys(
            "a: {{.device_1}}\nb: {{ (index .hardware.list 1).name }} {{.x.y}} {{ unsupported }}",
        );
        let expected: BTreeSet<String> = ["device_1", "hardware.list.1.name", "x.y"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(keys, expected);
    }
}
