//! The partitions the kernel shows for a disk: subdirectories of the disk's sysfs directory
//! that have a `partition` attribute.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::BlockDevError;
use super::attribute::{device_number, number};

/// A partition of a disk as the kernel currently shows it (which may lag the partition
/// table on the disk until it is re-read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Kernel name: `sda2`, `nvme0n1p1`.
    pub name: String,
    /// The partition's directory in sysfs (inside its disk's).
    pub sys_path: PathBuf,
    /// The partition number (`partition` attribute): `2` for `sda2`.
    pub number: u32,
    /// Device number, major part.
    pub major: u32,
    /// Device number, minor part.
    pub minor: u32,
    /// Where it starts, in 512-byte units from the start of the disk (sysfs `start`, whatever
    /// the disk's logical sector size).
    pub start_512: u64,
    /// Its size in bytes (sysfs `size` counts 512-byte units).
    pub size_bytes: u64,
    /// The device node's name below /dev (uevent `DEVNAME`, else the kernel name).
    pub dev_name: String,
    /// The GPT partition name (uevent `PARTNAME`), when the table has one.
    pub part_label: Option<String>,
}

/// The partitions in disk directory `disk_dir`, sorted by name.
pub(super) fn of_disk(disk_dir: &Path) -> Result<Vec<Partition>, BlockDevError> {
    let read_error = |source: io::Error| BlockDevError::Read {
        path: disk_dir.to_path_buf(),
        source,
    };
    let mut partitions = Vec::new();
    for entry in fs::read_dir(disk_dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let sys_path = entry.path();
        if !sys_path.join("partition").is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        partitions.push(read(name, sys_path)?);
    }
    partitions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(partitions)
}

fn read(name: String, sys_path: PathBuf) -> Result<Partition, BlockDevError> {
    let (major, minor) = device_number(&sys_path)?;
    let sectors: u64 = number(&sys_path, "size")?;
    // The uevent file is optional: without it the kernel name is the node's name.
    let uevent = fs::read_to_string(sys_path.join("uevent")).unwrap_or_default();
    Ok(Partition {
        number: number(&sys_path, "partition")?,
        start_512: number(&sys_path, "start")?,
        size_bytes: sectors.saturating_mul(512),
        dev_name: uevent_value(&uevent, "DEVNAME").map_or_else(|| name.clone(), str::to_owned),
        part_label: uevent_value(&uevent, "PARTNAME").map(str::to_owned),
        major,
        minor,
        name,
        sys_path,
    })
}

/// The value of `key` in a uevent file's `KEY=value` lines.
fn uevent_value<'a>(uevent: &'a str, key: &str) -> Option<&'a str> {
    uevent
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevent_values_are_found_by_whole_key() {
        let uevent = "MAJOR=7\nMINOR=2\nDEVNAME=loop0p2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=BOOTKIT-DATA\n";
        assert_eq!(uevent_value(uevent, "DEVNAME"), Some("loop0p2"));
        assert_eq!(uevent_value(uevent, "PARTNAME"), Some("BOOTKIT-DATA"));
        assert_eq!(uevent_value(uevent, "PART"), None);
        assert_eq!(uevent_value(uevent, "DISKSEQ"), None);
    }
}
