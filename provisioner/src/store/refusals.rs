//! Nodes the provisioner refused (a PXE boot or an onboarding request it would not serve), with
//! the reason, so the status page can list them next to the fleet and offer to register them.
//! Without this record the reason reached only the node's console and serve's log.
//!
//! One row per identity (its MAC, else its serial, else its UUID), counting repeats, so a node
//! retrying every few seconds stays one row. The table is bounded: a flood of made-up MACs on
//! the site network must not grow the database without end.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::identity::Identity;
use super::text::{MAX_TEXT_BYTES, shown};
use super::{Result, Store, now_ms, rfc3339};

/// The most refusal rows kept; the least recently refused go first.
pub const MAX_REFUSALS: i64 = 10_000;

/// A node the provisioner refused, as the API and the page show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// The row's key: the boot MAC, else `serial:<serial>`, else `uuid:<uuid>`.
    pub key: String,
    /// The MAC it booted from, when known.
    pub mac: Option<String>,
    /// Its SMBIOS serial, when it sent one.
    pub serial: Option<String>,
    /// Its SMBIOS UUID, when it sent one.
    pub uuid: Option<String>,
    /// The address it came from, when known.
    pub ip: Option<String>,
    /// What refused it: `pxe` (the boot script) or `onboarding` (device discovery's request).
    pub source: String,
    /// Why, as the node was told.
    pub reason: String,
    /// How many times it was refused.
    pub count: i64,
    /// RFC 3339 with milliseconds, UTC.
    pub first_at: String,
    /// RFC 3339 with milliseconds, UTC.
    pub last_at: String,
}

