//! Refusing a disk that is in use or does not fit the image, before a byte is written.

use std::fmt;
use std::fs;
use std::path::Path;

use bootkit_common::blockdev::Partition;
use bootkit_common::size::human_size;

use super::{Disk, DiskError, SystemRoot};

/// Why writing to a disk now would be unsafe or useless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsafeReason {
    /// The disk or one of its partitions is mounted (`/proc/self/mountinfo`).
    Mounted {
        /// The kernel name of the disk or partition: `sda2`.
        device: String,
        /// Where it is mounted, octal escapes undone.
        mount_point: String,
    },
    /// The disk or one of its partitions is in use as swap (`/proc/swaps`).
    Swap {
        /// The kernel name of the disk or partition: `sda3`.
        device: String,
    },
    /// Another block device is built on the disk or one of its partitions (its sysfs
    /// `holders`): LVM, device-mapper or md RAID.
    Held {
        /// The kernel name of the disk or partition: `nvme0n1p3`.
        device: String,
        /// The kernel name of the device holding it: `dm-0`, `md127`.
        holder: String,
    },
    /// The disk is smaller than the image.
    TooSmall {
        /// The disk's size, in bytes.
        disk_size: u64,
        /// The image's size, in bytes.
        image_size: u64,
    },
    /// The image's GPT is laid out for another logical sector size than the disk's.
    SectorSize {
        /// The sector size the image was laid out for, in bytes.
        image: u32,
        /// The disk's logical sector size, in bytes.
        disk: u32,
    },
    /// The kernel marks the disk read-only (`ro` is 1 in sysfs).
    ReadOnly,
}

impl fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsafeReason::Mounted {
                device,
                mount_point,
            } => write!(
                f,
                "{device} is mounted on {mount_point}: unmount it first (umount {mount_point})"
            ),
            UnsafeReason::Swap { device } => write!(
                f,
                "{device} is in use as swap: run `swapoff /dev/{device}` first"
            ),
            UnsafeReason::Held { device, holder } => write!(
                f,
                "{device} is held by {holder} (LVM, device-mapper or RAID): deactivate it first \
                 (vgchange -an, dmsetup remove or mdadm --stop)"
            ),
            UnsafeReason::TooSmall {
                disk_size,
                image_size,
            } => write!(
                f,
                "the disk is too small: it has {} ({disk_size} bytes) and the image needs {} \
                 ({image_size} bytes); choose a larger disk",
                human_size(*disk_size),
                human_size(*image_size)
            ),
            UnsafeReason::SectorSize { image, disk } => write!(
                f,
                "the image is laid out for {image}-byte sectors but the disk has {disk}-byte \
                 logical sectors, so its partition table would not be found; use an image built \
                 for {disk}-byte sectors"
            ),
            UnsafeReason::ReadOnly => f.write_str(
                "the disk is read-only (ro=1 in sysfs: a write-protect switch or a read-only device)",
            ),
        }
    }
}

/// The sector size an image was laid out for, from where its GPT header is: LBA 1 is at byte
/// 512 on 512-byte-sector disks and at byte 4096 on 4K-sector disks. `head` is the image's
/// first bytes (at least 4104 to see a 4K layout); `None` when there is no GPT header.
pub fn image_sector_size(head: &[u8]) -> Option<u32> {
    const SIGNATURE: &[u8] = b"EFI PART";
    [512u32, 4096].into_iter().find(|&sector_size| {
        let start = sector_size as usize;
        head.get(start..start + SIGNATURE.len()) == Some(SIGNATURE)
    })
}

/// Undoes the octal escapes of /proc files (`\040` for a space in a mount point).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 4)
            .filter(|_| bytes[index] == b'\\')
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Device {
    name: String,
    major: u32,
    minor: u32,
}

