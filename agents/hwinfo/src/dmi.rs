//! SMBIOS identity from /sys/class/dmi/id. Serial numbers and the UUID are readable by root
//! only; firmware placeholders ("To Be Filled By O.E.M.", all zeros) are reported as absent so
//! nothing matches machines on a value every unconfigured board shares.

use std::path::Path;

use bootkit_common::identity::{is_placeholder, normalize_uuid};

use crate::sysfs;

/// The chassis (SMBIOS type 3). Each field is None when the file is absent or holds a placeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chassis {
    /// `chassis_serial` (root only).
    pub serial: Option<String>,
    /// `chassis_vendor`.
    pub vendor: Option<String>,
}

/// The firmware (SMBIOS type 0). Each field is None when the file is absent or holds a placeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bios {
    /// `bios_vendor`.
    pub vendor: Option<String>,
    /// `bios_version`.
    pub version: Option<String>,
    /// `bios_date`, as the firmware writes it (usually `MM/DD/YYYY`).
    pub release_date: Option<String>,
}

/// The mainboard (SMBIOS type 2). Each field is None when the file is absent or holds a placeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseboard {
    /// `board_vendor`.
    pub vendor: Option<String>,
    /// `board_name`.
    pub product: Option<String>,
    /// `board_version`.
    pub version: Option<String>,
    /// `board_serial` (root only).
    pub serial: Option<String>,
}

/// The system (SMBIOS type 1). Each field is None when the file is absent or holds a placeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Product {
    /// `product_name`: the model.
    pub name: Option<String>,
    /// `sys_vendor`: the manufacturer.
    pub vendor: Option<String>,
    /// `product_serial` (root only): the serial the machine is registered by.
    pub serial: Option<String>,
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
    normalize_uuid(&sysfs::text(&dir.join("product_uuid"))?).ok()
}