/// Node-supplied text as stored for showing: control and reordering characters escaped (the
/// one escaping rule, [`shown`]), and bounded in length.
fn kept(text: &str) -> String {
    let mut text = shown(text, &[]).into_owned();
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl Store {
    /// Records that the node `identity` (from `ip`, if known) was refused by `source` for
    /// `reason`. Never fails the caller: the refusal is already answered, so a failed record
    /// is logged only.
    pub fn record_refusal(
        &self,
        identity: &Identity,
        ip: Option<&str>,
        source: &str,
        reason: &str,
    ) {
        if let Err(error) = self.try_record_refusal(identity, ip, source, reason) {
            tracing::error!("recording a refused node failed: {error}");
        }
    }

    fn try_record_refusal(
        &self,
        identity: &Identity,
        ip: Option<&str>,
        source: &str,
        reason: &str,
    ) -> Result<()> {
        let mac = identity.macs.first().cloned();
        let serial = identity.serial.as_deref().map(kept);
        let uuid = identity.uuid.clone();
        let key = match (&mac, &serial, &uuid) {
            (Some(mac), _, _) => mac.clone(),
            (None, Some(serial), _) => format!("serial:{serial}"),
            (None, None, Some(uuid)) => format!("uuid:{uuid}"),
            // Nothing to list it by or register it with.
            (None, None, None) => return Ok(()),
        };
        let ip = ip.map(kept).filter(|ip| !ip.is_empty());
        let now = now_ms();
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO refusals (key, mac, serial, uuid, ip, source, reason, count, first_ms, last_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)
             ON CONFLICT(key) DO UPDATE SET
                 serial = COALESCE(excluded.serial, serial), uuid = COALESCE(excluded.uuid, uuid),
                 ip = COALESCE(excluded.ip, ip), source = excluded.source,
                 reason = excluded.reason, count = count + 1, last_ms = excluded.last_ms",
            params![key, mac, serial, uuid, ip, source, kept(reason), now],
        )?;
        transaction.execute(
            "DELETE FROM refusals WHERE key IN (SELECT key FROM refusals ORDER BY last_ms DESC
             LIMIT -1 OFFSET ?1)",
            [MAX_REFUSALS],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The refused nodes, most recent first, except those a registration was made for after
    /// their last refusal (registering a node is how the operator answers a refusal; a node
    /// refused again after that shows again, with the new reason).
    pub fn list_refusals(&self) -> Result<Vec<Refusal>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT key, mac, serial, uuid, ip, source, reason, count, first_ms, last_ms
             FROM refusals AS f
             WHERE NOT EXISTS (
                 SELECT 1 FROM registrations AS r
                 WHERE r.created_ms >= f.last_ms
                   AND (r.mac = f.mac OR r.serial = f.serial OR r.uuid = f.uuid))
             ORDER BY last_ms DESC",
        )?;
        let refusals = statement
            .query_map([], |row| {
                Ok(Refusal {
                    key: row.get(0)?,
                    mac: row.get(1)?,
                    serial: row.get(2)?,
                    uuid: row.get(3)?,
                    ip: row.get(4)?,
                    source: row.get(5)?,
                    reason: row.get(6)?,
                    count: row.get(7)?,
                    first_at: rfc3339(row.get(8)?),
                    last_at: rfc3339(row.get(9)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(refusals)
    }

    /// A marker that changes whenever what the status page shows may have changed (a node,
    /// its timeline, a registration, a workflow or a refusal): one cheap query, so the page
    /// can poll it every few seconds and fetch the fleet only when it moved.
    pub fn change_marker(&self) -> Result<String> {
        let connection = self.connection();
        let marker: Option<String> = connection
            .query_row(
                "SELECT (SELECT COUNT(*) || '.' || COALESCE(MAX(updated_ms), 0) FROM nodes)
                     || '-' || (SELECT COALESCE(MAX(seq), 0) FROM node_events)
                     || '-' || (SELECT COUNT(*) || '.' || COALESCE(MAX(created_ms), 0) FROM registrations)
                     || '-' || (SELECT COALESCE(MAX(seq), 0) FROM workflows)
                     || '-' || (SELECT COUNT(*) || '.' || COALESCE(MAX(last_ms), 0) FROM refusals)",
                [],
                |row| row.get(0),
            )
            .optional()?;
        Ok(marker.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ProfileSpec, RegistrationSpec};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        (dir, store)
    }

    /// A node retrying stays one row with a count; registering it hides it; refused again
    /// afterwards, it shows again with the new reason.
    #[test]
    fn a_refused_node_is_listed_once_until_registered() {
        let (dir, store) = store();
        let identity = Identity::new(Some("HUX001O"), None, &["52:54:00:AA:00:01"]);
        store.record_refusal(&identity, Some("10.0.0.7"), "pxe", "no registration");
        store.record_refusal(&identity, None, "pxe", "no registration matches");
        let listed = store.list_refusals().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].key, "52:54:00:aa:00:01");
        assert_eq!(listed[0].serial.as_deref(), Some("HUX001O"));
        assert_eq!(
            listed[0].ip.as_deref(),
            Some("10.0.0.7"),
            "kept from the first"
        );
        assert_eq!(listed[0].count, 2);
        assert_eq!(listed[0].reason, "no registration matches");

        let template = store
            .create_template(
                "version: \"0.1\"\nname: t\nglobal_timeout: 60\ntasks:\n- name: t\n  worker: \"{{.device_1}}\"\n  actions:\n  - name: a\n    image: busybox\n    timeout: 10\n",
                None,
            )
            .unwrap();
        for file in ["k", "i"] {
            std::fs::create_dir_all(dir.path().join("artifacts")).unwrap();
            std::fs::write(dir.path().join("artifacts").join(file), file).unwrap();
        }
        let path = |file: &str| {
            dir.path()
                .join("artifacts")
                .join(file)
                .display()
                .to_string()
        };
        store
            .create_profile(&ProfileSpec {
                name: "edge".into(),
                kernel: path("k"),
                initramfs: path("i"),
                template: template.id,
                os_image: "http://images.invalid/x.raw".into(),
                ..Default::default()
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        store
            .register(&RegistrationSpec {
                mac: Some("52:54:00:aa:00:01".into()),
                profile: "edge".into(),
                ..Default::default()
            })
            .unwrap();
        assert!(store.list_refusals().unwrap().is_empty());

        std::thread::sleep(std::time::Duration::from_millis(2));
        store.record_refusal(&identity, None, "pxe", "its profile needs boot HTTP");
        let listed = store.list_refusals().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reason, "its profile needs boot HTTP");
    }

    /// Control characters a node sends are stored escaped, as every shown text is.
    #[test]
    fn node_supplied_text_is_kept_escaped() {
        let (_dir, store) = store();
        let identity = Identity {
            serial: Some("SN\u{1b}[2J<b>".into()),
            uuid: None,
            macs: Vec::new(),
        };
        store.record_refusal(&identity, None, "onboarding", "bad\nline");
        let listed = store.list_refusals().unwrap();
        assert_eq!(listed[0].key, "serial:SN\\u{1b}[2J<b>");
        assert_eq!(listed[0].reason, "bad\\nline");
    }
}
