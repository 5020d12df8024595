//! Disks from /sys/block (virtual devices such as loop, zram and device-mapper left out).

use std::fmt;
use std::path::Path;

use crate::sysfs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name (`sda`, `nvme0n1`).
    pub name: String,
    pub controller: ControllerType,
    pub drive_type: DriveType,
    pub size_bytes: Option<u64>,
    pub physical_block_size_bytes: Option<u64>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub wwn: Option<String>,
    pub serial: Option<String>,
}

/// The bus the disk hangs off, from where its device sits in the sysfs device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerType {
    Nvme,
    Sata,
    Scsi,
    Virtio,
    Usb,
    Mmc,
    Unknown,
}

impl fmt::Display for ControllerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControllerType::Nvme => "nvme",
            ControllerType::Sata => "sata",
            ControllerType::Scsi => "scsi",
            ControllerType::Virtio => "virtio",
            ControllerType::Usb => "usb",
            ControllerType::Mmc => "mmc",
            ControllerType::Unknown => "unknown",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveType {
    Hdd,
    Ssd,
    /// Optical drive (`sr*`).
    Odd,
    Unknown,
}

impl fmt::Display for DriveType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriveType::Hdd => "HDD",
            DriveType::Ssd => "SSD",
            DriveType::Odd => "ODD",
            DriveType::Unknown => "Unknown",
        })
    }
}

pub(crate) fn devices(sys: &Path) -> Vec<BlockDevice> {
    sysfs::entries(&sys.join("block"))
        .into_iter()
        .filter(|(_, path)| !sysfs::is_virtual(path))
        .map(|(name, path)| device(name, &path))
        .collect()
}

fn device(name: String, dir: &Path) -> BlockDevice {
    let device_dir = dir.join("device");
    let controller = controller_type(dir);
    // NVMe namespaces keep wwid at the block level; SCSI and SATA disks under device/.
    let first_text =
        |file: &str| sysfs::text(&dir.join(file)).or_else(|| sysfs::text(&device_dir.join(file)));
    BlockDevice {
        drive_type: drive_type(&name, dir),
        size_bytes: sysfs::number(&dir.join("size")).and_then(|sectors| sectors.checked_mul(512)),
        physical_block_size_bytes: sysfs::number(&dir.join("queue/physical_block_size")),
        vendor: sysfs::text(&device_dir.join("vendor")).filter(|vendor| is_name(vendor)),
        model: sysfs::text(&device_dir.join("model")),
        wwn: first_text("wwid"),
        serial: first_text("serial"),
        controller,
        name,
    }
}

/// virtio's `device/vendor` is the numeric virtio vendor id, not a manufacturer name.
fn is_name(value: &str) -> bool {
    !value.starts_with("0x")
}

fn controller_type(dir: &Path) -> ControllerType {
    let Ok(target) = std::fs::read_link(dir) else {
        return ControllerType::Unknown;
    };
    let target = target.to_string_lossy();
    // USB mass storage also goes through SCSI hosts, so USB is checked before SCSI.
    let patterns = [
        ("/nvme", ControllerType::Nvme),
        ("/usb", ControllerType::Usb),
        ("/virtio", ControllerType::Virtio),
        ("/mmc", ControllerType::Mmc),
        ("/ata", ControllerType::Sata),
        ("/target", ControllerType::Scsi),
    ];
    patterns
        .into_iter()
        .find(|(pattern, _)| target.contains(pattern))
        .map_or(ControllerType::Unknown, |(_, controller)| controller)
}

fn drive_type(name: &str, dir: &Path) -> DriveType {
    if name.starts_with("sr") {
        return DriveType::Odd;
    }
    match sysfs::number(&dir.join("queue/rotational")) {
        Some(0) => DriveType::Ssd,
        Some(_) => DriveType::Hdd,
        None => DriveType::Unknown,
    }
}
