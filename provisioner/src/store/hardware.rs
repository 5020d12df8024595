//! Hardware: a machine known by id and MACs, with its IPs and attributes.

use bootkit_common::mac::MacAddr;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::Outcome;
use super::text::plain_text;
use super::{Result, Store, StoreError, from_json, now_ms, rfc3339, to_json};
use crate::template::FieldError;

/// Hardware as a user submits it (JSON); serialized by the CLI to send it to a server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareSpec {
    /// Generated when absent.
    pub id: Option<String>,
    /// The machine's MACs, in any spelling `bootkit_common::mac::MacAddr` accepts; stored
    /// normalized, each once.
    #[serde(default)]
    pub macs: Vec<String>,
    /// IP addresses, as text; each must parse.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Free-form JSON attributes, kept as given.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Hardware as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// Unique; given or generated at creation.
    pub id: String,
    /// Normalized lower-case `aa:bb:cc:dd:ee:ff`.
    pub macs: Vec<String>,
    /// IP addresses, as given.
    pub ips: Vec<String>,
    /// Free-form JSON attributes, as given.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The latest attributes the agent reported with GetAction.
    pub agent_attributes: Option<serde_json::Value>,
    /// When the agent last reported (RFC 3339, ms); None until it does.
    pub agent_seen_at: Option<String>,
    /// RFC 3339 with milliseconds, UTC.
    pub created_at: String,
    /// The Tinkerbell `Hardware` object this record was applied from (`provisioner apply`),
    /// as stored: written back by `provisioner get`. None for hardware made otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

impl HardwareSpec {
    /// Parses the JSON a user submits; errors name the field.
    pub fn parse(json: &str) -> Result<Self, FieldError> {
        serde_json::from_str(json).map_err(|error| {
            FieldError::new("hardware", format!("not valid hardware JSON: {error}"))
        })
    }

    fn validate(&self) -> Result<(String, Vec<String>), FieldError> {
        let id = match self.id.as_deref().map(str::trim) {
            Some("") => {
                return Err(FieldError::new(
                    "id",
                    "empty; leave it out to have one generated",
                ));
            }
            Some(id) => {
                plain_text("id", id)?;
                id.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        if self.macs.is_empty() {
            return Err(FieldError::new(
                "macs",
                "missing: hardware needs at least one MAC",
            ));
        }
        let mut macs = Vec::new();
        for (index, mac) in self.macs.iter().enumerate() {
            let mac = mac
                .trim()
                .parse::<MacAddr>()
                .map_err(|error| FieldError::new(format!("macs[{index}]"), error.to_string()))?
                .to_string();
            if macs.contains(&mac) {
                return Err(FieldError::new(
                    format!("macs[{index}]"),
                    format!("{mac} is listed twice"),
                ));
            }
            macs.push(mac);
        }
        for (index, ip) in self.ips.iter().enumerate() {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(FieldError::new(
                    format!("ips[{index}]"),
                    format!("{ip:?} is not an IP address"),
                ));
            }
        }
        Ok((id, macs))
    }
}

impl Store {
    /// Validates and stores hardware; a duplicate id or MAC is a conflict.
    pub fn create_hardware(&self, spec: &HardwareSpec) -> Result<Hardware> {
        let (id, macs) = spec.validate()?;
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        if hardware_exists(&transaction, &id)? {
            return Err(StoreError::Conflict(format!(
                "hardware {id:?} already exists; delete it first or pick another id"
            )));
        }
        for mac in &macs {
            if let Some(owner) = hardware_id_by_mac(&transaction, mac)? {
                return Err(FieldError::new(
                    "macs",
                    format!("{mac} already belongs to hardware {owner:?}"),
                )
                .into());
            }
        }
        insert_hardware(&transaction, &id, spec, None)?;
        let hardware = store_macs(&transaction, &id, &macs)?;
        transaction.commit()?;
        Ok(hardware)
    }

