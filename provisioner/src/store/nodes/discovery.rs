//! What device discovery stores: the node row, and the values its workflow is rendered with.

use std::collections::BTreeMap;

use rusqlite::{Transaction, params};

use super::records::{find_node, insert_event};
use super::{Discovery, Node};
use crate::store::profiles::Profile;
use crate::store::registrations::Match;
use crate::store::{Result, now_ms, to_json};
use crate::template::FieldError;

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
    Ok(node_id)
}

/// What the profile's template can use as `{{.key}}`.
pub(super) fn workflow_values(
    boot_mac: &str,
    node: &Node,
    matched: &Match,
    discovery: &Discovery,
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
    Ok(values
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect())
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
