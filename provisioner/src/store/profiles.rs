//! OS profiles: what a node boots (a bootkit's kernel + initramfs and command line) and what it
//! installs (a workflow template and an OS image). At most one profile is the default: the
//! profile of nodes nobody registered.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::artifacts::{ArtifactError, ArtifactRoots, is_url, load_roots};
use super::templates::resolve_template;
use super::text::{plain_optional, plain_text};
use super::{Result, Store, StoreError, now_ms, rfc3339};
use crate::template::FieldError;

/// A profile as a user submits it (JSON, or CLI flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Unique; how registrations refer to it.
    pub name: String,
    /// The bootkit kernel, served to nodes under /artifacts: a path under the artifacts
    /// directory (relative, or absolute under an artifact root) or an http(s) URL.
    pub kernel: String,
    /// The bootkit initramfs, as [`ProfileSpec::kernel`].
    pub initramfs: String,
    /// Extra kernel command line parameters, appended after the provisioner's own.
    #[serde(default)]
    pub cmdline: String,
    /// The workflow template (id or name) run on nodes with this profile.
    pub template: String,
    /// The OS image: an http(s) URL, or a path under the artifact roots served under /artifacts.
    pub os_image: String,
    /// Lower-case hex sha256 of the published image bytes.
    #[serde(default)]
    pub os_image_sha256: Option<String>,
    /// Make this the profile of unregistered nodes.
    #[serde(default)]
    pub default: bool,
}

/// A profile as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Unique; how registrations refer to it.
    pub name: String,
    /// Path on the provisioner's host of the bootkit kernel.
    pub kernel: String,
    /// Path on the provisioner's host of the bootkit initramfs.
    pub initramfs: String,
    /// Extra kernel command line parameters, appended after the provisioner's own.
    pub cmdline: String,
    /// The template's id (resolved from a name at creation).
    pub template_id: String,
    /// The OS image: an http(s) URL, or a path on the provisioner's host.
    pub os_image: String,
    /// Lower-case hex sha256 of the image bytes; None: not checked.
    pub os_image_sha256: Option<String>,
    /// The profile of unregistered nodes (at most one is).
    pub is_default: bool,
    /// RFC 3339 with milliseconds, UTC.
    pub created_at: String,
}

impl ProfileSpec {
    /// Checks every field; returns the spec with the template resolved to its id and the
    /// sha256 in lower case.
    fn validate(&self, connection: &Connection) -> Result<Profile> {
        plain_text("name", &self.name)?;
        plain_text("kernel", &self.kernel)?;
        plain_text("initramfs", &self.initramfs)?;
        plain_text("cmdline", &self.cmdline)?;
        plain_text("template", &self.template)?;
        plain_text("os_image", &self.os_image)?;
        plain_optional("os_image_sha256", self.os_image_sha256.as_deref())?;
        validate_name(&self.name)?;
        let roots = load_roots(connection)?;
        readable_file(&roots, "kernel", &self.kernel)?;
        readable_file(&roots, "initramfs", &self.initramfs)?;
        let template_id = resolve_template(connection, self.template.trim()).map_err(|error| {
            match error {
                StoreError::NotFound { .. } => FieldError::new(
                    "template",
                    format!(
                        "no template with id or name {:?}; create it first (`provisioner template create`)",
                        self.template
                    ),
                )
                .into(),
                other => other,
            }
        })?;
        let os_image = self.os_image.trim();
        readable_file(&roots, "os_image", os_image)?;
        let os_image_sha256 = self
            .os_image_sha256
            .as_deref()
            .map(str::trim)
            .filter(|hash| !hash.is_empty())
            .map(validate_sha256)
            .transpose()?;
        Ok(Profile {
            name: self.name.trim().to_string(),
            kernel: self.kernel.trim().to_string(),
            initramfs: self.initramfs.trim().to_string(),
            cmdline: self.cmdline.trim().to_string(),
            template_id,
            os_image: os_image.to_string(),
            os_image_sha256,
            is_default: self.default,
            created_at: String::new(),
        })
    }
}

impl Profile {
    /// Whether the OS image is served from a URL rather than from a file on this host.
    pub fn os_image_is_url(&self) -> bool {
        is_url(&self.os_image)
    }
}

fn validate_name(name: &str) -> Result<(), FieldError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "empty; give the profile a name"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(FieldError::new(
            "name",
            format!("{name:?} contains {bad:?}; use only letters, digits, '.', '_' and '-'"),
        ));
    }
    Ok(())
}

