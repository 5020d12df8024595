//! The target disk: finding, choosing and checking it.
//!
//! Everything is read from sysfs, /dev and /proc: the bootkit has no udev, so there is no
//! `/dev/disk/by-*` and no udev database to ask. [`SystemRoot`] names where those trees are, so
//! the rules can be tested against a fake tree; the free functions use the live machine.
//! Disks and partitions are read by the shared `bootkit_common::blockdev`, so the installer
//! and hwinfo give a disk the same transport (a virtio-scsi disk is SCSI), serial and WWN.
//!
//! The automatic choice ([`choose`]) takes a disk that is: not the medium the bootkit booted
//! from, SATA/NVMe/virtio/SCSI (never loop, ram, zram, device-mapper, md RAID, optical, NBD,
//! eMMC or USB), not removable, not read-only, at least as large as the image and the policy's
//! minimum; among those the smallest (or largest, by policy), ties broken by name.

mod boot;
mod safety;
mod select;
mod sysfs;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bootkit_common::blockdev::{BlockDevError, BlockDisk, Sysfs, partition_name};
use bootkit_common::size::human_size;

pub use bootkit_common::blockdev::Transport;
pub use safety::{UnsafeReason, image_sector_size};
pub use select::Rejection;

/// The automatic choice's policy is the install config's `[disk]` section.
pub use bootkit_common::install_config::{SelectPolicy, SizePreference};

/// The device node of partition `number` on `disk`: the kernel appends `p` before the number
/// when the disk name ends in a digit (`/dev/nvme0n1p2`, `/dev/loop3p1`) and not otherwise
/// (`/dev/vda2`, `/dev/sdb1`).
pub fn partition_path(disk: &Path, number: u32) -> PathBuf {
    PathBuf::from(partition_name(&disk.as_os_str().to_string_lossy(), number))
}

/// A whole disk as the kernel shows it in `/sys/block` ([`BlockDisk`], read by the shared
/// `bootkit_common::blockdev`; its fields are reached through `Deref`), with its device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Device node: `/dev/sda`.
    pub dev_path: PathBuf,
    /// What sysfs says about the disk.
    pub block: BlockDisk,
}

impl Deref for Disk {
    type Target = BlockDisk;

    fn deref(&self) -> &BlockDisk {
        &self.block
    }
}

impl fmt::Display for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}",
            self.dev_path.display(),
            self.transport.label(),
            human_size(self.size_bytes)
        )?;
        if let Some(model) = &self.model {
            write!(f, ", {model}")?;
        }
        if let Some(serial) = &self.serial {
            write!(f, ", serial {serial}")?;
        }
        write!(f, ")")
    }
}

