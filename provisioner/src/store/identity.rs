//! Who a node says it is: the identity that registrations are matched against and that nodes
//! are found by.
//!
//! Its own module because both `registrations` (which registration an identity matches) and
//! `nodes` (which node an identity is) use it, and neither may depend on the other for it.

use bootkit_common::identity::{is_placeholder, normalize_uuid};
use bootkit_common::mac::MacAddr;
use serde::{Deserialize, Serialize};

/// Who a node says it is (from DHCP/iPXE or device discovery). Placeholder serials and UUIDs
/// must already be dropped by [`Identity::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The machine's serial number (SMBIOS); None when unknown or a placeholder.
    pub serial: Option<String>,
    /// The SMBIOS system UUID, lower case; None when unknown or a placeholder.
    pub uuid: Option<String>,
    /// The machine's MACs, lower-case `aa:bb:cc:dd:ee:ff`.
    pub macs: Vec<String>,
}

impl Identity {
    /// Normalizes MACs ([`MacAddr`]'s form) and UUIDs ([`normalize_uuid`]'s form) and drops
    /// placeholder serials and UUIDs, malformed UUIDs and MACs.
    pub fn new(serial: Option<&str>, uuid: Option<&str>, macs: &[&str]) -> Self {
        let mut parsed: Vec<MacAddr> = Vec::new();
        for mac in macs.iter().filter_map(|mac| mac.trim().parse().ok()) {
            if !parsed.contains(&mac) {
                parsed.push(mac);
            }
        }
        Self {
            serial: meaningful(serial).map(str::to_string),
            uuid: uuid.and_then(|uuid| normalize_uuid(uuid).ok()),
            macs: parsed.iter().map(MacAddr::to_string).collect(),
        }
    }

    /// "serial S, UUID U, MAC M" for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(serial) = &self.serial {
            parts.push(format!("serial {serial}"));
        }
        if let Some(uuid) = &self.uuid {
            parts.push(format!("UUID {uuid}"));
        }
        if !self.macs.is_empty() {
            parts.push(format!("MAC {}", self.macs.join(", ")));
        }
        if parts.is_empty() {
            "no serial, UUID or MAC".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The value, trimmed, unless it is empty or an OEM placeholder.
fn meaningful(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !is_placeholder(value))
}
