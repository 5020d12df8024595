//! SMBIOS identity from /sys/class/dmi/id. Serial numbers and the UUID are readable by root
//! only; firmware placeholders ("To Be Filled By O.E.M.", all zeros) are reported as absent so
//! nothing matches machines on a value every unconfigured board shares.

use std::path::Path;

use crate::sysfs;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chassis {
    pub serial: Option<String>,
    pub vendor: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bios {
    pub vendor: Option<String>,
    pub version: Option<String>,
    pub release_date: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseboard {
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Product {
    pub name: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
}

/// Values firmware vendors leave in SMBIOS strings they never filled in, compared ignoring case.
const PLACEHOLDERS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system serial number",
    "chassis serial number",
    "base board serial number",
    "not specified",
    "not applicable",
    "none",
    "n/a",
    "oem",
    "o.e.m.",
    "0123456789",
    "123456789",
];

/// Whether an SMBIOS string is a firmware placeholder rather than real information: a known
/// placeholder text, or nothing but zeros (or nothing but F's, the unset UUID) and separators.
pub fn is_placeholder(value: &str) -> bool {
    let value = value.trim();
    let lower = value.to_ascii_lowercase();
    let digits: String = lower
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | ' ' | '.'))
        .collect();
    digits.is_empty()
        || digits.chars().all(|c| c == '0')
        || digits.chars().all(|c| c == 'f')
        || PLACEHOLDERS.contains(&lower.as_str())
}

fn field(dir: &Path, name: &str) -> Option<String> {
    sysfs::text(&dir.join(name)).filter(|value| !is_placeholder(value))
}

pub(crate) fn chassis(dir: &Path) -> Chassis {
    Chassis {
        serial: field(dir, "chassis_serial"),
        vendor: field(dir, "chassis_vendor"),
    }
}

pub(crate) fn bios(dir: &Path) -> Bios {
    Bios {
        vendor: field(dir, "bios_vendor"),
        version: field(dir, "bios_version"),
        release_date: field(dir, "bios_date"),
    }
}

pub(crate) fn baseboard(dir: &Path) -> Baseboard {
    Baseboard {
        vendor: field(dir, "board_vendor"),
        product: field(dir, "board_name"),
        version: field(dir, "board_version"),
        serial: field(dir, "board_serial"),
    }
}

pub(crate) fn product(dir: &Path) -> Product {
    Product {
        name: field(dir, "product_name"),
        vendor: field(dir, "sys_vendor"),
        serial: field(dir, "product_serial"),
    }
}

pub(crate) fn system_uuid(dir: &Path) -> Option<String> {
    field(dir, "product_uuid").map(|uuid| uuid.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised_and_real_values_are_not() {
        for placeholder in [
            "To Be Filled By O.E.M.",
            "Default string",
            "System Serial Number",
            "0000000000",
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "  ",
        ] {
            assert!(
                is_placeholder(placeholder),
                "{placeholder:?} should be a placeholder"
            );
        }
        for real in [
            "PF2ABC01",
            "4C4C4544-0042-3510-8052-B4C04F4E3732",
            "Dell Inc.",
            "100",
        ] {
            assert!(!is_placeholder(real), "{real:?} is a real value");
        }
    }
}
