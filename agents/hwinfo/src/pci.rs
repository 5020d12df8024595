//! PCI functions from /sys/bus/pci/devices, as numeric ids (the bootkit carries no pci.ids
//! name database).

use std::path::Path;

use crate::sysfs;

/// One PCI function, by numeric ids (no name database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Bus address (`0000:00:02.0`).
    pub address: String,
    /// Four hex digits, lower case, no `0x` (`8086`).
    pub vendor_id: Option<String>,
    /// Four hex digits (`0d57`).
    pub device_id: Option<String>,
    /// Six hex digits: class, subclass, programming interface (`020000` is Ethernet).
    pub class: Option<String>,
    /// The bound kernel driver, if any.
    pub driver: Option<String>,
}

/// The PCI base class of display controllers (VGA, 3D, other display).
const DISPLAY_CLASS_PREFIX: &str = "03";
/// The PCI base class of mass storage controllers (SATA, NVMe, RAID, SAS, ...).
const STORAGE_CLASS_PREFIX: &str = "01";

impl PciDevice {
    /// True for a display controller (base class 0x03: VGA, 3D, other); what counts as a GPU.
    pub fn is_display(&self) -> bool {
        self.class
            .as_deref()
            .is_some_and(|class| class.starts_with(DISPLAY_CLASS_PREFIX))
    }

    /// True for a mass storage controller (base class 0x01: SATA, NVMe, RAID, SAS, ...).
    pub fn is_storage_controller(&self) -> bool {
        self.class
            .as_deref()
            .is_some_and(|class| class.starts_with(STORAGE_CLASS_PREFIX))
    }
}

pub(crate) fn devices(sys: &Path) -> Vec<PciDevice> {
    sysfs::entries(&sys.join("bus/pci/devices"))
        .into_iter()
        .map(|(address, dir)| PciDevice {
            vendor_id: hex_id(&dir.join("vendor")),
            device_id: hex_id(&dir.join("device")),
            class: hex_id(&dir.join("class")),
            driver: sysfs::link_name(&dir.join("driver")),
            address,
        })
        .collect()
}

fn hex_id(path: &Path) -> Option<String> {
    let text = sysfs::text(path)?;
    Some(text.trim_start_matches("0x").to_ascii_lowercase())
}
