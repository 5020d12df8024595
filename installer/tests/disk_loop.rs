//! The disk checks and the partition table work on real block devices: loop devices backed by
//! files in a temporary directory (needs root, `losetup`, `partx`, `sgdisk`, `mkfs.ext4`,
//! `mkswap`). Every loop device, mount and swap is released by a guard, even on failure.
//!
//! Kernels without a GPT parser (some minimal VM kernels) do not create loop partitions by
//! themselves; the tests then add them with `partx -a`, which reads the table in user space
//! and hands the partitions to the kernel (BLKPG), as they would appear after a scan.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use bootkit_installer::disk::{self, Disk, DiskError, SystemRoot, UnsafeReason};
use bootkit_installer::gpt::{self, GptError, Layout, NewPartition};

mod support;

use support::{LoopDevice, MIB, run};

/// Loop devices, mounts and swap are machine-wide: one test at a time.
static MACHINE: Mutex<()> = Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    MACHINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What these tests ask of a loop device besides attaching it (support attaches and detaches).
impl LoopDevice {
    fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn disk(&self) -> Disk {
        SystemRoot::live()
            .resolve(self.path.to_str().unwrap())
            .unwrap()
    }

    fn partition(&self, number: u32) -> PathBuf {
        disk::partition_path(&self.path, number)
    }

    /// The partitions the kernel shows in sysfs, with their sizes in bytes.
    fn kernel_partitions(&self) -> Vec<(String, u64)> {
        let dir = Path::new("/sys/block").join(self.name());
        let mut found: Vec<(String, u64)> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|entry| entry.path().join("partition").is_file())
            .map(|entry| {
                let size = fs::read_to_string(entry.path().join("size")).unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                (name, size.trim().parse::<u64>().unwrap() * 512)
            })
            .collect();
        found.sort();
        found
    }

    /// Makes the kernel show the partitions of the table on the device, scanning it itself
    /// or, on a kernel without a GPT parser, through partx.
    fn show_partitions(&self) {
        if self.kernel_partitions().is_empty() {
            run("partx", &["--add", self.path.to_str().unwrap()]);
        }
        assert!(!self.kernel_partitions().is_empty());
    }
}

struct Mounted {
    target: PathBuf,
}

impl Mounted {
    fn new(device: &Path, target: &Path) -> Mounted {
        fs::create_dir_all(target).unwrap();
        run(
            "mount",
            &[device.to_str().unwrap(), target.to_str().unwrap()],
        );
        Mounted {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.target).status();
    }
}

struct SwapOn {
    device: PathBuf,
}

impl SwapOn {
    fn new(device: &Path) -> SwapOn {
        run("mkswap", &[device.to_str().unwrap()]);
        run("swapon", &[device.to_str().unwrap()]);
        SwapOn {
            device: device.to_path_buf(),
        }
    }
}

impl Drop for SwapOn {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.device).status();
    }
}

/// An EMT-like image of `size_mib`: ESP 8 MiB, rootfs 4 MiB, edge_persistent 2 MiB.
fn emt_image(dir: &Path, size_mib: u64) -> PathBuf {
    let path = backing_file(dir, "image.raw", size_mib);
    run(
        "sgdisk",
        &[
            "-n1:2048:+8M",
            "-t1:ef00",
            "-c1:esp",
            "-n2:0:+4M",
            "-c2:rootfs",
            "-n3:0:+2M",
            "-c3:edge_persistent",
            path.to_str().unwrap(),
        ],
    );
    path
}

/// A disk file of `size_mib` holding the 16 MiB EMT-like image at its start.
fn emt_disk(dir: &Path, size_mib: u64) -> PathBuf {
    let path = dir.join("disk");
    fs::copy(emt_image(dir, 16), &path).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(size_mib * MIB)
        .unwrap();
    path
}

fn backing_file(dir: &Path, name: &str, size_mib: u64) -> PathBuf {
    let path = dir.join(name);
    File::create(&path)
        .unwrap()
        .set_len(size_mib * MIB)
        .unwrap();
    path
}

/// A loop device over a zeroed `dir/disk` file of `size_mib`.
fn blank_disk(dir: &Path, size_mib: u64) -> LoopDevice {
    LoopDevice::attach(&backing_file(dir, "disk", size_mib))
}

/// Writes `image` onto the device as the installer does, through the exclusive handle.
fn write_image(device: &Disk, image: &Path) -> File {
    let mut target = disk::open_for_write(device).unwrap();
    std::io::copy(&mut File::open(image).unwrap(), &mut target).unwrap();
    target.flush().unwrap();
    target.sync_all().unwrap();
    target
}

