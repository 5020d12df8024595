//! Tinkerbell's objects as kubectl users write them: multi-document YAML (or JSON) of
//! `tinkerbell.org/v1alpha1` and `v1alpha2` `Hardware`, `Template` and `Workflow`, or a
//! `kind: List` of them.
//!
//! Field names and shapes follow upstream's Go types (tinkerbell/tinkerbell,
//! `api/v1alpha1/tinkerbell/{hardware,template,workflow}.go` and
//! `api/v1alpha2/tinkerbell/hardware.go`). Only the fields the provisioner acts on are typed
//! here; every other field is kept verbatim in the stored object and written back by
//! `provisioner get`. Fields upstream's types do not have are kept as well, and named in a
//! warning, at the levels checked by [`unknown_fields`].

use serde::Deserialize;
use serde_json::{Map, Value};

/// The API group of Tinkerbell's objects.
pub const GROUP: &str = "tinkerbell.org";

/// The namespace of an object whose `metadata.namespace` is absent, as in Kubernetes.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Metadata fields the API server sets. An object read back from a cluster (or from
/// `provisioner get`) carries them; applying ignores them, as kubectl's server does.
const SERVER_SET_METADATA: &[&str] = &[
    "creationTimestamp",
    "resourceVersion",
    "uid",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Metadata fields users set that Kubernetes' ObjectMeta has.
const USER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "finalizers",
    "ownerReferences",
];

/// A version of Tinkerbell's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `tinkerbell.org/v1alpha1`: what tink-controller, smee and tink-server use today.
    V1alpha1,
    /// `tinkerbell.org/v1alpha2`: only its `Hardware` is accepted (its workflows run `Task`
    /// objects, which the provisioner does not have).
    V1alpha2,
}

impl Version {
    /// `tinkerbell.org/v1alpha1` or `tinkerbell.org/v1alpha2`.
    pub fn api_version(self) -> &'static str {
        match self {
            Version::V1alpha1 => "tinkerbell.org/v1alpha1",
            Version::V1alpha2 => "tinkerbell.org/v1alpha2",
        }
    }
}

/// The kinds `provisioner apply` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A machine: its MACs and IPs are how a node is matched.
    Hardware,
    /// A workflow template (`spec.data`).
    Template,
    /// A template run on hardware.
    Workflow,
}

impl Kind {
    /// The kind as written in `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hardware => "Hardware",
            Kind::Template => "Template",
            Kind::Workflow => "Workflow",
        }
    }

    /// The resource as kubectl reports it (`hardware.tinkerbell.org`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Hardware => "hardware.tinkerbell.org",
            Kind::Template => "template.tinkerbell.org",
            Kind::Workflow => "workflow.tinkerbell.org",
        }
    }

    /// A kind as kubectl takes it on its command line: singular, plural, upstream's CRD
    /// short name (`hw`, `tpl`, `wf`) or the full resource, in any case.
    pub fn from_resource(text: &str) -> Option<Kind> {
        let text = text.to_ascii_lowercase();
        let text = text.strip_suffix(".tinkerbell.org").unwrap_or(&text);
        match text {
            "hardware" | "hardwares" | "hw" => Some(Kind::Hardware),
            "template" | "templates" | "tpl" => Some(Kind::Template),
            "workflow" | "workflows" | "wf" => Some(Kind::Workflow),
            _ => None,
        }
    }

    fn from_kind(kind: &str) -> Option<Kind> {
        match kind {
            "Hardware" => Some(Kind::Hardware),
            "Template" => Some(Kind::Template),
            "Workflow" => Some(Kind::Workflow),
            _ => None,
        }
    }
}

/// An object of a file that cannot be applied, with where it is and which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}{}: {field}: {reason}", object_label(.object))]
pub struct ObjectError {
    /// `document 2` (1-based, in file order), or `document 1, items[3]` in a List.
    pub location: String,
    /// `Hardware default/machine-1`, as far as known.
    pub object: Option<String>,
    /// The field, as a path (`spec.interfaces[0].dhcp.mac`).
    pub field: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

fn object_label(object: &Option<String>) -> String {
    object
        .as_deref()
        .map(|object| format!(" ({object})"))
        .unwrap_or_default()
}

/// One Tinkerbell object of a file, checked for its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Where it is in the file (`document 2`).
    pub location: String,
    /// Its `apiVersion`.
    pub version: Version,
    /// Its `kind`.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, [`DEFAULT_NAMESPACE`] when absent.
    pub namespace: String,
    /// The object as it is stored and written back: `apiVersion`, `kind`, `metadata` (with
    /// the namespace filled in, without what the API server sets), `spec` and any other
    /// top-level field, without `status` (which the provisioner reports, never takes).
    pub stored: Value,
    /// Fields upstream's types do not have (kept), as warnings naming them.
    pub warnings: Vec<String>,
}

