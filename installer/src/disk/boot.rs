//! Which disks the bootkit itself runs from, so they are never chosen as the target.

use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Disk, DiskError, SystemRoot};

/// Stacked devices (dm on md on partitions) are followed through `slaves/` at most this deep.
const MAX_STACK_DEPTH: usize = 8;

pub(super) fn boot_medium(root: &SystemRoot, files: &[&Path]) -> Result<Vec<Disk>, DiskError> {
    let disks = root.list()?;
    let mut names = Vec::new();
    if let Some(guid) = crate::efi::loader_device_part_uuid(&root.efivars())? {
        names.extend(
            disks
                .iter()
                .filter(|disk| has_partition_guid(disk, &guid))
                .map(|disk| disk.name.clone()),
        );
    }
    for file in files {
        names.extend(disks_holding(root, file)?);
    }
    Ok(disks
        .into_iter()
        .filter(|disk| names.contains(&disk.name))
        .collect())
}

/// Whether the GPT on `disk` has a partition with unique GUID `guid` (as GPT stores it).
/// A disk that cannot be read (no medium, no GPT) has none.
fn has_partition_guid(disk: &Disk, guid: &[u8; 16]) -> bool {
    let Ok(mut file) = File::open(&disk.dev_path) else {
        return false;
    };
    let Ok(table) = gptman::GPT::read_from(&mut file, u64::from(disk.logical_sector_size)) else {
        return false;
    };
    table
        .iter()
        .any(|(_, entry)| entry.is_used() && entry.unique_partition_guid == *guid)
}

/// The names of the whole disks under the block device that holds `file` (the device itself
/// when `file` is a device node).
fn disks_holding(root: &SystemRoot, file: &Path) -> Result<Vec<String>, DiskError> {
    let metadata = fs::metadata(file).map_err(|source| DiskError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let device = if metadata.file_type().is_block_device() {
        metadata.rdev()
    } else {
        metadata.dev()
    };
    let (major, minor) = (rustix::fs::major(device), rustix::fs::minor(device));
    let Some(dir) = root.sysfs().device_dir(major, minor) else {
        // Major 0: tmpfs, overlay, the initramfs: on no disk.
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    whole_disks(&dir, MAX_STACK_DEPTH, &mut names);
    Ok(names)
}

/// A partition's disk is its parent directory; a dm or md device's disks are below its
/// `slaves/`; anything else is a disk itself.
fn whole_disks(dir: &Path, depth: usize, names: &mut Vec<String>) {
    if dir.join("partition").is_file() {
        if let Some(parent) = dir.parent() {
            whole_disks(parent, depth, names);
        }
        return;
    }
    let slaves: Vec<PathBuf> = fs::read_dir(dir.join("slaves"))
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    if slaves.is_empty() || depth == 0 {
        if let Some(name) = dir.file_name() {
            names.push(name.to_string_lossy().into_owned());
        }
        return;
    }
    for slave in slaves {
        if let Ok(slave_dir) = fs::canonicalize(&slave) {
            whole_disks(&slave_dir, depth - 1, names);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::FakeMachine;
    use std::io::Cursor;

    const GUID_TEXT: &str = "9e1b6a40-3c4f-4d8e-a3b2-6f0e5d4c3b2a";

    /// A disk image holding a GPT whose partition 1 has the unique GUID `guid_text`.
    fn gpt_image(guid_text: &str) -> Vec<u8> {
        let mut image = Cursor::new(vec![0u8; 4 << 20]);
        let mut table = gptman::GPT::new_from(&mut image, 512, [7; 16]).unwrap();
        table[1] = gptman::GPTPartitionEntry {
            partition_type_guid: [1; 16],
            unique_partition_guid: uuid::Uuid::parse_str(guid_text).unwrap().to_bytes_le(),
            starting_lba: 2048,
            ending_lba: 4095,
            attribute_bits: 0,
            partition_name: "esp".into(),
        };
        table.write_into(&mut image).unwrap();
        image.into_inner()
    }

    fn loader_variable(text: &str) -> Vec<u8> {
        let mut content = 6u32.to_le_bytes().to_vec();
        for unit in text.encode_utf16().chain([0]) {
            content.extend_from_slice(&unit.to_le_bytes());
        }
        content
    }

    #[test]
    fn the_disk_with_the_loader_partition_is_the_boot_medium() {
        let machine = FakeMachine::new();
        machine.disk("sda").usb().size_gib(16).partitions(2).add();
        machine.disk("vda").virtio().size_gib(8).add();
        machine.device_file("sda", &gpt_image(GUID_TEXT));
        machine.device_file("vda", &gpt_image("11111111-2222-3333-4444-555555555555"));
        machine.efi_variable(
            "LoaderDevicePartUUID-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f",
            &loader_variable(&GUID_TEXT.to_uppercase()),
        );
        let boot = machine.root().boot_medium(&[]).unwrap();
        let names: Vec<&str> = boot.iter().map(|disk| disk.name.as_str()).collect();
        assert_eq!(names, vec!["sda"]);
    }

    #[test]
    fn without_the_variable_and_files_nothing_is_the_boot_medium() {
        let machine = FakeMachine::new();
        machine.disk("vda").virtio().size_gib(8).add();
        assert!(machine.root().boot_medium(&[]).unwrap().is_empty());
    }

    #[test]
    fn the_disk_under_a_file_is_the_boot_medium_through_partitions_and_dm() {
        let machine = FakeMachine::new();
        // The test's own files live on a real device; make the fake tree put that device
        // number on partition 2 of the fake sdb, through a dm device.
        let probe = machine.path("probe");
        fs::write(&probe, b"image").unwrap();
        let device = fs::metadata(&probe).unwrap().dev();
        let (major, minor) = (rustix::fs::major(device), rustix::fs::minor(device));
        machine.disk("sda").sata().size_gib(64).add();
        machine.disk("sdb").usb().size_gib(16).partitions(2).add();
        let dm = machine.path("sys/devices/virtual/block/dm-3");
        fs::create_dir_all(dm.join("slaves")).unwrap();
        std::os::unix::fs::symlink(
            machine.path("sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target_sdb/lun_sdb/block/sdb/sdb2"),
            dm.join("slaves/sdb2"),
        )
        .unwrap();
        let link = machine.path(&format!("sys/dev/block/{major}:{minor}"));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&dm, &link).unwrap();
        let boot = machine.root().boot_medium(&[probe.as_path()]).unwrap();
        let names: Vec<&str> = boot.iter().map(|disk| disk.name.as_str()).collect();
        assert_eq!(names, vec!["sdb"]);
    }
}