    /// Creates or updates hardware `spec.id` from a Tinkerbell object: its MACs and IPs are
    /// replaced by the spec's, `object` is kept to be written back. MACs of other hardware
    /// are a conflict. Attributes and what the agent reported stay as they are.
    pub fn apply_hardware(
        &self,
        spec: &HardwareSpec,
        object: &serde_json::Value,
    ) -> Result<(Outcome, Hardware)> {
        let (id, macs) = spec.validate()?;
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        for (index, mac) in macs.iter().enumerate() {
            if let Some(owner) = hardware_id_by_mac(&transaction, mac)?
                && owner != id
            {
                return Err(FieldError::new(
                    format!("macs[{index}]"),
                    format!(
                        "{mac} already belongs to hardware {owner:?}; delete that hardware or \
                         remove the MAC from it first"
                    ),
                )
                .into());
            }
        }
        let outcome = if hardware_exists(&transaction, &id)? {
            let stored = load_hardware(&transaction, &id)?;
            if stored.macs == macs
                && stored.ips == spec.ips
                && stored.object.as_ref() == Some(object)
            {
                return Ok((Outcome::Unchanged, stored));
            }
            transaction.execute("DELETE FROM hardware_macs WHERE hardware_id = ?1", [&id])?;
            transaction.execute(
                "UPDATE hardware SET ips = ?2, object = ?3 WHERE id = ?1",
                params![id, to_json(&spec.ips)?, to_json(object)?],
            )?;
            Outcome::Configured
        } else {
            insert_hardware(&transaction, &id, spec, Some(object))?;
            Outcome::Created
        };
        let hardware = store_macs(&transaction, &id, &macs)?;
        transaction.commit()?;
        Ok((outcome, hardware))
    }

    /// Hardware by id or by one of its MACs.
    pub fn get_hardware(&self, id_or_mac: &str) -> Result<Hardware> {
        let connection = self.connection();
        let id = resolve_hardware(&connection, id_or_mac)?.ok_or_else(|| not_found(id_or_mac))?;
        load_hardware(&connection, &id)
    }

    /// Every hardware record, oldest first.
    pub fn list_hardware(&self) -> Result<Vec<Hardware>> {
        let connection = self.connection();
        let ids = connection
            .prepare("SELECT id FROM hardware ORDER BY created_ms, id")?
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|id| load_hardware(&connection, id))
            .collect()
    }

    /// Deletes hardware that no unfinished workflow uses.
    pub fn delete_hardware(&self, id_or_mac: &str) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let id = resolve_hardware(&transaction, id_or_mac)?.ok_or_else(|| not_found(id_or_mac))?;
        let busy: Option<String> = transaction
            .query_row(
                "SELECT w.id FROM workflows w JOIN actions a ON a.workflow_id = w.id
                 WHERE a.worker = ?1 AND w.state IN ('PENDING', 'RUNNING') LIMIT 1",
                [&id],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(workflow) = busy {
            return Err(StoreError::Conflict(format!(
                "hardware {id:?} is used by unfinished workflow {workflow:?}; delete the workflow first"
            )));
        }
        transaction.execute("DELETE FROM hardware WHERE id = ?1", [&id])?;
        transaction.commit()?;
        Ok(())
    }

    /// Keeps the attributes an agent reported with GetAction.
    pub fn record_agent_attributes(
        &self,
        hardware_id: &str,
        attributes: &serde_json::Value,
    ) -> Result<()> {
        self.connection().execute(
            "UPDATE hardware SET agent_attributes = ?2, agent_seen_ms = ?3 WHERE id = ?1",
            params![hardware_id, to_json(attributes)?, now_ms()],
        )?;
        Ok(())
    }
}

fn not_found(id_or_mac: &str) -> StoreError {
    StoreError::NotFound {
        kind: "hardware (by id or MAC)",
        id: id_or_mac.to_string(),
    }
}

/// Inserts the row of new hardware `id` with the spec's IPs and attributes and, when it came
/// from a Tinkerbell object, that object.
fn insert_hardware(
    connection: &Connection,
    id: &str,
    spec: &HardwareSpec,
    object: Option<&serde_json::Value>,
) -> Result<()> {
    connection.execute(
        "INSERT INTO hardware (id, ips, attributes, created_ms, object)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            to_json(&spec.ips)?,
            to_json(&spec.attributes)?,
            now_ms(),
            object.map(to_json).transpose()?
        ],
    )?;
    Ok(())
}

/// Stores `macs` as hardware `id`'s, in their order, and returns the hardware as now stored.
/// The caller has removed any MACs it had.
fn store_macs(connection: &Connection, id: &str, macs: &[String]) -> Result<Hardware> {
    for (position, mac) in macs.iter().enumerate() {
        connection.execute(
            "INSERT INTO hardware_macs (mac, hardware_id, position) VALUES (?1, ?2, ?3)",
            params![mac, id, position as i64],
        )?;
    }
    load_hardware(connection, id)
}

