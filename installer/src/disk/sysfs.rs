//! Reading disks and partitions from sysfs.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bootkit_common::size::human_size;

use super::{Disk, DiskError, SystemRoot};

/// How a disk is attached, as far as the installer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Nvme,
    Sata,
    Scsi,
    Virtio,
    Usb,
    Mmc,
    Loop,
    Ram,
    Zram,
    DeviceMapper,
    Md,
    Optical,
    Nbd,
    Other,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Nvme => "NVMe",
            Transport::Sata => "SATA",
            Transport::Scsi => "SCSI",
            Transport::Virtio => "virtio",
            Transport::Usb => "USB",
            Transport::Mmc => "MMC",
            Transport::Loop => "loop",
            Transport::Ram => "ram",
            Transport::Zram => "zram",
            Transport::DeviceMapper => "device-mapper",
            Transport::Md => "md RAID",
            Transport::Optical => "optical",
            Transport::Nbd => "NBD",
            Transport::Other => "other",
        })
    }
}

/// The transport from the kernel name (virtual devices) or from where the device sits in the
/// device tree: a USB-attached disk is a SCSI disk below a USB host, a SATA disk is a SCSI
/// disk below an `ataN` port, as lsblk reasons.
fn transport(name: &str, device_path: &str, subsystem: Option<&str>) -> Transport {
    const BY_NAME: [(&str, Transport); 8] = [
        ("loop", Transport::Loop),
        ("zram", Transport::Zram),
        ("ram", Transport::Ram),
        ("dm-", Transport::DeviceMapper),
        ("md", Transport::Md),
        ("sr", Transport::Optical),
        ("nbd", Transport::Nbd),
        ("mmcblk", Transport::Mmc),
    ];
    if let Some((_, transport)) = BY_NAME.iter().find(|(prefix, _)| name.starts_with(prefix)) {
        return *transport;
    }
    if device_path.contains("/usb") {
        Transport::Usb
    } else if name.starts_with("nvme") || device_path.contains("/nvme") {
        Transport::Nvme
    } else if device_path.contains("/ata") {
        Transport::Sata
    } else if name.starts_with("vd") || subsystem == Some("virtio") {
        Transport::Virtio
    } else if subsystem == Some("scsi") {
        Transport::Scsi
    } else {
        Transport::Other
    }
}

/// A sysfs attribute, trimmed; `None` when absent or empty (attributes vary by driver).
fn attribute(dir: &Path, relative: &str) -> Option<String> {
    let text = fs::read_to_string(dir.join(relative)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn required_attribute(dir: &Path, relative: &str) -> Result<String, DiskError> {
    let path = dir.join(relative);
    fs::read_to_string(&path)
        .map(|text| text.trim().to_string())
        .map_err(|source| DiskError::Read { path, source })
}

fn number<T: std::str::FromStr>(dir: &Path, relative: &str) -> Result<T, DiskError> {
    let text = required_attribute(dir, relative)?;
    text.parse().map_err(|_| DiskError::Parse {
        path: dir.join(relative),
        content: text,
    })
}

fn flag(dir: &Path, relative: &str) -> Result<bool, DiskError> {
    Ok(number::<u8>(dir, relative)? != 0)
}

/// `MAJOR:MINOR` from a `dev` attribute.
pub(super) fn device_number(dir: &Path) -> Result<(u32, u32), DiskError> {
    let text = required_attribute(dir, "dev")?;
    text.split_once(':')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)))
        .ok_or(DiskError::Parse {
            path: dir.join("dev"),
            content: text,
        })
}

/// The serial number of a SCSI/SATA/USB disk from VPD page 0x80 (Unit Serial Number): a
/// 4-byte header whose byte 3 is the length, then the serial in ASCII, space padded.
fn vpd_serial(dir: &Path) -> Option<String> {
    let page = fs::read(dir.join("device/vpd_pg80")).ok()?;
    let length = usize::from(*page.get(3)?);
    let serial = page.get(4..4 + length)?;
    let serial = String::from_utf8_lossy(serial).trim().to_string();
    (!serial.is_empty()).then_some(serial)
}

