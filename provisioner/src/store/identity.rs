//! Who a node says it is: the identity that registrations are matched against and that nodes
//! are found by.
//!
//! Its own module because both `registrations` (which registration an identity matches) and
//! `nodes` (which node an identity is) use it, and neither may depend on the other for it.

use serde::{Deserialize, Serialize};

use super::hardware::normalize_mac;

/// Who a node says it is (from DHCP/iPXE or device discovery). Placeholder serials and UUIDs
/// must already be dropped by [`Identity::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub serial: Option<String>,
    pub uuid: Option<String>,
    pub macs: Vec<String>,
}

impl Identity {
    /// Normalizes MACs and UUIDs (lower case) and drops placeholder serials/UUIDs.
    pub fn new(serial: Option<&str>, uuid: Option<&str>, macs: &[&str]) -> Self {
        let mut normalized: Vec<String> = Vec::new();
        for mac in macs.iter().filter_map(|mac| normalize_mac(mac)) {
            if !normalized.contains(&mac) {
                normalized.push(mac);
            }
        }
        Self {
            serial: meaningful(serial).map(str::to_string),
            uuid: meaningful(uuid).map(str::to_ascii_lowercase),
            macs: normalized,
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
    value
        .map(str::trim)
        .filter(|value| !bootkit_hwinfo::is_placeholder(value))
}
