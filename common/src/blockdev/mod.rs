//! Block devices from sysfs, read one way for every crate: which `/sys/block` entries are
//! disks, their partitions, transport, serial and WWN, sector sizes and capacity.
//!
//! Only sysfs is read (no device I/O, no udev database: the bootkit has no udev), below a
//! configurable root so tests point it at a fake tree ([`fake`], feature `test-support`).

mod attribute;
mod disk;
mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
mod partition;
mod transport;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use disk::BlockDisk;
pub use error::BlockDevError;
pub use partition::Partition;
pub use transport::Transport;

/// Which `/sys/block` entries [`Sysfs::disks`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFilter {
    /// Every entry, virtual devices included (loop, ram, zram, device-mapper, md, NBD): the
    /// installer lists them to say why it will not pick them, and finds a stick's data
    /// partition on a loop device in tests.
    All,
    /// Only hardware: entries whose device is not below `/sys/devices/virtual` (where the
    /// kernel puts loop, ram, zram, device-mapper, md and NBD devices). The inventory hwinfo
    /// reports.
    Hardware,
}

/// A sysfs tree: `/sys` on the live machine, a fake tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// The live machine's `/sys`.
    pub fn live() -> Sysfs {
        Sysfs::at("/sys")
    }

    /// The sysfs tree mounted (or faked) at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    /// Where the tree is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The names in `/sys/block` that `filter` keeps, sorted.
    pub fn disk_names(&self, filter: DiskFilter) -> Result<Vec<String>, BlockDevError> {
        let block = self.root.join("block");
        let read_error = |source: io::Error| BlockDevError::Read {
            path: block.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&block).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            if filter == DiskFilter::Hardware && is_virtual(&entry.path()) {
                continue;
            }
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Every disk `filter` keeps, sorted by name. A disk whose attributes cannot be read is
    /// an error naming the file: the kernel writes them for every block device.
    pub fn disks(&self, filter: DiskFilter) -> Result<Vec<BlockDisk>, BlockDevError> {
        self.disk_names(filter)?
            .iter()
            .map(|name| self.disk(name))
            .collect()
    }

    /// The disk `name` (`/sys/block/<name>`).
    pub fn disk(&self, name: &str) -> Result<BlockDisk, BlockDevError> {
        let root = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        disk::read(&root, &self.root.join("block").join(name), name)
    }

    /// The partitions the kernel shows for `disk`, sorted by name.
    pub fn partitions(&self, disk: &BlockDisk) -> Result<Vec<Partition>, BlockDevError> {
        partition::of_disk(&disk.sys_path)
    }

    /// The partitions of every disk in `/sys/block`, virtual ones included, sorted by name.
    /// Only the `/sys/block` entries and the partitions' own attributes are read.
    pub fn all_partitions(&self) -> Result<Vec<Partition>, BlockDevError> {
        let mut partitions = Vec::new();
        for name in self.disk_names(DiskFilter::All)? {
            partitions.extend(partition::of_disk(&self.root.join("block").join(name))?);
        }
        partitions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(partitions)
    }

    /// The sysfs directory of block device `major:minor` (disk or partition), symlinks
    /// resolved; `None` when there is no such device.
    pub fn device_dir(&self, major: u32, minor: u32) -> Option<PathBuf> {
        fs::canonicalize(self.root.join(format!("dev/block/{major}:{minor}"))).ok()
    }

    /// The name of the disk holding partition `major:minor`; `None` when that device is not a
    /// partition.
    pub fn partition_parent(&self, major: u32, minor: u32) -> Option<String> {
        let dir = self.device_dir(major, minor)?;
        if !dir.join("partition").is_file() {
            return None;
        }
        Some(dir.parent()?.file_name()?.to_string_lossy().into_owned())
    }
}

/// The kernel name of partition `number` of disk `disk`: the kernel puts `p` before the
/// number when the disk name ends in a digit (`nvme0n1p2`, `loop3p1`) and not otherwise
/// (`vda2`, `sdb1`).
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// Whether a `/sys/block` entry points below `/sys/devices/virtual`.
fn is_virtual(block_entry: &Path) -> bool {
    fs::read_link(block_entry)
        .map(|target| target.to_string_lossy().contains("/virtual/"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
