//! What device discovery stores: the node row, its hardware inventory, and the values its
//! workflow is rendered with.
//!
//! The inventory is the `inBand` document of the report's `hardware_json` (Tinkerbell's
//! Hardware `status.attributes.inBand` shape, see bootkit-hwinfo's `inband`), kept per node
//! with `lastUpdated` set to when it arrived. It lives in a table of its own rather than in
//! the hardware record's `agent_attributes`, which the worker's GetAction overwrites with the
//! current protocol's shape.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use super::records::{find_node, insert_event};
use super::{Discovery, Node};
use crate::store::profiles::Profile;
use crate::store::registrations::Match;
use crate::store::{Result, Store, from_json, now_ms, rfc3339, to_json};
use crate::template::FieldError;

/// The key of the in-band document in device discovery's `hardware_json`.
const IN_BAND_KEY: &str = "inBand";

/// Where templates find the in-band document: upstream's `.hardware` object path
/// (`{{ .hardware.status.attributes.inBand.memory.totalBytes }}`).
const IN_BAND_TEMPLATE_PREFIX: &str = "hardware.status.attributes.inBand";

impl Store {
    /// The node's latest in-band hardware inventory (Tinkerbell's `status.attributes.inBand`
    /// shape), None when its device discovery has sent none (or it has not been seen yet).
    pub fn node_in_band(&self, node_id: &str) -> Result<Option<Value>> {
        in_band_of(&self.connection(), node_id)
    }
}

fn in_band_of(connection: &Connection, node_id: &str) -> Result<Option<Value>> {
    let text: Option<String> = connection
        .query_row(
            "SELECT in_band FROM node_inventory WHERE node_id = ?1",
            [node_id],
            |row| row.get(0),
        )
        .optional()?;
    text.as_deref().map(from_json).transpose()
}

/// The report's in-band document, when it has one.
fn reported_in_band(discovery: &Discovery) -> Option<&serde_json::Map<String, Value>> {
    discovery.attributes.as_ref()?.get(IN_BAND_KEY)?.as_object()
}

/// Keeps the report's in-band document as the node's inventory, stamped with its arrival; a
/// report without one leaves the last inventory in place.
fn save_in_band(transaction: &Transaction<'_>, node_id: &str, discovery: &Discovery) -> Result<()> {
    let Some(document) = reported_in_band(discovery) else {
        return Ok(());
    };
    let now = now_ms();
    let mut document = document.clone();
    document.insert("lastUpdated".to_string(), Value::String(rfc3339(now)));
    transaction.execute(
        "INSERT INTO node_inventory (node_id, in_band, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (node_id) DO UPDATE SET in_band = ?2, updated_ms = ?3",
        params![node_id, to_json(&document)?, now],
    )?;
    Ok(())
}

/// Creates or updates the node row from a discovery; returns the node's id.
pub(super) fn save_discovered_node(
    transaction: &Transaction<'_>,
    discovery: &Discovery,
    boot_mac: &str,
    matched: &Match,
) -> Result<String> {
    let identity = &discovery.identity;
    let registration = matched.registration.as_ref();
    let hostname = registration.and_then(|registration| registration.hostname.clone());
    let registration_id = registration.map(|registration| registration.id.clone());
    let now = now_ms();
    let existing = find_node(transaction, identity)?;
    let node_id = existing
        .as_ref()
        .map_or_else(|| boot_mac.to_string(), |node| node.id.clone());
    let mut macs = existing
        .as_ref()
        .map(|node| node.macs.clone())
        .unwrap_or_default();
    for mac in &identity.macs {
        if !macs.contains(mac) {
            macs.push(mac.clone());
        }
    }
    transaction.execute(
        "INSERT INTO nodes (id, serial, uuid, macs, ip, hostname, profile, registration_id, state,
            created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'discovered', ?9, ?9)
         ON CONFLICT (id) DO UPDATE SET serial = COALESCE(?2, serial), uuid = COALESCE(?3, uuid),
            macs = ?4, ip = COALESCE(?5, ip), hostname = ?6, profile = ?7, registration_id = ?8,
            updated_ms = ?9",
        params![
            node_id,
            identity.serial,
            identity.uuid,
            to_json(&macs)?,
            discovery.ip,
            hostname,
            matched.profile.name,
            registration_id,
            now
        ],
    )?;
    let address = discovery.ip.as_deref().unwrap_or("unknown address");
    insert_event(
        transaction,
        &node_id,
        "discovered",
        &format!("device discovery from {address} ({})", identity.describe()),
    )?;
    save_in_band(transaction, &node_id, discovery)?;
    Ok(node_id)
}