fn read_proc(path: &Path) -> Result<String, DiskError> {
    fs::read_to_string(path).map_err(|source| DiskError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Mounts of any of `devices`, by device number (mountinfo field 3) or by source path.
fn mounted(root: &SystemRoot, devices: &[Device]) -> Result<Vec<UnsafeReason>, DiskError> {
    let mountinfo = read_proc(&root.proc.join("self/mountinfo"))?;
    let mut reasons = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(number), Some(mount_point)) = (fields.get(2), fields.get(4)) else {
            continue;
        };
        let source = fields
            .iter()
            .position(|field| *field == "-")
            .and_then(|dash| fields.get(dash + 2))
            .map(|source| unescape(source));
        let device = devices.iter().find(|device| {
            *number == format!("{}:{}", device.major, device.minor)
                || source.as_deref() == Some(&format!("/dev/{}", device.name))
        });
        if let Some(device) = device {
            reasons.push(UnsafeReason::Mounted {
                device: device.name.clone(),
                mount_point: unescape(mount_point),
            });
        }
    }
    Ok(reasons)
}

fn swapped(root: &SystemRoot, devices: &[Device]) -> Result<Vec<UnsafeReason>, DiskError> {
    let swaps = read_proc(&root.proc.join("swaps"))?;
    let reasons = swaps
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|file| {
            let file = unescape(file);
            let name = file.strip_prefix("/dev/")?;
            let device = devices.iter().find(|device| device.name == name)?;
            Some(UnsafeReason::Swap {
                device: device.name.clone(),
            })
        })
        .collect();
    Ok(reasons)
}

fn holders(dir: &Path, device: &str) -> Vec<UnsafeReason> {
    let Ok(entries) = fs::read_dir(dir.join("holders")) else {
        return Vec::new();
    };
    let mut reasons: Vec<UnsafeReason> = entries
        .flatten()
        .map(|entry| UnsafeReason::Held {
            device: device.to_string(),
            holder: entry.file_name().to_string_lossy().into_owned(),
        })
        .collect();
    reasons.sort_by_key(ToString::to_string);
    reasons
}

