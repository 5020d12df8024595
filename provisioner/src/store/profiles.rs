//! OS profiles: what a node boots (a bootkit's kernel + initramfs and command line) and what it
//! installs (a workflow template and an OS image). PLACEHOLDER bodies: the types and method
//! signatures are the contract other modules build on.

use serde::{Deserialize, Serialize};

use super::{Result, Store};

/// A profile as a user submits it (JSON, or CLI flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Unique; how registrations refer to it.
    pub name: String,
    /// Path on the provisioner's host of the bootkit kernel, served to nodes under /artifacts.
    pub kernel: String,
    /// Path on the provisioner's host of the bootkit initramfs.
    pub initramfs: String,
    /// Extra kernel command line parameters, appended after the provisioner's own.
    #[serde(default)]
    pub cmdline: String,
    /// The workflow template (id or name) run on nodes with this profile.
    pub template: String,
    /// The OS image: an http(s) URL, or a path on the provisioner's host served under /artifacts.
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
    pub name: String,
    pub kernel: String,
    pub initramfs: String,
    pub cmdline: String,
    /// The template's id (resolved from a name at creation).
    pub template_id: String,
    pub os_image: String,
    pub os_image_sha256: Option<String>,
    pub is_default: bool,
    pub created_at: String,
}

impl Store {
    /// Stores a new profile; a name in use is a Conflict, a missing template or kernel file
    /// an Invalid error naming the field.
    pub fn create_profile(&self, _spec: &ProfileSpec) -> Result<Profile> {
        todo!()
    }
    pub fn get_profile(&self, _name: &str) -> Result<Profile> {
        todo!()
    }
    pub fn list_profiles(&self) -> Result<Vec<Profile>> {
        todo!()
    }
    /// Refused (Conflict) while registrations or nodes use it.
    pub fn delete_profile(&self, _name: &str) -> Result<()> {
        todo!()
    }
    /// `None`: unregistered nodes are refused (admission control).
    pub fn set_default_profile(&self, _name: Option<&str>) -> Result<()> {
        todo!()
    }
    pub fn default_profile(&self) -> Result<Option<Profile>> {
        todo!()
    }
}