/// What the profile's template can use as `{{.key}}`, and each scalar of the report's in-band
/// document as `{{ .hardware.status.attributes.inBand.PATH }}` (list items by position:
/// `{{ (index .hardware.status.attributes.inBand.blockDevices 0).name }}`). Of the inventory,
/// only the values `template_text` uses are kept: the workflow's hardware map would otherwise
/// hold hundreds of them (four per PCI device).
pub(super) fn workflow_values(
    boot_mac: &str,
    node: &Node,
    matched: &Match,
    discovery: &Discovery,
    template_text: &str,
) -> Result<BTreeMap<String, String>> {
    let profile = &matched.profile;
    let registration = matched.registration.as_ref();
    let hostname = node
        .hostname
        .clone()
        .unwrap_or_else(|| format!("node-{}", boot_mac.replace(':', "")));
    let dest_disk = registration
        .and_then(|registration| registration.metadata.get("dest_disk").cloned())
        .unwrap_or_else(|| "/dev/vda".to_string());
    let values = [
        ("device_1", boot_mac.to_string()),
        ("worker_id", boot_mac.to_string()),
        (
            "os_image_url",
            os_image_url(profile, discovery.artifact_base.as_deref())?,
        ),
        (
            "os_image_sha256",
            profile.os_image_sha256.clone().unwrap_or_default(),
        ),
        ("profile", profile.name.clone()),
        ("hostname", hostname),
        ("serial", node.serial.clone().unwrap_or_default()),
        ("uuid", node.uuid.clone().unwrap_or_default()),
        ("dest_disk", dest_disk),
    ];
    let mut values: BTreeMap<String, String> = values
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
    if let Some(document) = reported_in_band(discovery) {
        let used = crate::template::used_keys(template_text);
        let mut inventory = BTreeMap::new();
        for (name, value) in document {
            flatten(
                &format!("{IN_BAND_TEMPLATE_PREFIX}.{name}"),
                value,
                &mut inventory,
            );
        }
        values.extend(inventory.into_iter().filter(|(key, _)| used.contains(key)));
    }
    Ok(values)
}

/// Each value under `value` as `path.field` / `path.N` (N: the list position) = its text, as
/// Go's template prints it: strings as they are, numbers as JSON writes them (exact integers),
/// booleans as `true`/`false`, a list of such values as one key in Go's `[a b c]` (CPU flags
/// would otherwise be a hundred keys in the workflow's hardware map). Nulls are absent values
/// and give no key.
fn flatten(path: &str, value: &Value, values: &mut BTreeMap<String, String>) {
    match value {
        Value::Null => {}
        Value::Array(items) if items.iter().all(is_scalar) => {
            let words: Vec<String> = items.iter().filter_map(scalar_text).collect();
            values.insert(path.to_string(), format!("[{}]", words.join(" ")));
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten(&format!("{path}.{index}"), item, values);
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                flatten(&format!("{path}.{name}"), field, values);
            }
        }
        scalar => {
            if let Some(text) = scalar_text(scalar) {
                values.insert(path.to_string(), text);
            }
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

fn os_image_url(profile: &Profile, artifact_base: Option<&str>) -> Result<String> {
    if profile.os_image_is_url() {
        return Ok(profile.os_image.clone());
    }
    let base = artifact_base.ok_or_else(|| {
        FieldError::new(
            "os_image",
            format!(
                "profile {} names the file {}, which nodes can only fetch from the boot HTTP service; \
                 turn the boot service on, or give the profile an http(s) URL",
                profile.name, profile.os_image
            ),
        )
    })?;
    Ok(format!(
        "{}/artifacts/profiles/{}/os-image",
        base.trim_end_matches('/'),
        profile.name
    ))
}