/// Formats partition 2 of `device` as ext4 and mounts it at `target`, so the disk is in use.
fn mount_new_ext4_on_partition_2(device: &LoopDevice, target: &Path) -> Mounted {
    device.show_partitions();
    run("mkfs.ext4", &["-q", device.partition(2).to_str().unwrap()]);
    Mounted::new(&device.partition(2), target)
}

fn unsafe_reasons(disk: &Disk, image_size: u64, sectors: Option<u32>) -> Vec<UnsafeReason> {
    match disk::check_safe(disk, image_size, sectors) {
        Ok(()) => Vec::new(),
        Err(DiskError::Unsafe { reasons, .. }) => reasons,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_loop_disk_is_resolved_with_its_real_attributes() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = blank_disk(dir.path(), 48);
    let disk = device.disk();
    assert_eq!(disk.name, device.name());
    assert_eq!(disk.size_bytes, 48 * MIB);
    assert_eq!(disk.logical_sector_size, 512);
    assert_eq!(disk.transport, disk::Transport::Loop);
    assert_eq!(unsafe_reasons(&disk, 16 * MIB, Some(512)), vec![]);
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_disk_with_a_mounted_partition_is_refused() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = LoopDevice::attach(&emt_disk(dir.path(), 64));
    let _mounted = mount_new_ext4_on_partition_2(&device, &dir.path().join("mnt"));

    let disk = device.disk();
    let error = disk::check_safe(&disk, 16 * MIB, Some(512)).unwrap_err();
    let DiskError::Unsafe { reasons, .. } = &error else {
        panic!("expected Unsafe, got {error}");
    };
    assert_eq!(
        reasons,
        &vec![UnsafeReason::Mounted {
            device: format!("{}p2", device.name()),
            mount_point: dir.path().join("mnt").display().to_string(),
        }]
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("refusing to write to {}", device.path.display())),
        "{message}"
    );
    assert!(message.contains("umount"), "{message}");
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_disk_with_swap_on_a_partition_is_refused() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = LoopDevice::attach(&emt_disk(dir.path(), 64));
    device.show_partitions();
    let _swap = SwapOn::new(&device.partition(1));

    let reasons = unsafe_reasons(&device.disk(), 16 * MIB, Some(512));
    assert_eq!(
        reasons,
        vec![UnsafeReason::Swap {
            device: format!("{}p1", device.name())
        }]
    );
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_disk_smaller_than_the_image_is_refused() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = blank_disk(dir.path(), 16);
    let reasons = unsafe_reasons(&device.disk(), 32 * MIB, Some(512));
    assert_eq!(
        reasons,
        vec![UnsafeReason::TooSmall {
            disk_size: 16 * MIB,
            image_size: 32 * MIB
        }]
    );
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_512_byte_image_on_a_4k_disk_is_refused_and_sector_sizes_are_detected() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let image = emt_image(dir.path(), 16);
    let mut head = vec![0u8; 8192];
    File::open(&image).unwrap().read_exact(&mut head).unwrap();
    assert_eq!(disk::image_sector_size(&head), Some(512));

    let device = LoopDevice::attach_with_sectors(&backing_file(dir.path(), "disk4k", 64), 4096);
    let disk = device.disk();
    assert_eq!(disk.logical_sector_size, 4096);
    let error = disk::check_safe(&disk, 16 * MIB, Some(512))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "the image is laid out for 512-byte sectors but the disk has 4096-byte logical sectors"
        ),
        "{error}"
    );

    // A table made on the 4K disk puts its header at byte 4096.
    run(
        "sgdisk",
        &["-n1:0:+8M", "-t1:ef00", device.path.to_str().unwrap()],
    );
    let mut head = vec![0u8; 8192];
    File::open(&device.path)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(disk::image_sector_size(&head), Some(4096));
    assert_eq!(unsafe_reasons(&disk, 16 * MIB, Some(4096)), vec![]);
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_second_writer_is_refused_while_the_first_holds_the_disk() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = blank_disk(dir.path(), 16);
    let disk = device.disk();
    let _first = disk::open_for_write(&disk).unwrap();
    let error = disk::open_for_write(&disk).unwrap_err();
    assert!(matches!(error, DiskError::Busy { .. }), "{error}");
    assert!(error.to_string().contains("is in use"), "{error}");
}

#[test]
#[ignore = "needs root: loop devices"]
fn blkrrpart_replaces_the_kernels_partitions_with_the_new_table() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    // The disk starts with an old table of one big partition that the kernel shows.
    let backing = backing_file(dir.path(), "disk", 64);
    run(
        "sgdisk",
        &["-n1:0:+40M", "-c1:old", backing.to_str().unwrap()],
    );
    let device = LoopDevice::attach(&backing);
    device.show_partitions();
    assert_eq!(
        device.kernel_partitions(),
        vec![(format!("{}p1", device.name()), 40 * MIB)]
    );

    let target = write_image(&device.disk(), &emt_image(dir.path(), 16));
    gpt::reread_partition_table(&target).unwrap();
    assert_eq!(
        device.kernel_partitions(),
        vec![
            (format!("{}p1", device.name()), 8 * MIB),
            (format!("{}p2", device.name()), 4 * MIB),
            (format!("{}p3", device.name()), 2 * MIB),
        ]
    );
    assert!(device.partition(3).exists(), "device node in /dev");
}