impl Object {
    /// The provisioner's id of the object: `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `Hardware default/machine-1`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.name(), self.id())
    }

    /// The object's `spec` (an empty object when absent).
    pub fn spec(&self) -> &Value {
        static EMPTY: Value = Value::Null;
        self.stored.get("spec").unwrap_or(&EMPTY)
    }

    /// An error about `field` of this object.
    pub fn error(&self, field: impl Into<String>, reason: impl Into<String>) -> ObjectError {
        ObjectError {
            location: self.location.clone(),
            object: Some(self.label()),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The typed view of the spec; a field of the wrong shape is named by its path.
    pub fn typed_spec<T: serde::de::DeserializeOwned>(&self) -> Result<T, ObjectError> {
        let spec = match self.spec() {
            Value::Null => Value::Object(Map::new()),
            spec => spec.clone(),
        };
        serde_path_to_error::deserialize(spec).map_err(|error| {
            let path = error.path().to_string();
            let field = if path == "." {
                "spec".to_string()
            } else {
                format!("spec.{path}")
            };
            self.error(field, error.into_inner().to_string())
        })
    }
}

/// Parses a file of Tinkerbell objects: YAML documents separated by `---` (JSON is YAML
/// too), each an object or a `List` of them; empty documents are skipped. Every object's
/// envelope is checked; all errors are returned, not only the first.
///
/// Flow collections nested deeper than [`crate::limits::DEFAULT_YAML_DEPTH`] are refused
/// before the parser runs (it takes quadratic time on them).
pub fn parse_objects(text: &str) -> Result<Vec<Object>, Vec<ObjectError>> {
    crate::limits::check_yaml_depth(text, crate::limits::DEFAULT_YAML_DEPTH).map_err(|error| {
        vec![ObjectError {
            location: format!("line {}", error.line),
            object: None,
            field: "(document)".into(),
            reason: error.to_string(),
        }]
    })?;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let location = format!("document {}", index + 1);
        let value = match serde_yaml_ng::Value::deserialize(document)
            .map_err(|error| error.to_string())
            .and_then(|yaml| serde_json::to_value(yaml).map_err(|error| error.to_string()))
        {
            Ok(value) => value,
            Err(reason) => {
                errors.push(ObjectError {
                    location,
                    object: None,
                    field: "(document)".into(),
                    reason: format!("not valid YAML: {reason}"),
                });
                // A syntax error leaves the rest of the stream unreadable.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        // A bare sequence of objects: how upstream's file backend
        // (pkg/backend/file/testdata/example.yaml) holds them.
        if let Value::Array(items) = &value {
            for (item_index, item) in items.iter().enumerate() {
                match parse_object(format!("{location}, [{item_index}]"), item) {
                    Ok(object) => objects.push(object),
                    Err(error) => errors.push(error),
                }
            }
            continue;
        }
        let is_list = value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|kind| {
                kind == "List"
                    || kind
                        .strip_suffix("List")
                        .is_some_and(|k| Kind::from_kind(k).is_some())
            });
        if is_list {
            match value.get("items") {
                Some(Value::Array(items)) => {
                    for (item_index, item) in items.iter().enumerate() {
                        let location = format!("{location}, items[{item_index}]");
                        match parse_object(location, item) {
                            Ok(object) => objects.push(object),
                            Err(error) => errors.push(error),
                        }
                    }
                }
                Some(Value::Null) | None => {}
                Some(_) => errors.push(ObjectError {
                    location,
                    object: None,
                    field: "items".into(),
                    reason: "a List's items must be a sequence of objects".into(),
                }),
            }
            continue;
        }
        match parse_object(location, &value) {
            Ok(object) => objects.push(object),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

fn parse_object(location: String, value: &Value) -> Result<Object, ObjectError> {
    let error = |field: &str, reason: String| ObjectError {
        location: location.clone(),
        object: None,
        field: field.into(),
        reason,
    };
    let Value::Object(map) = value else {
        return Err(error(
            "(document)",
            "not an object: expected a mapping with apiVersion, kind, metadata and spec".into(),
        ));
    };
    let text = |field: &str| -> Result<&str, ObjectError> {
        match map.get(field) {
            Some(Value::String(text)) if !text.is_empty() => Ok(text),
            Some(Value::String(_)) | None => Err(error(field, "missing".into())),
            Some(other) => Err(error(field, format!("expected a string, found {other}"))),
        }
    };
    let api_version = text("apiVersion")?;
    let kind_text = text("kind")?;
    let kind = Kind::from_kind(kind_text).ok_or_else(|| {
        error(
            "kind",
            format!(
                "{kind_text:?} is not a kind the provisioner takes: it takes Tinkerbell's \
                 Hardware, Template and Workflow (and List)"
            ),
        )
    })?;
    let version = match api_version {
        "tinkerbell.org/v1alpha1" => Version::V1alpha1,
        "tinkerbell.org/v1alpha2" => Version::V1alpha2,
        other => {
            return Err(error(
                "apiVersion",
                format!(
                    "{other:?} is not supported: write tinkerbell.org/v1alpha1 (or \
                     tinkerbell.org/v1alpha2 for Hardware)"
                ),
            ));
        }
    };
    let metadata = match map.get("metadata") {
        Some(Value::Object(metadata)) => metadata,
        Some(_) => return Err(error("metadata", "expected a mapping".into())),
        None => return Err(error("metadata.name", "missing".into())),
    };
    let name = match metadata.get("name") {
        Some(Value::String(name)) if is_dns_name(name) => name.clone(),
        Some(Value::String(name)) => {
            return Err(error(
                "metadata.name",
                format!(
                    "{name:?} is not a Kubernetes object name: lower-case letters, digits, \
                     '-' and '.', starting and ending with a letter or digit, at most 253"
                ),
            ));
        }
        Some(other) => {
            return Err(error(
                "metadata.name",
                format!("expected a string, found {other}"),
            ));
        }
        None if metadata.contains_key("generateName") => {
            return Err(error(
                "metadata.name",
                "missing: generateName needs the API server to pick a name; give the object a \
                 name"
                    .into(),
            ));
        }
        None => return Err(error("metadata.name", "missing".into())),
    };
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => DEFAULT_NAMESPACE.to_string(),
        Some(Value::String(namespace)) if is_dns_label(namespace) => namespace.clone(),
        Some(other) => {
            return Err(error(
                "metadata.namespace",
                format!(
                    "{other} is not a Kubernetes namespace: lower-case letters, digits and \
                     '-', at most 63"
                ),
            ));
        }
    };
    for field in ["labels", "annotations"] {
        match metadata.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                if let Some((key, value)) = entries.iter().find(|(_, value)| !value.is_string()) {
                    return Err(error(
                        &format!("metadata.{field}.{key}"),
                        format!("expected a string, found {value}: quote it"),
                    ));
                }
            }
            Some(other) => {
                return Err(error(
                    &format!("metadata.{field}"),
                    format!("expected a mapping of strings, found {other}"),
                ));
            }
        }
    }
    match map.get("spec") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(other) => return Err(error("spec", format!("expected a mapping, found {other}"))),
    }

    let mut stored_metadata = Map::new();
    let mut warnings = Vec::new();
    for (key, value) in metadata {
        if SERVER_SET_METADATA.contains(&key.as_str()) {
            continue;
        }
        if !USER_METADATA.contains(&key.as_str()) {
            warnings.push(format!("metadata.{key}"));
        }
        stored_metadata.insert(key.clone(), value.clone());
    }
    stored_metadata.insert("namespace".into(), Value::String(namespace.clone()));
    let mut stored = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "metadata" => {}
            // Reported by the provisioner, never taken from a file (as for a Kubernetes
            // status subresource).
            "status" => {}
            "apiVersion" | "kind" | "spec" => {
                stored.insert(key.clone(), value.clone());
            }
            _ => {
                warnings.push(key.clone());
                stored.insert(key.clone(), value.clone());
            }
        }
    }
    stored.insert("metadata".into(), Value::Object(stored_metadata));
    let mut object = Object {
        location,
        version,
        kind,
        name,
        namespace,
        stored: Value::Object(stored),
        warnings: Vec::new(),
    };
    warnings.extend(unknown_fields(kind, version, object.spec()));
    object.warnings = warnings
        .into_iter()
        .map(|field| {
            format!(
                "{}: not a field of Tinkerbell's {} {}; kept as written (and written back by \
                 get), not used",
                field,
                version.api_version(),
                kind.name()
            )
        })
        .collect();
    Ok(object)
}

