//! Registrations: an operator's statement that the node with this serial, UUID and/or MAC gets
//! this profile, and which registration applies to a node that boots.

use std::collections::BTreeMap;

use bootkit_common::identity::{UuidError, is_placeholder, normalize_uuid};
use bootkit_common::mac::MacAddr;
use rusqlite::{Connection, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use super::identity::Identity;
use super::profiles::{Profile, default_profile, find_profile};
use super::text::{free_text, plain_map, plain_optional, plain_text};
use super::{Result, Store, StoreError, from_json, now_ms, rfc3339, to_json};
use crate::template::FieldError;

mod csv_import;

/// A registration as submitted (JSON, CLI flags, or one CSV row). At least one of serial, UUID,
/// MAC; OEM placeholder serials ("To Be Filled by O.E.M.", "Default string", all zeros) are
/// refused as identities.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSpec {
    /// SMBIOS serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// SMBIOS system UUID, any case.
    #[serde(default)]
    pub uuid: Option<String>,
    /// A MAC in any common spelling; stored normalized.
    #[serde(default)]
    pub mac: Option<String>,
    /// The profile (by name) the node boots.
    pub profile: String,
    /// The node's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Free-form (OEP's Site, Secure, RemoteUser, Metadata columns).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A registration as stored: the identity a node is expected by, and its profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Unique; generated.
    pub id: String,
    /// SMBIOS serial number.
    pub serial: Option<String>,
    /// SMBIOS system UUID, lower case.
    pub uuid: Option<String>,
    /// Normalized lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// The profile (by name) the node boots.
    pub profile: String,
    /// The node's host name.
    pub hostname: Option<String>,
    /// Free-form (OEP's Site, Secure, RemoteUser, Metadata columns).
    pub metadata: BTreeMap<String, String>,
    /// RFC 3339 with milliseconds, UTC.
    pub created_at: String,
}

/// Which registration (if any) and profile apply to an identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// `None`: unregistered, the default profile applies.
    pub registration: Option<Registration>,
    /// The profile that applies.
    pub profile: Profile,
}

/// A value the operator typed: blanks are absent.
fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl RegistrationSpec {
    /// Checks the fields and normalizes them into a registration with a new id.
    fn validate(&self, connection: &Connection) -> Result<Registration> {
        plain_optional("serial", self.serial.as_deref())?;
        plain_optional("uuid", self.uuid.as_deref())?;
        plain_optional("mac", self.mac.as_deref())?;
        plain_text("profile", &self.profile)?;
        plain_optional("hostname", self.hostname.as_deref())?;
        plain_map("metadata", &self.metadata, free_text)?;
        let serial = given(&self.serial);
        if let Some(serial) = serial.filter(|serial| is_placeholder(serial)) {
            return Err(FieldError::new(
                "serial",
                format!(
                    "serial {serial:?} is an OEM placeholder, not a serial; register this node by UUID or MAC"
                ),
            )
            .into());
        }
        let uuid = given(&self.uuid).map(validate_uuid).transpose()?;
        let mac = given(&self.mac)
            .map(|mac| {
                mac.parse::<MacAddr>()
                    .map(|mac| mac.to_string())
                    .map_err(|error| FieldError::new("mac", error.to_string()))
            })
            .transpose()?;
        if serial.is_none() && uuid.is_none() && mac.is_none() {
            return Err(FieldError::new(
                "serial",
                "a registration needs at least one of serial, UUID and MAC",
            )
            .into());
        }
        let profile = self.profile.trim();
        if find_profile(connection, profile)?.is_none() {
            return Err(FieldError::new(
                "profile",
                format!(
                    "no profile named {profile:?}; create it first (`provisioner profile create`)"
                ),
            )
            .into());
        }
        Ok(Registration {
            id: uuid::Uuid::new_v4().to_string(),
            serial: serial.map(str::to_string),
            uuid,
            mac,
            profile: profile.to_string(),
            hostname: given(&self.hostname).map(str::to_string),
            metadata: self.metadata.clone(),
            created_at: String::new(),
        })
    }
}

fn validate_uuid(uuid: &str) -> Result<String, FieldError> {
    normalize_uuid(uuid).map_err(|error| {
        let hint = match error {
            UuidError::Placeholder(_) => "; register this node by serial or MAC",
            UuidError::Malformed { .. } => "",
        };
        FieldError::new("uuid", format!("{error}{hint}"))
    })
}

