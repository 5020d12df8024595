//! Installed and usable memory.

use std::path::Path;

use crate::sysfs;

/// Installed and usable memory, in bytes; None when the kernel offers neither source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Installed memory in bytes: the online memory blocks of /sys/devices/system/memory, or
    /// MemTotal when the kernel has no memory-block directory.
    pub total_bytes: Option<u64>,
    /// Memory the kernel can hand out in bytes (MemTotal: installed minus firmware and kernel
    /// reservations).
    pub usable_bytes: Option<u64>,
}

pub(crate) fn read(sys: &Path, proc: &Path) -> Memory {
    let usable_bytes = mem_total(proc);
    Memory {
        total_bytes: online_block_bytes(&sys.join("devices/system/memory")).or(usable_bytes),
        usable_bytes,
    }
}

fn mem_total(proc: &Path) -> Option<u64> {
    let meminfo = std::fs::read_to_string(proc.join("meminfo")).ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

fn online_block_bytes(memory_dir: &Path) -> Option<u64> {
    let block_size =
        u64::from_str_radix(&sysfs::text(&memory_dir.join("block_size_bytes"))?, 16).ok()?;
    let online = sysfs::entries(memory_dir)
        .into_iter()
        .filter(|(name, _)| name.starts_with("memory"))
        .filter(|(_, path)| sysfs::number(&path.join("online")) == Some(1))
        .count();
    let total = block_size.checked_mul(u64::try_from(online).ok()?)?;
    (total > 0).then_some(total)
}