/// RFC 1123 subdomain: what Kubernetes takes as an object name.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// RFC 1123 label: what Kubernetes takes as a namespace.
fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

// Upstream's field names, per type, from its Go types' json tags.
const HARDWARE_V1_SPEC: &[&str] = &[
    "agentID",
    "auto",
    "bmcRef",
    "interfaces",
    "references",
    "metadata",
    "tinkVersion",
    "disks",
    "resources",
    "userData",
    "vendorData",
];
const HARDWARE_V1_INTERFACE: &[&str] = &["netboot", "isoboot", "dhcp", "disableDhcp"];
const HARDWARE_V1_DHCP: &[&str] = &[
    "mac",
    "hostname",
    "domain_name",
    "lease_time",
    "name_servers",
    "time_servers",
    "arch",
    "uefi",
    "iface_name",
    "ip",
    "vlan_id",
    "classless_static_routes",
    "tftp_server_name",
    "boot_file_name",
];
const HARDWARE_V1_IP: &[&str] = &["address", "netmask", "gateway", "family"];
const HARDWARE_V2_SPEC: &[&str] = &[
    "agentID",
    "arch",
    "auto",
    "bmc",
    "instance",
    "networkInterfaces",
    "references",
    "storageDevices",
];
const HARDWARE_V2_INTERFACE: &[&str] = &["dhcp", "ipam", "netboot"];
const HARDWARE_V2_IPAM: &[&str] = &["ipv4", "ipv6"];
const HARDWARE_V2_IP: &[&str] = &["address", "gateway", "prefix"];
const TEMPLATE_V1_SPEC: &[&str] = &["data"];
const WORKFLOW_V1_SPEC: &[&str] = &[
    "disabled",
    "templateRef",
    "hardwareRef",
    "hardwareMap",
    "bootOptions",
];

