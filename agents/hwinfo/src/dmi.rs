//! SMBIOS identity from /sys/class/dmi/id. Serial numbers and the UUID are readable by root
//! only; firmware placeholders ("To Be Filled By O.E.M.", all zeros) are reported as absent so
//! nothing matches machines on a value every unconfigured board shares.

use std::path::Path;

use bootkit_common::identity::{is_placeholder, normalize_uuid};

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
