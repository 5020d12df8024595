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

/// Marks where a `{{...}}` expression stood while the template's YAML is parsed: a character of
/// Unicode's private use area, which YAML accepts in every kind of scalar (plain, quoted,
/// block) and which no template needs. [`substitute`] refuses a template that holds it.
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

/// Renders `text` with `values`: each `{{.key}}` (spaces inside the braces allowed) becomes
/// `values[key]`, as DATA. The result is the rendered template as YAML text, ready for
/// [`Template::parse`].
///
/// Only these forms of Go's template language are supported: `{{.key}}`, a field chain
/// `{{.hardware.status.attributes.inBand.memory.totalBytes}}` (the whole chain is the key), and
/// a list item by position, `{{ (index .hardware.status.attributes.inBand.blockDevices 0).name }}`
/// (the key `hardware.status.attributes.inBand.blockDevices.0.name`). Tinkerbell templates use
/// them to name the workflow's hardware. Anything else between `{{` and `}}` is an error, as is
/// a key the map does not have.
///
/// Why values are put in after the YAML is parsed rather than pasted into its text: values
/// come from nodes (a serial, a host name, the hardware inventory) and from the hardware map;
/// pasted into the text, a serial `x"\n  - name: evil` would close its quoted scalar and add an
/// action. Here each expression is first replaced by a mark, the template is parsed with the
/// marks in place (so an expression, quoted or not, is inside exactly one scalar or key), and
/// only then is each mark replaced, inside that string, by its value; the tree is written back
/// out by the YAML emitter, which quotes every string as it needs. A value can therefore never
/// add structure, YAML syntax (anchors, tags, comments) or template syntax (`{{` in a value is
/// text: substitution is one pass over the template's own expressions). Escaping each value
/// where it stands would instead need to know whether it stands in a plain, single- or
/// double-quoted or block scalar, which is the YAML parser's job.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, FieldError> {
    if let Some(mark) = text.chars().find(|c| [MARK_OPEN, MARK_CLOSE].contains(c)) {
        return Err(FieldError::new(
            "template",
            format!(
                "contains U+{:04X}, a private-use character the renderer reserves; remove it",
                u32::from(mark)
            ),
        ));
    }
    let (marked, expressions) = mark_expressions(text, values)?;
    if expressions.is_empty() {
        // Nothing to put in: the text renders as itself (its comments and layout kept).
        return Ok(text.to_string());
    }
    let mut tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(&marked)
        .map_err(|error| FieldError::new("template", format!("not valid YAML: {error}")))?;
    fill(&mut tree, &expressions);
    serde_yaml_ng::to_string(&tree).map_err(|error| {
        FieldError::new(
            "template",
            format!("the rendered template could not be written as YAML: {error}"),
        )
    })
}

/// `text` with each supported expression replaced by a mark (`MARK_OPEN index MARK_CLOSE`),
/// and the value of each mark, by index. Errors name an unclosed or unsupported expression or
/// a key `values` lacks.
fn mark_expressions(
    text: &str,
    values: &BTreeMap<String, String>,
) -> Result<(String, Vec<String>), FieldError> {
    let mut marked = String::with_capacity(text.len());
    let mut expressions = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        marked.push_str(&rest[..open]);
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
        marked.push(MARK_OPEN);
        marked.push_str(&expressions.len().to_string());
        marked.push(MARK_CLOSE);
        expressions.push(value.clone());
        rest = &after_open[close + 2..];
    }
    marked.push_str(rest);
    Ok((marked, expressions))
}