fn read_disk(root: &SystemRoot, name: &str) -> Result<Disk, DiskError> {
    let link = root.sys.join("block").join(name);
    let sys_path = fs::canonicalize(&link).map_err(|source| DiskError::Read {
        path: link.clone(),
        source,
    })?;
    let (major, minor) = device_number(&sys_path)?;
    // `size` is always in 512-byte units, whatever the disk's sector size.
    let size_bytes = number::<u64>(&sys_path, "size")? * 512;
    let subsystem = fs::read_link(sys_path.join("device/subsystem"))
        .ok()
        .and_then(|target| Some(target.file_name()?.to_str()?.to_string()));
    Ok(Disk {
        name: name.to_string(),
        dev_path: root.dev.join(name),
        major,
        minor,
        size_bytes,
        logical_sector_size: number(&sys_path, "queue/logical_block_size")?,
        physical_sector_size: number(&sys_path, "queue/physical_block_size")?,
        removable: flag(&sys_path, "removable")?,
        read_only: flag(&sys_path, "ro")?,
        transport: transport(name, &sys_path.to_string_lossy(), subsystem.as_deref()),
        model: attribute(&sys_path, "device/model"),
        serial: attribute(&sys_path, "serial")
            .or_else(|| attribute(&sys_path, "device/serial"))
            .or_else(|| vpd_serial(&sys_path)),
        wwn: attribute(&sys_path, "wwid")
            .or_else(|| attribute(&sys_path, "device/wwid"))
            .or_else(|| attribute(&sys_path, "device/wwn")),
        sys_path,
    })
}