pub(super) fn check_safe(
    root: &SystemRoot,
    disk: &Disk,
    image_size: u64,
    image_sector_size: Option<u32>,
) -> Result<(), DiskError> {
    let partitions = root.sysfs().partitions(disk)?;
    let devices: Vec<Device> = std::iter::once(Device {
        name: disk.name.clone(),
        major: disk.major,
        minor: disk.minor,
    })
    .chain(partitions.iter().map(|partition| Device {
        name: partition.name.clone(),
        major: partition.major,
        minor: partition.minor,
    }))
    .collect();

    let mut reasons = mounted(root, &devices)?;
    reasons.extend(swapped(root, &devices)?);
    reasons.extend(holders(&disk.sys_path, &disk.name));
    for Partition { name, sys_path, .. } in &partitions {
        reasons.extend(holders(sys_path, name));
    }
    if disk.read_only {
        reasons.push(UnsafeReason::ReadOnly);
    }
    if disk.size_bytes < image_size {
        reasons.push(UnsafeReason::TooSmall {
            disk_size: disk.size_bytes,
            image_size,
        });
    }
    if let Some(image) = image_sector_size.filter(|&size| size != disk.logical_sector_size) {
        reasons.push(UnsafeReason::SectorSize {
            image,
            disk: disk.logical_sector_size,
        });
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(DiskError::Unsafe {
            disk: disk.dev_path.clone(),
            reasons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::FakeMachine;

    const GIB: u64 = 1 << 30;

    fn reasons(
        machine: &FakeMachine,
        name: &str,
        image_size: u64,
        sectors: Option<u32>,
    ) -> Vec<UnsafeReason> {
        let disk = machine.listed(name);
        match machine.root().check_safe(&disk, image_size, sectors) {
            Ok(()) => Vec::new(),
            Err(DiskError::Unsafe { reasons, .. }) => reasons,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    #[test]
    fn an_idle_disk_that_fits_is_safe() {
        let machine = FakeMachine::new();
        machine.disk("sda").sata().size_gib(64).partitions(3).add();
        machine.mounts("22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n");
        machine.swaps("/swapfile\tfile\t1048572\t0\t-2\n");
        assert_eq!(reasons(&machine, "sda", 4 * GIB, Some(512)), vec![]);
    }

    #[test]
    fn a_mounted_partition_is_refused_by_number_or_by_source() {
        let machine = FakeMachine::new();
        machine.disk("sda").sata().size_gib(64).partitions(3).add();
        machine.mounts(
            "22 1 254:0 / / rw - ext4 /dev/vda rw\n\
             40 22 8:2 / /mnt/old\\040root rw shared:5 - ext4 /dev/sda2 rw\n\
             41 22 0:45 / /mnt/btrfs rw - btrfs /dev/sda3 rw\n",
        );
        assert_eq!(
            reasons(&machine, "sda", GIB, None),
            vec![
                UnsafeReason::Mounted {
                    device: "sda2".into(),
                    mount_point: "/mnt/old root".into()
                },
                UnsafeReason::Mounted {
                    device: "sda3".into(),
                    mount_point: "/mnt/btrfs".into()
                },
            ]
        );
    }

    #[test]
    fn swap_on_a_partition_is_refused() {
        let machine = FakeMachine::new();
        machine
            .disk("nvme0n1")
            .nvme()
            .size_gib(64)
            .partitions(2)
            .add();
        machine.swaps("/dev/nvme0n1p2\tpartition\t8388604\t0\t-2\n");
        let found = reasons(&machine, "nvme0n1", GIB, None);
        assert_eq!(
            found,
            vec![UnsafeReason::Swap {
                device: "nvme0n1p2".into()
            }]
        );
        assert!(found[0].to_string().contains("swapoff /dev/nvme0n1p2"));
    }

    #[test]
    fn holders_of_the_disk_or_a_partition_are_refused() {
        let machine = FakeMachine::new();
        machine
            .disk("sda")
            .sata()
            .size_gib(64)
            .partitions(2)
            .holder(Some(2), "dm-0")
            .holder(None, "md127")
            .add();
        assert_eq!(
            reasons(&machine, "sda", GIB, None),
            vec![
                UnsafeReason::Held {
                    device: "sda".into(),
                    holder: "md127".into()
                },
                UnsafeReason::Held {
                    device: "sda2".into(),
                    holder: "dm-0".into()
                },
            ]
        );
    }

    #[test]
    fn a_disk_smaller_than_the_image_is_refused_with_both_sizes() {
        let machine = FakeMachine::new();
        machine.disk("vda").virtio().size_gib(2).add();
        let found = reasons(&machine, "vda", 3 * GIB, None);
        assert_eq!(
            found,
            vec![UnsafeReason::TooSmall {
                disk_size: 2 * GIB,
                image_size: 3 * GIB
            }]
        );
        let message = found[0].to_string();
        assert!(
            message.contains("2.0 GiB") && message.contains("3.0 GiB"),
            "{message}"
        );
    }

    #[test]
    fn an_image_for_other_sectors_is_refused() {
        let machine = FakeMachine::new();
        machine
            .disk("sda")
            .sata()
            .size_gib(64)
            .sectors(4096, 4096)
            .add();
        assert_eq!(
            reasons(&machine, "sda", GIB, Some(512)),
            vec![UnsafeReason::SectorSize {
                image: 512,
                disk: 4096
            }]
        );
        assert_eq!(reasons(&machine, "sda", GIB, Some(4096)), vec![]);
    }

    #[test]
    fn a_read_only_disk_is_refused_and_all_reasons_are_listed() {
        let machine = FakeMachine::new();
        machine
            .disk("sda")
            .sata()
            .size_gib(1)
            .read_only()
            .partitions(1)
            .add();
        machine.mounts("40 22 8:1 / /boot rw - vfat /dev/sda1 rw\n");
        let disk = machine.listed("sda");
        let message = machine
            .root()
            .check_safe(&disk, 2 * GIB, None)
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("refusing to write to "), "{message}");
        assert!(message.contains("sda1 is mounted on /boot"), "{message}");
        assert!(message.contains("read-only"), "{message}");
        assert!(message.contains("too small"), "{message}");
    }

    #[test]
    fn the_sector_size_comes_from_where_the_gpt_header_is() {
        let mut head = vec![0u8; 8192];
        assert_eq!(image_sector_size(&head), None);
        head[4096..4104].copy_from_slice(b"EFI PART");
        assert_eq!(image_sector_size(&head), Some(4096));
        head[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(image_sector_size(&head), Some(512));
        assert_eq!(image_sector_size(&head[..100]), None);
    }
}