impl Registration {
    /// The identity this registration names.
    pub(super) fn identity(&self) -> Identity {
        Identity {
            serial: self.serial.clone(),
            uuid: self.uuid.clone(),
            macs: self.mac.iter().cloned().collect(),
        }
    }

    /// The (field, value) pairs of the registration that `identity` also has.
    fn matched_by<'a>(&'a self, identity: &Identity) -> Vec<(&'static str, &'a str)> {
        let mut matched = Vec::new();
        if let Some(serial) = self.serial.as_deref()
            && identity.serial.as_deref() == Some(serial)
        {
            matched.push(("serial", serial));
        }
        if let Some(uuid) = self.uuid.as_deref()
            && identity.uuid.as_deref() == Some(uuid)
        {
            matched.push(("UUID", uuid));
        }
        if let Some(mac) = self.mac.as_deref()
            && identity.macs.iter().any(|known| known == mac)
        {
            matched.push(("MAC", mac));
        }
        matched
    }
}

/// Reads OEP's registration CSV as [`Store::import_registrations`] does, without storing
/// it: for the fuzz targets in `fuzz/`.
#[cfg(feature = "fuzzing")]
pub fn parse_registrations_csv(csv: &str) -> Result<Vec<RegistrationSpec>> {
    Ok(csv_import::parse(csv)?
        .into_iter()
        .map(|row| row.spec)
        .collect())
}

/// Stores every row of OEP's CSV, or none: an error names the row's line and column.
pub(super) fn insert_csv(transaction: &Transaction<'_>, csv: &str) -> Result<Vec<Registration>> {
    let rows = csv_import::parse(csv)?;
    let mut stored: Vec<(u64, Registration)> = Vec::new();
    for row in &rows {
        match insert_registration(transaction, &row.spec) {
            Ok(registration) => stored.push((row.line, registration)),
            // A row that repeats an earlier row conflicts with a registration this import
            // made, which the failed import rolls back: name the earlier line, not that id.
            Err(StoreError::Conflict(message)) => {
                let message = repeated_in_file(transaction, &row.spec, &stored).unwrap_or(message);
                return Err(row.locate(StoreError::Conflict(message)));
            }
            Err(error) => return Err(row.locate(error)),
        }
    }
    Ok(stored
        .into_iter()
        .map(|(_, registration)| registration)
        .collect())
}

/// "serial X is on line N of this file too" when `spec` names a node an earlier row of the
/// same file registered.
fn repeated_in_file(
    transaction: &Transaction<'_>,
    spec: &RegistrationSpec,
    stored: &[(u64, Registration)],
) -> Option<String> {
    let identity = spec.validate(transaction).ok()?.identity();
    stored.iter().find_map(|(line, earlier)| {
        let (field, value) = *earlier.matched_by(&identity).first()?;
        Some(format!(
            "{field} {value} is on line {line} of this file too: a node is registered once; \
             remove one of the rows (nothing was stored)"
        ))
    })
}

impl Store {
    /// Every registration, oldest first.
    pub fn list_registrations(&self) -> Result<Vec<Registration>> {
        load_registrations(&self.connection())
    }

    /// Deletes a registration; nodes it matched keep their state and workflow, and match
    /// afresh (another registration, or the default profile) at their next boot.
    pub fn delete_registration(&self, id: &str) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let deleted = transaction.execute("DELETE FROM registrations WHERE id = ?1", [id])?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                kind: "registration",
                id: id.to_string(),
            });
        }
        transaction.execute(
            "UPDATE nodes SET registration_id = NULL WHERE registration_id = ?1",
            [id],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The most specific registration wins (serial+UUID over one of them over MAC); two
    /// registrations naming different nodes for one identity is a Conflict saying which.
    /// Unregistered: the default profile, or PermissionDenied when there is none.
    pub fn match_identity(&self, identity: &Identity) -> Result<Match> {
        match_identity(&self.connection(), identity)
    }
}

/// Validates and stores one registration, refusing one that names a registered node.
pub(super) fn insert_registration(
    transaction: &Transaction<'_>,
    spec: &RegistrationSpec,
) -> Result<Registration> {
    let registration = spec.validate(transaction)?;
    if let Some(existing) = registrations_sharing(transaction, &registration.identity())?
        .into_iter()
        .find(|existing| !existing.matched_by(&registration.identity()).is_empty())
    {
        let (field, value) = existing.matched_by(&registration.identity())[0];
        return Err(StoreError::Conflict(format!(
            "{field} {value} is already registered as {} (profile {}); unregister it first (`provisioner node unregister {}`)",
            existing.id, existing.profile, existing.id
        )));
    }
    transaction.execute(
        "INSERT INTO registrations (id, serial, uuid, mac, profile, hostname, metadata, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            registration.id,
            registration.serial,
            registration.uuid,
            registration.mac,
            registration.profile,
            registration.hostname,
            to_json(&registration.metadata)?,
            now_ms()
        ],
    )?;
    load_registration(transaction, &registration.id)
}