pub(super) fn list(root: &SystemRoot) -> Result<Vec<Disk>, DiskError> {
    let block = root.sys.join("block");
    let entries = fs::read_dir(&block).map_err(|source| DiskError::Read {
        path: block.clone(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DiskError::Read {
            path: block.clone(),
            source,
        })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    names.iter().map(|name| read_disk(root, name)).collect()
}

/// A partition of a disk, from the disk's sysfs directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Partition {
    pub name: String,
    pub sys_path: PathBuf,
    pub major: u32,
    pub minor: u32,
}

/// The partitions the kernel currently shows for `disk`: subdirectories with a `partition`
/// attribute.
pub(super) fn partitions(disk: &Disk) -> Result<Vec<Partition>, DiskError> {
    let read_error = |source: io::Error| DiskError::Read {
        path: disk.sys_path.clone(),
        source,
    };
    let mut partitions = Vec::new();
    for entry in fs::read_dir(&disk.sys_path).map_err(read_error)? {
        let sys_path = entry.map_err(read_error)?.path();
        if !sys_path.join("partition").is_file() {
            continue;
        }
        let (major, minor) = device_number(&sys_path)?;
        let name = sys_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        partitions.push(Partition {
            name,
            sys_path,
            major,
            minor,
        });
    }
    partitions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(partitions)
}

/// The sysfs directory of block device `major:minor` (disk or partition).
pub(super) fn device_dir(root: &SystemRoot, major: u32, minor: u32) -> Option<PathBuf> {
    fs::canonicalize(root.sys.join(format!("dev/block/{major}:{minor}"))).ok()
}

/// The disk name of partition `major:minor`, or `None` when it is not a partition.
pub(super) fn partition_parent(root: &SystemRoot, major: u32, minor: u32) -> Option<String> {
    let dir = device_dir(root, major, minor)?;
    if !dir.join("partition").is_file() {
        return None;
    }
    Some(dir.parent()?.file_name()?.to_string_lossy().into_owned())
}

/// One line per disk for error messages, with what identifies it.
pub(super) fn describe_all(disks: &[Disk]) -> String {
    if disks.is_empty() {
        return "none".to_string();
    }
    disks
        .iter()
        .map(|disk| {
            let mut text = format!(
                "{} ({}",
                disk.dev_path.display(),
                human_size(disk.size_bytes)
            );
            if let Some(serial) = &disk.serial {
                text.push_str(&format!(", serial {serial}"));
            }
            if let Some(wwn) = &disk.wwn {
                text.push_str(&format!(", WWN {wwn}"));
            }
            text + ")"
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A WWN without its notation: `naa.`, `eui.`, `t10.`, `0x` prefixes dropped, lowercase.
fn bare_wwn(wwn: &str) -> String {
    let lower = wwn.trim().to_ascii_lowercase();
    ["naa.", "eui.", "t10.", "0x"]
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix))
        .unwrap_or(&lower)
        .to_string()
}

fn matches_identity(disk: &Disk, spec: &str) -> bool {
    let name_matches = disk.name == spec;
    let serial_matches = disk.serial.as_deref().is_some_and(|serial| serial == spec);
    let wwn_matches = disk
        .wwn
        .as_deref()
        .is_some_and(|wwn| bare_wwn(wwn) == bare_wwn(spec));
    name_matches || serial_matches || wwn_matches
}

fn exactly_one(spec: &str, matches: Vec<&Disk>, disks: &[Disk]) -> Result<Disk, DiskError> {
    match matches.as_slice() {
        [disk] => Ok((*disk).clone()),
        [] => Err(DiskError::NoSuchIdentity {
            spec: spec.to_string(),
            known: describe_all(disks),
        }),
        several => Err(DiskError::Ambiguous {
            spec: spec.to_string(),
            matches: several
                .iter()
                .map(|disk| disk.dev_path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The disk whose kernel name, serial number or WWN is `spec`.
pub(super) fn find_by_identity(spec: &str, disks: &[Disk]) -> Result<Disk, DiskError> {
    let spec = spec.trim();
    let matches = disks
        .iter()
        .filter(|disk| matches_identity(disk, spec))
        .collect();
    exactly_one(spec, matches, disks)
}

/// The disk a udev `/dev/disk/by-id` name stands for: `wwn-<WWN>`, or `<bus>-<model>_<serial>`
/// (udev replaces spaces with `_`), or `<bus>-<serial>` (virtio).
pub(super) fn find_by_id_name(name: &str, disks: &[Disk]) -> Result<Disk, DiskError> {
    let Some((_, rest)) = name.split_once('-') else {
        return exactly_one(name, Vec::new(), disks);
    };
    let matches = disks
        .iter()
        .filter(|disk| {
            let serial_matches = disk.serial.as_deref().is_some_and(|serial| {
                let serial = serial.replace(' ', "_");
                rest == serial || rest.ends_with(&format!("_{serial}"))
            });
            let wwn_matches = disk
                .wwn
                .as_deref()
                .is_some_and(|wwn| bare_wwn(wwn) == bare_wwn(rest));
            serial_matches || wwn_matches
        })
        .collect();
    exactly_one(name, matches, disks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::{FakeDisk, FakeMachine};

    #[test]
    fn transports_come_from_the_device_tree() {
        let machine = FakeMachine::new();
        machine
            .disk("sda")
            .sata()
            .size_gib(256)
            .serial_vpd("S3Z9NB0K")
            .add();
        machine.disk("sdb").usb().size_gib(32).add();
        machine.disk("sdc").scsi().size_gib(100).add();
        machine.disk("nvme0n1").nvme().size_gib(512).add();
        machine.disk("vda").virtio().size_gib(8).add();
        machine.disk("loop0").size_gib(1).add();
        machine.disk("zram0").size_gib(1).add();
        machine.disk("dm-0").size_gib(1).add();
        machine.disk("md127").size_gib(1).add();
        machine.disk("sr0").size_gib(1).add();
        machine.disk("mmcblk0").size_gib(1).add();
        let disks = machine.root().list().unwrap();
        let found: Vec<(&str, Transport)> = disks
            .iter()
            .map(|disk| (disk.name.as_str(), disk.transport))
            .collect();
        assert_eq!(
            found,
            vec![
                ("dm-0", Transport::DeviceMapper),
                ("loop0", Transport::Loop),
                ("md127", Transport::Md),
                ("mmcblk0", Transport::Mmc),
                ("nvme0n1", Transport::Nvme),
                ("sda", Transport::Sata),
                ("sdb", Transport::Usb),
                ("sdc", Transport::Scsi),
                ("sr0", Transport::Optical),
                ("vda", Transport::Virtio),
                ("zram0", Transport::Zram),
            ]
        );
    }

    #[test]
    fn attributes_are_read_from_sysfs() {
        let machine = FakeMachine::new();
        machine
            .disk("sda")
            .sata()
            .size_gib(256)
            .sectors(512, 4096)
            .model("Samsung SSD 860")
            .serial_vpd("S3Z9NB0K")
            .wwid("naa.5002538e40a1b2c3")
            .removable()
            .read_only()
            .add();
        let disk = machine.root().list().unwrap().remove(0);
        assert_eq!(disk.dev_path, machine.path("dev/sda"));
        assert_eq!((disk.major, disk.minor), (8, 0));
        assert_eq!(disk.size_bytes, 256 << 30);
        assert_eq!(
            (disk.logical_sector_size, disk.physical_sector_size),
            (512, 4096)
        );
        assert!(disk.removable && disk.read_only);
        assert_eq!(disk.model.as_deref(), Some("Samsung SSD 860"));
        assert_eq!(disk.serial.as_deref(), Some("S3Z9NB0K"));
        assert_eq!(disk.wwn.as_deref(), Some("naa.5002538e40a1b2c3"));
    }

    /// `nvme0n1`: an NVMe disk with a serial number, to be finished and added by the caller.
    fn samsung_nvme_disk(machine: &FakeMachine) -> FakeDisk<'_> {
        machine
            .disk("nvme0n1")
            .nvme()
            .size_gib(512)
            .serial("S4EWNX0M123456")
    }

    /// `sda`: a SATA disk whose serial is in its VPD page and which has a WWN.
    fn add_wd_sata_disk(machine: &FakeMachine) {
        machine
            .disk("sda")
            .sata()
            .size_gib(256)
            .serial_vpd("WD-WX12A3456789")
            .wwid("naa.50014ee2b5a6c7d8")
            .add();
    }

    #[test]
    fn serial_and_wwn_name_a_disk() {
        let machine = FakeMachine::new();
        samsung_nvme_disk(&machine)
            .wwid("eui.0025388b91b2f4c1")
            .add();
        add_wd_sata_disk(&machine);
        let root = machine.root();
        assert_eq!(root.resolve("S4EWNX0M123456").unwrap().name, "nvme0n1");
        assert_eq!(root.resolve("WD-WX12A3456789").unwrap().name, "sda");
        assert_eq!(root.resolve("naa.50014ee2b5a6c7d8").unwrap().name, "sda");
        assert_eq!(root.resolve("0x50014EE2B5A6C7D8").unwrap().name, "sda");
        assert_eq!(root.resolve("0025388b91b2f4c1").unwrap().name, "nvme0n1");
        assert_eq!(root.resolve("sda").unwrap().name, "sda");
        let error = root.resolve("NOPE123").unwrap_err().to_string();
        assert!(
            error.contains("no disk has the name, serial number or WWN `NOPE123`"),
            "{error}"
        );
        assert!(error.contains("serial S4EWNX0M123456"), "{error}");
    }

    #[test]
    fn a_serial_shared_by_two_paths_is_ambiguous() {
        let machine = FakeMachine::new();
        machine
            .disk("sda")
            .scsi()
            .size_gib(100)
            .serial_vpd("MPATH01")
            .add();
        machine
            .disk("sdb")
            .scsi()
            .size_gib(100)
            .serial_vpd("MPATH01")
            .add();
        let error = machine.root().resolve("MPATH01").unwrap_err().to_string();
        assert!(error.contains("several disks"), "{error}");
        assert!(
            error.contains("dev/sda") && error.contains("dev/sdb"),
            "{error}"
        );
    }

    #[test]
    fn by_id_names_are_matched_without_udev() {
        let machine = FakeMachine::new();
        samsung_nvme_disk(&machine).add();
        add_wd_sata_disk(&machine);
        machine
            .disk("vda")
            .virtio()
            .size_gib(8)
            .serial("target-disk")
            .add();
        let root = machine.root();
        let by_id = |name: &str| root.resolve(&format!("/nonexistent/dev/disk/by-id/{name}"));
        assert_eq!(
            by_id("nvme-Samsung_SSD_970_EVO_S4EWNX0M123456")
                .unwrap()
                .name,
            "nvme0n1"
        );
        assert_eq!(by_id("wwn-0x50014ee2b5a6c7d8").unwrap().name, "sda");
        assert_eq!(
            by_id("ata-WDC_WD10EZEX_WD-WX12A3456789").unwrap().name,
            "sda"
        );
        assert_eq!(by_id("virtio-target-disk").unwrap().name, "vda");
        let error = by_id("ata-WDC_WD10EZEX_WD-WX12A3456789-part2").unwrap_err();
        assert!(
            matches!(&error, DiskError::IsPartition { disk, .. } if disk.ends_with("dev/sda")),
            "{error}"
        );
        let error = by_id("ata-Other_ZZZ").unwrap_err().to_string();
        assert!(
            error.contains("does not exist and no disk's serial or WWN matches"),
            "{error}"
        );
    }

    #[test]
    fn device_nodes_resolve_by_device_number() {
        let machine = FakeMachine::new();
        machine.disk("sda").sata().size_gib(256).partitions(2).add();
        machine.disk("vda").virtio().size_gib(8).add();
        let root = machine.root();
        let sda = machine.device_node("sda", 8, 0);
        let sda2 = machine.device_node("sda2", 8, 2);
        assert_eq!(root.resolve(sda.to_str().unwrap()).unwrap().name, "sda");
        let error = root.resolve(sda2.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(&error, DiskError::IsPartition { disk, .. } if disk.ends_with("dev/sda")),
            "{error}"
        );
        assert!(error.to_string().contains("give the whole disk"), "{error}");
        let missing = root
            .resolve("/dev/definitely-not-a-disk")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
        let regular = machine.path("sys/block/sda/size");
        let error = root
            .resolve(regular.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a block device"), "{error}");
    }
}