fn hardware_exists(connection: &Connection, id: &str) -> Result<bool> {
    Ok(connection
        .query_row("SELECT 1 FROM hardware WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn hardware_id_by_mac(connection: &Connection, mac: &str) -> Result<Option<String>> {
    Ok(connection
        .query_row(
            "SELECT hardware_id FROM hardware_macs WHERE mac = ?1",
            [mac],
            |row| row.get(0),
        )
        .optional()?)
}

/// The id of the hardware whose id or MAC is `id_or_mac`.
pub(crate) fn resolve_hardware(connection: &Connection, id_or_mac: &str) -> Result<Option<String>> {
    let id_or_mac = id_or_mac.trim();
    if hardware_exists(connection, id_or_mac)? {
        return Ok(Some(id_or_mac.to_string()));
    }
    match id_or_mac.parse::<MacAddr>() {
        Ok(mac) => hardware_id_by_mac(connection, &mac.to_string()),
        Err(_) => Ok(None),
    }
}

fn load_hardware(connection: &Connection, id: &str) -> Result<Hardware> {
    let macs = connection
        .prepare("SELECT mac FROM hardware_macs WHERE hardware_id = ?1 ORDER BY position")?
        .query_map([id], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let raw = connection.query_row(
        "SELECT ips, attributes, agent_attributes, agent_seen_ms, created_ms, object FROM hardware
         WHERE id = ?1",
        [id],
        raw_hardware,
    )?;
    Ok(Hardware {
        id: id.to_string(),
        macs,
        ips: from_json(&raw.ips)?,
        attributes: from_json(&raw.attributes)?,
        agent_attributes: raw.agent_attributes.as_deref().map(from_json).transpose()?,
        agent_seen_at: raw.agent_seen_ms.map(rfc3339),
        created_at: rfc3339(raw.created_ms),
        object: raw.object.as_deref().map(from_json).transpose()?,
    })
}

struct RawHardware {
    ips: String,
    attributes: String,
    agent_attributes: Option<String>,
    agent_seen_ms: Option<i64>,
    created_ms: i64,
    object: Option<String>,
}

fn raw_hardware(row: &Row<'_>) -> rusqlite::Result<RawHardware> {
    Ok(RawHardware {
        ips: row.get(0)?,
        attributes: row.get(1)?,
        agent_attributes: row.get(2)?,
        agent_seen_ms: row.get(3)?,
        created_ms: row.get(4)?,
        object: row.get(5)?,
    })
}

/// Creates or updates the hardware of a discovered node: its id is the boot MAC (the worker
/// id), unless hardware with that MAC exists already. MACs owned by other hardware are left
/// to it. Returns the hardware id.
pub(crate) fn record_discovered_hardware(
    connection: &Connection,
    boot_mac: &str,
    macs: &[String],
    ip: Option<&str>,
    attributes: Option<&serde_json::Value>,
) -> Result<String> {
    let id = match resolve_hardware(connection, boot_mac)? {
        Some(id) => id,
        None => {
            connection.execute(
                "INSERT INTO hardware (id, ips, attributes, created_ms) VALUES (?1, '[]', '{}', ?2)",
                params![boot_mac, now_ms()],
            )?;
            boot_mac.to_string()
        }
    };
    let known: i64 = connection.query_row(
        "SELECT COUNT(*) FROM hardware_macs WHERE hardware_id = ?1",
        [&id],
        |row| row.get(0),
    )?;
    for (offset, mac) in macs.iter().enumerate() {
        connection.execute(
            "INSERT OR IGNORE INTO hardware_macs (mac, hardware_id, position) VALUES (?1, ?2, ?3)",
            params![mac, id, known + offset as i64],
        )?;
    }
    if let Some(ip) = ip {
        connection.execute(
            "UPDATE hardware SET ips = ?2 WHERE id = ?1",
            params![id, to_json(&[ip])?],
        )?;
    }
    if let Some(attributes) = attributes {
        connection.execute(
            "UPDATE hardware SET agent_attributes = ?2, agent_seen_ms = ?3 WHERE id = ?1",
            params![id, to_json(attributes)?, now_ms()],
        )?;
    }
    Ok(id)
}