/// Why a disk cannot be found, chosen or written. Each message says what to give instead.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Reading the disks and partitions from sysfs failed.
    #[error(transparent)]
    Sysfs(#[from] BlockDevError),
    /// A file needed to find or check the disk (the given path, a `/proc` table, a file on
    /// the boot medium) cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file that cannot be read.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The disk was named by a path that does not exist.
    #[error(
        "{} does not exist{hint}; disks seen: {known}",
        path.display()
    )]
    NoSuchPath {
        /// The path as given.
        path: PathBuf,
        /// More on why, starting with ` and …`, or empty.
        hint: &'static str,
        /// Every disk seen, with size and serial, or `none`.
        known: String,
    },
    /// The disk was named by a path that is not a block device.
    #[error("{} is not a block device: give a disk such as /dev/sda or /dev/nvme0n1", path.display())]
    NotBlockDevice {
        /// The path as given.
        path: PathBuf,
    },
    /// The disk was named by a partition, not a whole disk.
    #[error(
        "{} is a partition of {}: give the whole disk (--disk {}), the image brings its own partition table",
        given.display(), disk.display(), disk.display()
    )]
    IsPartition {
        /// The path as given.
        given: PathBuf,
        /// The device node of the disk holding the partition.
        disk: PathBuf,
    },
    /// The disk was named by a block device that is neither a disk in `/sys/block` nor one of
    /// their partitions.
    #[error("{} (device {major}:{minor}) is not a disk listed in /sys/block; disks seen: {known}", path.display())]
    NotADisk {
        /// The path as given.
        path: PathBuf,
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
        /// Every disk seen, with size and serial, or `none`.
        known: String,
    },
    /// No disk has the kernel name, serial number or WWN the disk was named by.
    #[error(
        "no disk has the name, serial number or WWN `{spec}`; disks seen: {known}; name the disk by its /dev path instead"
    )]
    NoSuchIdentity {
        /// The name as given.
        spec: String,
        /// Every disk seen, with size and serial, or `none`.
        known: String,
    },
    /// The name, serial number or WWN matches more than one disk.
    #[error(
        "`{spec}` matches several disks ({matches}), e.g. the paths of a multipath disk: name one by its /dev path"
    )]
    Ambiguous {
        /// The name as given.
        spec: String,
        /// The device nodes of the disks it matches, comma-separated.
        matches: String,
    },
    /// The automatic choice found no disk that passes its rule.
    #[error("{}", no_eligible_message(*image_size, *min_size, seen))]
    NoEligibleDisk {
        /// The size of the image, in bytes.
        image_size: u64,
        /// The smallest disk size accepted, in bytes: the image's size or the policy's
        /// minimum, whichever is larger.
        min_size: u64,
        /// Every disk seen and why it was not chosen.
        seen: Vec<(Disk, Vec<Rejection>)>,
    },
    /// The disk failed the checks made before writing ([`SystemRoot::check_safe`]).
    #[error("refusing to write to {}: {}", disk.display(), join(reasons))]
    Unsafe {
        /// The disk's device node.
        disk: PathBuf,
        /// Every reason found, at least one.
        reasons: Vec<UnsafeReason>,
    },
    /// Opening the disk with `O_EXCL` failed with `EBUSY`: something else holds it.
    #[error(
        "{} is in use (the kernel or another program holds it: a mount, swap, LVM, RAID or a running installer): release it, then retry",
        disk.display()
    )]
    Busy {
        /// The disk's device node.
        disk: PathBuf,
    },
    /// Opening the disk for writing failed for another reason.
    #[error("cannot open {} for writing", disk.display())]
    Open {
        /// The disk's device node.
        disk: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The EFI variable naming the boot partition (`LoaderDevicePartUUID`) cannot be read.
    #[error("cannot tell which disk the bootkit booted from")]
    BootVariable(#[from] crate::efi::EfiError),
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn no_eligible_message(image_size: u64, min_size: u64, seen: &[(Disk, Vec<Rejection>)]) -> String {
    let mut message = format!(
        "no disk can be chosen automatically for a {} image (the rule: not the boot medium, \
         SATA/NVMe/virtio/SCSI, not USB, not removable, not read-only, at least {})",
        human_size(image_size),
        human_size(min_size)
    );
    if seen.is_empty() {
        message.push_str("; no disk at all in /sys/block (is the disk driver loaded?)");
    }
    for (disk, reasons) in seen {
        message.push_str(&format!("\n  {disk}: {}", join(reasons)));
    }
    message.push_str("\nName the disk with --disk (or `device` in [disk] of the install config).");
    message
}

/// Where the machine's state is read from: `/sys`, `/dev` and `/proc` on the live system, a
/// fake tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRoot {
    /// The sysfs tree: `/sys`.
    pub sys: PathBuf,
    /// The device nodes: `/dev`.
    pub dev: PathBuf,
    /// The proc tree, for the mounts and swaps of the disk checks: `/proc`.
    pub proc: PathBuf,
}

impl SystemRoot {
    /// The live machine: `/sys`, `/dev` and `/proc`.
    pub fn live() -> SystemRoot {
        SystemRoot {
            sys: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
            proc: PathBuf::from("/proc"),
        }
    }

    /// A fake machine whose trees are `root/sys`, `root/dev` and `root/proc`.
    pub fn under(root: &Path) -> SystemRoot {
        SystemRoot {
            sys: root.join("sys"),
            dev: root.join("dev"),
            proc: root.join("proc"),
        }
    }

    /// The sysfs tree, for the shared block-device reader.
    pub fn sysfs(&self) -> Sysfs {
        Sysfs::at(&self.sys)
    }

    /// efivarfs, where the firmware's variables are.
    pub fn efivars(&self) -> PathBuf {
        self.sys.join("firmware/efi/efivars")
    }

    /// Every whole disk in `/sys/block`, sorted by name.
    pub fn list(&self) -> Result<Vec<Disk>, DiskError> {
        sysfs::list(self)
    }

    /// The disk named by `spec`: a /dev path, a /dev/disk/by-id link (or, without udev, the
    /// by-id name matched against serials and WWNs), a kernel name (`sda`), a serial number
    /// or a WWN. A partition is refused with the name of its disk.
    pub fn resolve(&self, spec: &str) -> Result<Disk, DiskError> {
        let disks = self.list()?;
        if spec.starts_with('/') {
            self.resolve_path(Path::new(spec), &disks)
        } else {
            sysfs::find_by_identity(spec, &disks)
        }
    }

    fn resolve_path(&self, path: &Path, disks: &[Disk]) -> Result<Disk, DiskError> {
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return self.resolve_missing_path(path, disks);
            }
            Err(source) => {
                return Err(DiskError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if !metadata.file_type().is_block_device() {
            return Err(DiskError::NotBlockDevice {
                path: path.to_path_buf(),
            });
        }
        let rdev = metadata.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        if let Some(disk) = disks.iter().find(|d| (d.major, d.minor) == (major, minor)) {
            return Ok(disk.clone());
        }
        if let Some(disk_name) = self.sysfs().partition_parent(major, minor) {
            return Err(DiskError::IsPartition {
                given: path.to_path_buf(),
                disk: self.dev.join(disk_name),
            });
        }
        Err(DiskError::NotADisk {
            path: path.to_path_buf(),
            major,
            minor,
            known: sysfs::describe_all(disks),
        })
    }

    /// `/dev/disk/by-id` exists only where udev runs; the bootkit has none, so a by-id name
    /// (`nvme-Samsung_SSD_970_S4EWNX0M123456`, `wwn-0x5000c500a1b2c3d4`) is matched against
    /// the serials and WWNs read from sysfs instead.
    fn resolve_missing_path(&self, path: &Path, disks: &[Disk]) -> Result<Disk, DiskError> {
        let by_id_name = path
            .parent()
            .filter(|parent| parent.ends_with("disk/by-id"))
            .and_then(|_| path.file_name())
            .and_then(|name| name.to_str());
        match by_id_name {
            Some(name) => {
                // udev names a partition `<disk name>-part<N>`.
                let disk_name = name
                    .rsplit_once("-part")
                    .filter(|(_, number)| {
                        !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit())
                    })
                    .map(|(disk_name, _)| disk_name);
                let found = sysfs::find_by_id_name(disk_name.unwrap_or(name), disks);
                match (found, disk_name) {
                    (Ok(disk), None) => Ok(disk),
                    (Ok(disk), Some(_)) => Err(DiskError::IsPartition {
                        given: path.to_path_buf(),
                        disk: disk.dev_path,
                    }),
                    (Err(_), _) => Err(DiskError::NoSuchPath {
                        path: path.to_path_buf(),
                        hint: " and no disk's serial or WWN matches its name (there is no udev \
                               in the bootkit, so /dev/disk/by-id is matched through sysfs)",
                        known: sysfs::describe_all(disks),
                    }),
                }
            }
            None => Err(DiskError::NoSuchPath {
                path: path.to_path_buf(),
                hint: "",
                known: sysfs::describe_all(disks),
            }),
        }
    }

    /// The automatic choice (the rule is in this module's documentation). `exclude` are the
    /// boot media ([`SystemRoot::boot_medium`]).
    pub fn choose(
        &self,
        policy: &SelectPolicy,
        image_size: u64,
        exclude: &[Disk],
    ) -> Result<Disk, DiskError> {
        select::choose(self.list()?, policy, image_size, exclude)
    }

    /// The disks the bootkit was started from: the one holding the partition whose GPT unique
    /// GUID systemd-stub put in `LoaderDevicePartUUID`, and the ones holding `files` (e.g. the
    /// image on the USB stick's data partition). Files on no disk (tmpfs) add nothing.
    pub fn boot_medium(&self, files: &[&Path]) -> Result<Vec<Disk>, DiskError> {
        boot::boot_medium(self, files)
    }

    /// Refuses, before a byte is written, a disk in use (a partition mounted, used as swap or
    /// held by LVM/dm/md), smaller than the image, read-only, or whose logical sector size is
    /// not the image's (`None`: the image has no GPT to tell).
    pub fn check_safe(
        &self,
        disk: &Disk,
        image_size: u64,
        image_sector_size: Option<u32>,
    ) -> Result<(), DiskError> {
        safety::check_safe(self, disk, image_size, image_sector_size)
    }
}

/// [`SystemRoot::list`] on the live machine.
pub fn list() -> Result<Vec<Disk>, DiskError> {
    SystemRoot::live().list()
}

/// [`SystemRoot::resolve`] on the live machine.
pub fn resolve(spec: &str) -> Result<Disk, DiskError> {
    SystemRoot::live().resolve(spec)
}

/// [`SystemRoot::choose`] on the live machine.
pub fn choose(policy: &SelectPolicy, image_size: u64, exclude: &[Disk]) -> Result<Disk, DiskError> {
    SystemRoot::live().choose(policy, image_size, exclude)
}

/// [`SystemRoot::boot_medium`] on the live machine.
pub fn boot_medium(files: &[&Path]) -> Result<Vec<Disk>, DiskError> {
    SystemRoot::live().boot_medium(files)
}

/// [`SystemRoot::check_safe`] on the live machine.
pub fn check_safe(
    disk: &Disk,
    image_size: u64,
    image_sector_size: Option<u32>,
) -> Result<(), DiskError> {
    SystemRoot::live().check_safe(disk, image_size, image_sector_size)
}

/// Opens the disk for reading and writing with `O_EXCL`: the kernel then refuses if anything
/// else holds it exclusively (a mounted filesystem, swap, LVM, another installer), and keeps
/// others from claiming it while we write.
pub fn open_for_write(disk: &Disk) -> Result<File, DiskError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(&disk.dev_path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::EBUSY) => DiskError::Busy {
                disk: disk.dev_path.clone(),
            },
            _ => DiskError::Open {
                disk: disk.dev_path.clone(),
                source,
            },
        })
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_follow_the_kernel_rule() {
        assert_eq!(
            partition_path(Path::new("/dev/sda"), 2),
            Path::new("/dev/sda2")
        );
        assert_eq!(
            partition_path(Path::new("/dev/nvme0n1"), 1),
            Path::new("/dev/nvme0n1p1")
        );
        assert_eq!(
            partition_path(Path::new("/dev/loop3"), 4),
            Path::new("/dev/loop3p4")
        );
    }
}