/// The paths of the fields of `spec` that upstream's type does not have. Checked: the
/// spec itself and, for Hardware, each interface, its DHCP and IP (v1alpha1) or its IPAM
/// (v1alpha2). Deeper levels (`spec.metadata.instance...`, BMC, boot options) are kept
/// without a check.
pub fn unknown_fields(kind: Kind, version: Version, spec: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut check = |value: Option<&Value>, path: &str, known: &[&str]| {
        if let Some(Value::Object(map)) = value {
            unknown.extend(
                map.keys()
                    .filter(|key| !known.contains(&key.as_str()))
                    .map(|key| format!("{path}.{key}")),
            );
        }
    };
    match (kind, version) {
        (Kind::Hardware, Version::V1alpha1) => {
            check(Some(spec), "spec", HARDWARE_V1_SPEC);
            let interfaces = spec.get("interfaces").and_then(Value::as_array);
            for (index, interface) in interfaces.into_iter().flatten().enumerate() {
                let at = format!("spec.interfaces[{index}]");
                check(Some(interface), &at, HARDWARE_V1_INTERFACE);
                let dhcp = interface.get("dhcp");
                check(dhcp, &format!("{at}.dhcp"), HARDWARE_V1_DHCP);
                let ip = dhcp.and_then(|dhcp| dhcp.get("ip"));
                check(ip, &format!("{at}.dhcp.ip"), HARDWARE_V1_IP);
            }
        }
        (Kind::Hardware, Version::V1alpha2) => {
            check(Some(spec), "spec", HARDWARE_V2_SPEC);
            let interfaces = spec.get("networkInterfaces").and_then(Value::as_object);
            for (mac, interface) in interfaces.into_iter().flatten() {
                let at = format!("spec.networkInterfaces.{mac}");
                check(Some(interface), &at, HARDWARE_V2_INTERFACE);
                let ipam = interface.get("ipam");
                check(ipam, &format!("{at}.ipam"), HARDWARE_V2_IPAM);
                for family in ["ipv4", "ipv6"] {
                    let ip = ipam.and_then(|ipam| ipam.get(family));
                    check(ip, &format!("{at}.ipam.{family}"), HARDWARE_V2_IP);
                }
            }
        }
        (Kind::Template, _) => check(Some(spec), "spec", TEMPLATE_V1_SPEC),
        (Kind::Workflow, _) => check(Some(spec), "spec", WORKFLOW_V1_SPEC),
    }
    unknown
}

/// The part of a v1alpha1 `Hardware` spec the provisioner acts on.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HardwareSpecV1alpha1 {
    /// The machine's interfaces; their DHCP MACs and IPs are how a node is matched.
    #[serde(default)]
    pub interfaces: Option<Vec<InterfaceV1alpha1>>,
}

/// `spec.interfaces[]` of a v1alpha1 `Hardware`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InterfaceV1alpha1 {
    /// The interface's DHCP settings.
    pub dhcp: Option<DhcpV1alpha1>,
}

