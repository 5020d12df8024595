//! Disks from /sys/block, read by the shared `bootkit_common::blockdev` (virtual devices such
//! as loop, zram and device-mapper left out), in the shape the agent protocol reports.

use std::fmt;
use std::path::Path;

use bootkit_common::blockdev::{BlockDisk, DiskFilter, Sysfs, Transport};

/// One disk as the agent attributes report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name (`sda`, `nvme0n1`).
    pub name: String,
    /// How the disk is attached; shown as the protocol's lowercase name (`sata`, `nvme`).
    pub controller: ControllerType,
    /// Spinning, flash or optical.
    pub drive_type: DriveType,
    /// Capacity in bytes.
    pub size_bytes: Option<u64>,
    /// Bytes per physical sector.
    pub physical_block_size_bytes: Option<u64>,
    /// `device/vendor` when it is a name (virtio's numeric vendor id is left out).
    pub vendor: Option<String>,
    /// `device/model`.
    pub model: Option<String>,
    /// World Wide Name / WWID as the kernel reports it.
    pub wwn: Option<String>,
    /// Serial number (from VPD page 0x80 when the driver does not offer one).
    pub serial: Option<String>,
}

/// The protocol's name for a disk's transport: the one [`Transport`] every crate uses, so a
/// virtio-scsi disk is `scsi` here as in the installer.
pub type ControllerType = Transport;

/// What kind of drive a disk is, from `queue/rotational` and the kernel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveType {
    /// Spinning platters (`queue/rotational` is 1).
    Hdd,
    /// Flash (`queue/rotational` is 0).
    Ssd,
    /// Optical drive (`sr*`).
    Odd,
    /// The kernel does not say.
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

/// Best effort, like the rest of the report: no /sys/block gives no disks, and a disk whose
/// attributes cannot be read is left out rather than failing the report.
pub(crate) fn devices(sys: &Path) -> Vec<BlockDevice> {
    let sysfs = Sysfs::at(sys);
    let names = sysfs.disk_names(DiskFilter::Hardware).unwrap_or_default();
    names
        .iter()
        .filter_map(|name| sysfs.disk(name).ok())
        .map(device)
        .collect()
}

fn device(disk: BlockDisk) -> BlockDevice {
    BlockDevice {
        drive_type: drive_type(&disk),
        controller: disk.transport,
        size_bytes: Some(disk.size_bytes),
        physical_block_size_bytes: Some(u64::from(disk.physical_sector_size)),
        vendor: disk.vendor,
        model: disk.model,
        wwn: disk.wwn,
        serial: disk.serial,
        name: disk.name,
    }
}

fn drive_type(disk: &BlockDisk) -> DriveType {
    if disk.name.starts_with("sr") {
        return DriveType::Odd;
    }
    match disk.rotational {
        Some(false) => DriveType::Ssd,
        Some(true) => DriveType::Hdd,
        None => DriveType::Unknown,
    }
}