/// Replaces the marks in every string and key of `tree` by their values. The two integer
/// fields of a template (`timeout`, `global_timeout`) given wholly by an expression take the
/// value as an integer when it is one, as the text substitution this replaces did
/// (`timeout: {{.timeout}}`); everywhere else a value stays a string.
fn fill(tree: &mut serde_yaml_ng::Value, expressions: &[String]) {
    use serde_yaml_ng::Value;
    match tree {
        Value::String(text) => {
            if let Some(filled) = filled(text, expressions) {
                *text = filled;
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|item| fill(item, expressions)),
        Value::Mapping(mapping) => {
            let entries = std::mem::take(mapping);
            for (mut key, mut value) in entries {
                fill(&mut key, expressions);
                let integer_field = matches!(key.as_str(), Some("timeout" | "global_timeout"));
                let whole = match &value {
                    Value::String(text) => whole_mark(text),
                    _ => None,
                };
                fill(&mut value, expressions);
                if integer_field
                    && whole.is_some()
                    && let Some(number) = value.as_str().and_then(|text| text.parse::<i64>().ok())
                {
                    value = Value::Number(number.into());
                }
                mapping.insert(key, value);
            }
        }
        Value::Tagged(tagged) => fill(&mut tagged.value, expressions),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The index of the one mark `text` is, if it is nothing else.
fn whole_mark(text: &str) -> Option<usize> {
    text.strip_prefix(MARK_OPEN)?
        .strip_suffix(MARK_CLOSE)?
        .parse()
        .ok()
}

/// `text` with its marks replaced by their values, one pass (a value is never searched for
/// marks); `None` when `text` has none.
fn filled(text: &str, expressions: &[String]) -> Option<String> {
    if !text.contains(MARK_OPEN) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(MARK_OPEN) {
        out.push_str(&rest[..open]);
        let after = &rest[open + MARK_OPEN.len_utf8()..];
        // Marks are only ever written by `mark_expressions` (a template holding the mark
        // characters is refused), so each is `OPEN digits CLOSE` with a known index.
        let value = after.split_once(MARK_CLOSE).and_then(|(index, tail)| {
            let value = expressions.get(index.parse::<usize>().ok()?)?;
            Some((value, tail))
        });
        match value {
            Some((value, tail)) => {
                out.push_str(value);
                rest = tail;
            }
            None => {
                out.push(MARK_OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
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

    /// The YAML document `text` is, to compare renderings by what they say, not their layout.
    fn yaml(text: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    /// The issue's attack: a serial that closes its quoted scalar and adds an action. The
    /// workflow keeps the template's one action, and the serial is its environment value as
    /// sent, whatever YAML or template syntax it holds.
    #[test]
    fn a_value_is_data_and_never_structure() {
        let template = VALID.replace(
            "environment: {A: \"1\"}",
            "environment: {A: \"{{.serial}}\", B: '{{.serial}}', C: {{.serial}}}",
        );
        for serial in [
            "x\"\n  - name: evil\n    image: attacker/evil",
            "x'\n      - name: evil\n        image: attacker/evil",
            "{{.device_1}}",
            "}}, D: {{",
            "# comment",
            "&anchor x",
            "*alias",
            "!!map {}",
            "a\tb",
            "a\u{2028}b\u{2029}c\u{85}d",
            "\0\u{7f}\u{1b}[2J\r\u{feff}\u{fffe}\u{10ffff}\u{d7ff}",
            "\u{E000}0\u{E001}",
            "",
            "null",
            "60",
        ] {
            let values = BTreeMap::from([
                ("device_1".to_string(), "52:54:00:00:00:01".to_string()),
                ("serial".to_string(), serial.to_string()),
            ]);
            let rendered = substitute(&template, &values).unwrap();
            let parsed = Template::parse(&rendered).unwrap();
            assert_eq!(parsed.tasks.len(), 1, "{serial:?}");
            let task = &parsed.tasks[0];
            assert_eq!(task.actions.len(), 1, "{serial:?}");
            assert_eq!(task.actions[0].image.as_deref(), Some("busybox"));
            assert_eq!(task.worker.as_deref(), Some("52:54:00:00:00:01"));
            for key in ["A", "B", "C"] {
                assert_eq!(task.environment[key], serial, "{key} of {serial:?}");
            }
        }
    }

    /// Expressions outside quotes (`DEST_DISK: {{ .disk }}`, as upstream's examples write
    /// them) still render, and an integer field given by an expression takes an integer.
    #[test]
    fn unquoted_expressions_and_integer_fields_render() {
        let template = VALID
            .replace("worker: \"{{.device_1}}\"", "worker: {{.device_1}}")
            .replace("        timeout: 60\n", "        timeout: {{.timeout}}\n");
        let values = BTreeMap::from([
            ("device_1".to_string(), "52:54:00:00:00:01".to_string()),
            ("timeout".to_string(), "90".to_string()),
        ]);
        let parsed = Template::parse(&substitute(&template, &values).unwrap()).unwrap();
        assert_eq!(parsed.tasks[0].worker.as_deref(), Some("52:54:00:00:00:01"));
        assert_eq!(parsed.tasks[0].actions[0].timeout, Some(90));
        let refused = substitute("a: \u{E000}", &values).unwrap_err();
        assert!(refused.reason.contains("U+E000"), "{refused}");
    }

    /// A seeded generator (the tree has no property-testing crate) of identities made of YAML
    /// and template syntax: every rendering keeps the template's structure and the value.
    #[test]
    fn random_hostile_values_never_change_the_structure() {
        const PIECES: &[&str] = &[
            "\"",
            "'",
            "\n",
            "\r\n",
            "  - ",
            ": ",
            "{{",
            "}}",
            "{{.device_1}}",
            "#",
            "&a",
            "*a",
            "!!str",
            "!x",
            "\t",
            "\u{2028}",
            "\u{85}",
            "\\",
            "[",
            "]",
            "{",
            "}",
            ",",
            "|",
            ">",
            "---",
            "...",
            "%YAML",
            "?",
            "-",
            "x",
            "é",
            " ",
            "\0",
            "\u{1b}[2J",
            "~",
            "@",
            "`",
        ];
        let template = VALID.replace(
            "environment: {A: \"1\"}",
            "environment: {A: \"{{.serial}}\", B: {{.serial}}}",
        );
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64*: deterministic, so a failure reproduces.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        for _ in 0..2000 {
            let length = next() % 12;
            let serial: String = (0..length)
                .map(|_| {
                    let index = usize::try_from(next() % PIECES.len() as u64).unwrap_or(0);
                    PIECES[index]
                })
                .collect();
            let values = BTreeMap::from([
                ("device_1".to_string(), "52:54:00:00:00:01".to_string()),
                ("serial".to_string(), serial.clone()),
            ]);
            let parsed = Template::parse(&substitute(&template, &values).unwrap()).unwrap();
            let task = &parsed.tasks[0];
            assert_eq!(parsed.tasks.len(), 1, "{serial:?}");
            assert_eq!(task.actions.len(), 1, "{serial:?}");
            assert_eq!(task.environment["A"], serial);
            assert_eq!(task.environment["B"], serial);
        }
    }

    #[test]
    fn substitution_replaces_keys_and_names_unknown_ones() {
        let values = BTreeMap::from([("device_1".to_string(), "52:54:00:00:00:01".to_string())]);
        assert_eq!(
            yaml(&substitute("w: {{.device_1}} {{ .device_1 }}", &values).unwrap()),
            yaml("w: 52:54:00:00:00:01 52:54:00:00:00:01")
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
            yaml(
                &substitute(
                    "m={{ .hardware.memory.totalBytes }} d={{ (index .hardware.disks 1).name }} \
                     i={{(index .hardware.disks 1)}}",
                    &values
                )
                .unwrap()
            ),
            yaml("m=8589934592 d=nvme0n1 i=second")
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