/// `spec.interfaces[].dhcp` of a v1alpha1 `Hardware`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DhcpV1alpha1 {
    /// The interface's MAC.
    pub mac: Option<String>,
    /// The address handed out to it.
    pub ip: Option<IpAddress>,
}

/// An IP of a `Hardware`: `spec.interfaces[].dhcp.ip` in v1alpha1, and
/// `spec.networkInterfaces.<mac>.ipam.ipv4|ipv6` in v1alpha2 (the same `address` field).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpAddress {
    /// The IP address.
    pub address: Option<String>,
}

/// The part of a v1alpha2 `Hardware` spec the provisioner acts on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareSpecV1alpha2 {
    /// Interfaces keyed by MAC.
    #[serde(default)]
    pub network_interfaces: Option<std::collections::BTreeMap<String, NetworkInterfaceV1alpha2>>,
}

/// `spec.networkInterfaces.<mac>` of a v1alpha2 `Hardware`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetworkInterfaceV1alpha2 {
    /// Static addresses.
    pub ipam: Option<IpamV1alpha2>,
}

/// `spec.networkInterfaces.<mac>.ipam` of a v1alpha2 `Hardware`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamV1alpha2 {
    /// The IPv4 address.
    pub ipv4: Option<IpAddress>,
    /// The IPv6 address.
    pub ipv6: Option<IpAddress>,
}

/// The part of a `Template` spec the provisioner acts on.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TemplateSpec {
    /// The template's YAML, as text.
    pub data: Option<String>,
}

/// The part of a v1alpha1 `Workflow` spec the provisioner acts on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpecV1alpha1 {
    /// Pauses the workflow (not supported: refused when true).
    pub disabled: Option<bool>,
    /// The Template's name, in the workflow's namespace.
    pub template_ref: Option<String>,
    /// The Hardware's name, in the workflow's namespace.
    pub hardware_ref: Option<String>,
    /// Template values: `device_1: <mac>` renders `{{.device_1}}`.
    #[serde(default)]
    pub hardware_map: Option<std::collections::BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deeply_nested_file_is_refused_before_parsing_naming_the_limit() {
        // The document: 70,000 levels of flow sequences took 88 s to parse.
        let text = format!(
            "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {{name: a}}\n\
             spec: {{x: {}{}}}\n",
            "[".repeat(70_000),
            "]".repeat(70_000)
        );
        let started = std::time::Instant::now();
        let errors = parse_objects(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].location, "line 4");
        assert!(errors[0].reason.contains("64 levels"), "{}", errors[0]);
    }

    #[test]
    fn a_multi_document_file_and_a_list_give_every_object_in_order() {
        let text = "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: a}\n\
                    spec: {}\n---\n---\napiVersion: v1\nkind: List\nitems:\n\
                    - {apiVersion: tinkerbell.org/v1alpha1, kind: Template, metadata: {name: b, \
                    namespace: x}, spec: {data: ''}}\n";
        let objects = parse_objects(text).unwrap();
        let ids: Vec<String> = objects.iter().map(Object::label).collect();
        assert_eq!(ids, ["Hardware default/a", "Template x/b"]);
        assert_eq!(objects[1].location, "document 3, items[0]");
    }

    #[test]
    fn a_bad_envelope_names_document_and_field() {
        let text = "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: a}\n\
                    ---\napiVersion: tinkerbell.org/v1beta9\nkind: Hardware\nmetadata: {name: b}\n";
        let errors = parse_objects(text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].location, "document 2");
        assert_eq!(errors[0].field, "apiVersion");
    }

    #[test]
    fn server_set_metadata_is_ignored_and_unknown_fields_are_kept_and_named() {
        let text = "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata:\n  name: a\n  \
                    uid: x\n  creationTimestamp: '2024-01-01T00:00:00Z'\nspec:\n  colour: red\n  \
                    interfaces:\n  - dhcp: {mac: '52:54:00:00:00:01', speed: 10}\nstatus: {state: Ready}\n";
        let object = parse_objects(text).unwrap().remove(0);
        assert_eq!(
            object.stored["metadata"],
            serde_json::json!({"name": "a", "namespace": "default"})
        );
        assert_eq!(object.stored["spec"]["colour"], "red");
        assert!(object.stored.get("status").is_none());
        let named: Vec<&str> = object
            .warnings
            .iter()
            .map(|warning| warning.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(named, ["spec.colour", "spec.interfaces[0].dhcp.speed"]);
    }
}
