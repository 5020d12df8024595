//! Registrations: an operator's statement that the node with this serial, UUID and/or MAC gets
//! this profile. PLACEHOLDER bodies: the types and method signatures are the contract.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::profiles::Profile;
use super::{Result, Store};

/// A registration as submitted (JSON, CLI flags, or one CSV row). At least one of serial, UUID,
/// MAC; OEM placeholder serials ("To Be Filled by O.E.M.", "Default string", all zeros) are
/// refused as identities.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSpec {
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    pub profile: String,
    #[serde(default)]
    pub hostname: Option<String>,
    /// Free-form (OEP's Site, Secure, RemoteUser, Metadata columns).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub serial: Option<String>,
    pub uuid: Option<String>,
    /// Normalized lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    pub profile: String,
    pub hostname: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
}

/// A stored registration and what the operator should know about it (e.g. "node N is already
/// provisioned; `provisioner node reprovision N` to install it again").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub registration: Registration,
    pub warnings: Vec<String>,
}

/// Who a node says it is (from DHCP/iPXE or device discovery). Placeholder serials and UUIDs
/// must already be dropped by [`Identity::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub serial: Option<String>,
    pub uuid: Option<String>,
    pub macs: Vec<String>,
}

/// Which registration (if any) and profile apply to an identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// `None`: unregistered, the default profile applies.
    pub registration: Option<Registration>,
    pub profile: Profile,
}

impl Identity {
    /// Normalizes MACs and UUIDs (lower case) and drops placeholder serials/UUIDs.
    pub fn new(_serial: Option<&str>, _uuid: Option<&str>, _macs: &[&str]) -> Self {
        todo!()
    }
}

impl Store {
    pub fn register(&self, _spec: &RegistrationSpec) -> Result<Registered> {
        todo!()
    }
    /// OEP's CSV (`Serial,UUID,OSProfile,Site,Secure,RemoteUser,Metadata`, header optional;
    /// a MAC column accepted too). All rows or none: an error names the line and column.
    pub fn import_registrations(&self, _csv: &str) -> Result<Vec<Registered>> {
        todo!()
    }
    pub fn list_registrations(&self) -> Result<Vec<Registration>> {
        todo!()
    }
    pub fn delete_registration(&self, _id: &str) -> Result<()> {
        todo!()
    }
    /// The most specific registration wins (serial+UUID over one of them over MAC); two
    /// registrations naming different nodes for one identity is a Conflict saying which.
    /// Unregistered: the default profile, or PermissionDenied when there is none.
    pub fn match_identity(&self, _identity: &Identity) -> Result<Match> {
        todo!()
    }
}