/// Profiles name files that the boot service serves later: a typo, or a file outside the
/// artifact roots, must fail now, not when a node boots. A URL is not checked here.
fn readable_file(roots: &ArtifactRoots, field: &str, location: &str) -> Result<()> {
    match roots.open(field, location) {
        Ok(_) => Ok(()),
        Err(ArtifactError::Outside(error)) => Err(error.into()),
        Err(error) => Err(FieldError::new(field, error.to_string()).into()),
    }
}

fn validate_sha256(hash: &str) -> Result<String, FieldError> {
    if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hash.to_ascii_lowercase())
    } else {
        Err(FieldError::new(
            "os_image_sha256",
            format!("{hash:?} is not a sha256 (64 hex digits)"),
        ))
    }
}

impl Store {
    /// Stores a new profile; a name in use is a Conflict, a missing template or kernel file
    /// an Invalid error naming the field.
    pub fn create_profile(&self, spec: &ProfileSpec) -> Result<Profile> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let profile = spec.validate(&transaction)?;
        if find_profile(&transaction, &profile.name)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "profile {:?} already exists; delete it first or pick another name",
                profile.name
            )));
        }
        if profile.is_default {
            transaction.execute("UPDATE profiles SET is_default = 0", [])?;
        }
        transaction.execute(
            "INSERT INTO profiles (name, kernel, initramfs, cmdline, template_id, os_image,
                os_image_sha256, is_default, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                profile.name,
                profile.kernel,
                profile.initramfs,
                profile.cmdline,
                profile.template_id,
                profile.os_image,
                profile.os_image_sha256,
                profile.is_default,
                now_ms()
            ],
        )?;
        let stored = load_profile(&transaction, &profile.name)?;
        transaction.commit()?;
        Ok(stored)
    }

    /// The profile named `name`; [`StoreError::NotFound`] if none.
    pub fn get_profile(&self, name: &str) -> Result<Profile> {
        load_profile(&self.connection(), name)
    }

    /// Every profile, by name.
    pub fn list_profiles(&self) -> Result<Vec<Profile>> {
        let connection = self.connection();
        let profiles = connection
            .prepare(&format!(
                "SELECT {PROFILE_COLUMNS} FROM profiles ORDER BY name"
            ))?
            .query_map([], profile_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(profiles)
    }

    /// Refused (Conflict) while registrations or nodes use it.
    pub fn delete_profile(&self, name: &str) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        load_profile(&transaction, name)?;
        let users: Option<String> = transaction
            .query_row(
                "SELECT 'registration ' || id FROM registrations WHERE profile = ?1
                 UNION ALL SELECT 'node ' || id FROM nodes WHERE profile = ?1 LIMIT 1",
                [name],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(user) = users {
            return Err(StoreError::Conflict(format!(
                "profile {name:?} is used by {user}; delete or re-register what uses it first"
            )));
        }
        transaction.execute("DELETE FROM profiles WHERE name = ?1", [name])?;
        transaction.commit()?;
        Ok(())
    }

    /// `None`: unregistered nodes are refused (admission control).
    pub fn set_default_profile(&self, name: Option<&str>) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        transaction.execute("UPDATE profiles SET is_default = 0", [])?;
        if let Some(name) = name {
            load_profile(&transaction, name)?;
            transaction.execute("UPDATE profiles SET is_default = 1 WHERE name = ?1", [name])?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// The profile of unregistered nodes, if one is set.
    pub fn default_profile(&self) -> Result<Option<Profile>> {
        default_profile(&self.connection())
    }
}

const PROFILE_COLUMNS: &str = "name, kernel, initramfs, cmdline, template_id, os_image, os_image_sha256, is_default, created_ms";

pub(crate) fn find_profile(connection: &Connection, name: &str) -> Result<Option<Profile>> {
    Ok(connection
        .query_row(
            &format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE name = ?1"),
            [name],
            profile_row,
        )
        .optional()?)
}

pub(crate) fn load_profile(connection: &Connection, name: &str) -> Result<Profile> {
    find_profile(connection, name)?.ok_or_else(|| StoreError::NotFound {
        kind: "profile",
        id: name.to_string(),
    })
}

pub(crate) fn default_profile(connection: &Connection) -> Result<Option<Profile>> {
    Ok(connection
        .query_row(
            &format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE is_default = 1"),
            [],
            profile_row,
        )
        .optional()?)
}

fn profile_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
    Ok(Profile {
        name: row.get(0)?,
        kernel: row.get(1)?,
        initramfs: row.get(2)?,
        cmdline: row.get(3)?,
        template_id: row.get(4)?,
        os_image: row.get(5)?,
        os_image_sha256: row.get(6)?,
        is_default: row.get(7)?,
        created_at: rfc3339(row.get(8)?),
    })
}