#[test]
#[ignore = "needs root: loop devices"]
fn blkrrpart_on_a_disk_in_use_gives_up_after_bounded_retries() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = LoopDevice::attach(&emt_disk(dir.path(), 64));
    let _mounted = mount_new_ext4_on_partition_2(&device, &dir.path().join("mnt"));

    let file = File::open(&device.path).unwrap();
    let error = gpt::reread_partition_table(&file).unwrap_err();
    assert!(
        matches!(error, GptError::RereadBusy { attempts: 9 }),
        "{error}"
    );
    assert!(
        error.to_string().contains("a partition is in use"),
        "{error}"
    );
}

fn sgdisk(device: &LoopDevice, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push(device.path.to_str().unwrap());
    run("sgdisk", &all)
}

#[test]
#[ignore = "needs root: loop devices"]
fn the_backup_header_is_moved_to_the_end_of_the_disk() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = blank_disk(dir.path(), 64);
    let mut target = write_image(&device.disk(), &emt_image(dir.path(), 16));
    let before = sgdisk(&device, &["-v"]);
    assert!(
        before.contains("doesn't reside\nat the end of the disk"),
        "{before}"
    );

    gpt::relocate_backup_header(&mut target, 512).unwrap();
    let after = sgdisk(&device, &["-v"]);
    assert!(after.contains("No problems found"), "{after}");
    // Already at the end: a second call changes nothing.
    let bytes = fs::read(dir.path().join("disk")).unwrap();
    gpt::relocate_backup_header(&mut target, 512).unwrap();
    assert!(bytes == fs::read(dir.path().join("disk")).unwrap());
}

/// `sgdisk -i N`: (name, size line) of partition N.
fn partition_details(device: &LoopDevice, number: u32) -> (String, String) {
    let info = sgdisk(device, &["-i", &number.to_string()]);
    let field = |label: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` in {info}"))
            .trim()
            .to_string()
    };
    (field("Partition name:"), field("Partition size:"))
}

#[test]
#[ignore = "needs root: loop devices"]
fn the_ab_layout_is_applied_and_sgdisk_agrees() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let device = blank_disk(dir.path(), 64);
    let mut target = write_image(&device.disk(), &emt_image(dir.path(), 16));
    gpt::relocate_backup_header(&mut target, 512).unwrap();
    let layout = Layout {
        grow: Some(3),
        add: vec![
            NewPartition {
                name: "rootfs_b".parse().unwrap(),
                size_mib: Some(16),
                type_guid: None,
            },
            NewPartition {
                name: "hash_b".parse().unwrap(),
                size_mib: Some(4),
                type_guid: Some("8DA63339-0007-60C0-C436-083AC8230908".parse().unwrap()),
            },
        ],
    };
    let changes = gpt::apply_layout(&mut target, 512, &layout).unwrap();
    assert_eq!(changes.len(), 3);

    assert!(sgdisk(&device, &["-v"]).contains("No problems found"));
    // 64 MiB disk: 33 sectors of backup table at the end, so the 20 MiB of added partitions
    // start at 43 MiB (1 MiB aligned) and edge_persistent, from 13 MiB, grows to 30 MiB.
    assert_eq!(
        partition_details(&device, 3),
        (
            "'edge_persistent'".into(),
            "61440 sectors (30.0 MiB)".into()
        )
    );
    assert_eq!(
        partition_details(&device, 4),
        ("'rootfs_b'".into(), "32768 sectors (16.0 MiB)".into())
    );
    assert_eq!(
        partition_details(&device, 5),
        ("'hash_b'".into(), "8192 sectors (4.0 MiB)".into())
    );
    let table = sgdisk(&device, &["-p"]);
    assert!(
        table.contains("88064"),
        "rootfs_b starts at 43 MiB: {table}"
    );
    assert!(
        sgdisk(&device, &["-i", "5"]).contains("8DA63339-0007-60C0-C436-083AC8230908"),
        "hash_b keeps its type"
    );
    // The ESP is still where the image put it, for the boot entry.
    let esp = gpt::esp_partition(&mut target, 512).unwrap();
    assert_eq!(
        (esp.number, esp.start_lba, esp.size_lbas),
        (1, 2048, 8 * 2048)
    );
}