pub(crate) fn match_identity(connection: &Connection, identity: &Identity) -> Result<Match> {
    let registrations = registrations_sharing(connection, identity)?;
    let scored: Vec<(&Registration, Vec<(&'static str, &str)>)> = registrations
        .iter()
        .map(|registration| (registration, registration.matched_by(identity)))
        .filter(|(_, matched)| !matched.is_empty())
        .collect();
    let best = scored
        .iter()
        .map(|(_, matched)| matched.len())
        .max()
        .unwrap_or(0);
    let winners: Vec<_> = scored
        .iter()
        .filter(|(_, matched)| matched.len() == best)
        .collect();
    match winners.as_slice() {
        [] => unregistered(connection, identity),
        [(registration, _)] => Ok(Match {
            profile: super::profiles::load_profile(connection, &registration.profile)?,
            registration: Some((*registration).clone()),
        }),
        several => {
            // Told in a fixed order (serial, UUID, MAC), whatever order they were stored in.
            let mut several = several.to_vec();
            several.sort_by_key(|(_, matched)| {
                matched.first().and_then(|(field, _)| {
                    ["serial", "UUID", "MAC"].iter().position(|f| f == field)
                })
            });
            let claims: Vec<String> = several
                .iter()
                .map(|(registration, matched)| {
                    let fields: Vec<String> = matched
                        .iter()
                        .map(|(field, value)| format!("{field} {value}"))
                        .collect();
                    format!(
                        "{} is registered as {} (profile {})",
                        fields.join(" and "),
                        registration.id,
                        registration.profile
                    )
                })
                .collect();
            Err(StoreError::Conflict(format!(
                "{}; delete one",
                claims.join(" but ")
            )))
        }
    }
}

fn unregistered(connection: &Connection, identity: &Identity) -> Result<Match> {
    match default_profile(connection)? {
        Some(profile) => Ok(Match {
            registration: None,
            profile,
        }),
        None => Err(StoreError::PermissionDenied(format!(
            "node with {} is not registered and no default profile is set: register it, or set a default profile",
            identity.describe()
        ))),
    }
}

const REGISTRATION_COLUMNS: &str = "id, serial, uuid, mac, profile, hostname, metadata, created_ms";

pub(crate) fn load_registrations(connection: &Connection) -> Result<Vec<Registration>> {
    select_registrations(connection, "", [])
}

/// The registrations naming any of the identity's serial, UUID or MACs.
fn registrations_sharing(
    connection: &Connection,
    identity: &Identity,
) -> Result<Vec<Registration>> {
    select_registrations(
        connection,
        "WHERE serial = ?1 OR uuid = ?2 OR mac IN (SELECT value FROM json_each(?3))",
        params![identity.serial, identity.uuid, to_json(&identity.macs)?],
    )
}

fn load_registration(connection: &Connection, id: &str) -> Result<Registration> {
    select_registrations(connection, "WHERE id = ?1", [id])?
        .pop()
        .ok_or_else(|| StoreError::NotFound {
            kind: "registration",
            id: id.to_string(),
        })
}

fn select_registrations(
    connection: &Connection,
    filter: &str,
    values: impl rusqlite::Params,
) -> Result<Vec<Registration>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {REGISTRATION_COLUMNS} FROM registrations {filter} ORDER BY created_ms, rowid"
    ))?;
    let mut rows = statement.query(values)?;
    let mut registrations = Vec::new();
    while let Some(row) = rows.next()? {
        registrations.push(registration_row(row)?);
    }
    Ok(registrations)
}

fn registration_row(row: &Row<'_>) -> Result<Registration> {
    Ok(Registration {
        id: row.get(0)?,
        serial: row.get(1)?,
        uuid: row.get(2)?,
        mac: row.get(3)?,
        profile: row.get(4)?,
        hostname: row.get(5)?,
        metadata: from_json(&row.get::<_, String>(6)?)?,
        created_at: rfc3339(row.get(7)?),
    })
}
