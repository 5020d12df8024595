//! The disks from sysfs (read by the shared `bootkit_common::blockdev`), and naming one by
//! its serial number, WWN or udev by-id name.

use bootkit_common::blockdev::DiskFilter;
use bootkit_common::size::human_size;

use super::{Disk, DiskError, SystemRoot};

/// Every `/sys/block` entry, virtual devices included: the automatic choice says why it will
/// not pick them rather than not seeing them.
pub(super) fn list(root: &SystemRoot) -> Result<Vec<Disk>, DiskError> {
    let disks = root.sysfs().disks(DiskFilter::All)?;
    Ok(disks
        .into_iter()
        .map(|block| Disk {
            dev_path: root.dev.join(&block.name),
            block,
        })
        .collect())
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
    use crate::disk::Transport;
    use crate::disk::fake::{FakeDisk, FakeMachine};

    /// The shared reader's own rules (transport, VPD fallback, sector sizes) are tested in
    /// `bootkit_common::blockdev`; this checks what the installer adds: the device node under
    /// its root, and every field carried over.
    #[test]
    fn a_listed_disk_has_its_device_node_and_the_shared_readers_fields() {
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
        machine.disk("loop0").size_gib(1).add();
        let disks = machine.root().list().unwrap();
        let names: Vec<&str> = disks.iter().map(|disk| disk.name.as_str()).collect();
        assert_eq!(names, ["loop0", "sda"], "virtual disks are listed too");
        let disk = &disks[1];
        assert_eq!(disk.dev_path, machine.path("dev/sda"));
        assert_eq!(disk.transport, Transport::Sata);
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
    #[ignore = "needs root: mknod of device nodes"]
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
