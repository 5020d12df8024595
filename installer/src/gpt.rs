//! The partition table after the write: re-read, backup header moved to the end, layout applied.
//!
//! Tables are read and written with gptman; filesystems are never touched here (growing a
//! filesystem into a grown partition is someone else's job).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bootkit_common::size::human_size;
use gptman::{GPT, GPTPartitionEntry};

/// `[layout]` of the install config: the changes [`apply_layout`] makes.
pub use bootkit_common::install_config::{Layout, LayoutError, NewPartition};

/// The EFI System partition type.
pub const EFI_SYSTEM_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

const MIB: u64 = 1 << 20;

/// Why the partition table cannot be read, changed or re-read.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// The image's table does not parse for the disk's sector size.
    #[error(
        "cannot read the partition table written to the disk ({sector_size}-byte sectors); \
         the image is not a GPT disk image for this sector size, or it is corrupt"
    )]
    Read {
        /// The disk's logical sector size in bytes.
        sector_size: u64,
        /// gptman's error.
        source: gptman::Error,
    },
    /// The new table cannot be written.
    #[error("cannot write the new partition table: {0}")]
    Write(gptman::Error),
    /// Reading or writing the disk failed.
    #[error("cannot access the disk")]
    Io(#[from] io::Error),
    /// The kernel kept reporting the disk busy (EBUSY) on BLKRRPART.
    #[error(
        "the kernel still reports the disk busy after {attempts} attempts to re-read its \
         partition table: a partition is in use (mounted, swap, LVM); the new table is on the \
         disk but the kernel shows the old partitions until they are released and \
         `blockdev --rereadpt` is run"
    )]
    RereadBusy {
        /// How many times it was tried.
        attempts: u32,
    },
    /// The device does not support partitions (BLKRRPART: EINVAL).
    #[error(
        "the kernel cannot re-read the partition table: the device does not support partitions \
         (a loop device must be set up with `losetup -P`)"
    )]
    RereadUnsupported,
    /// BLKRRPART failed otherwise.
    #[error("re-reading the partition table (BLKRRPART) failed: {0}")]
    Reread(io::Error),
    /// The kernel refused a partition added with BLKPG.
    #[error("the kernel found no partitions and refused partition {number} from the table (BLKPG)")]
    AddPartition {
        /// The partition number.
        number: u32,
        /// The kernel's error.
        source: io::Error,
    },
    /// `grow` names a partition the image does not have.
    #[error(
        "partition {number} is not in the image's partition table (it has {existing}): fix `grow` in [layout]"
    )]
    GrowMissing {
        /// The partition number `grow` names.
        number: u32,
        /// The partition numbers the image has.
        existing: String,
    },
    /// `grow` names a partition that is not the last one.
    #[error(
        "partition {number} cannot grow: partition {last} comes after it on the disk; only the \
         last partition before the free space can grow"
    )]
    GrowNotLast {
        /// The partition number `grow` names.
        number: u32,
        /// The partition after it.
        last: u32,
    },
    /// A `[layout]` rule that holds on any disk is broken (the config parser refuses these
    /// first; a layout built in code meets them here).
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The added partitions do not fit the disk.
    #[error(
        "the layout needs {needed_mib} MiB after the image's partitions but the disk has only \
         {available_mib} MiB there: use a larger disk or smaller partitions"
    )]
    NoSpace {
        /// What the layout needs, in MiB.
        needed_mib: u64,
        /// What the disk has after the image's partitions, in MiB.
        available_mib: u64,
    },
    /// The table has no free entry.
    #[error("the partition table has no free entry for `{name}`")]
    TableFull {
        /// The partition that did not fit.
        name: String,
    },
    /// No partition has this number.
    #[error("partition {number} is not in the partition table")]
    NoSuchPartition {
        /// The number asked for.
        number: u32,
    },
    /// The image has no EFI System partition.
    #[error(
        "the image's partition table has no EFI System partition (type {EFI_SYSTEM_TYPE}): the \
         firmware cannot boot it"
    )]
    NoEsp,
}

nix::ioctl_none!(
    /// BLKRRPART: asks the kernel to re-read the disk's partition table.
    blkrrpart,
    0x12,
    95
);
nix::ioctl_write_ptr_bad!(
    /// BLKPG: adds, removes or resizes one partition in the kernel's view of the disk.
    blkpg,
    nix::request_code_none!(0x12, 105),
    BlkpgIoctlArg
);

/// `struct blkpg_ioctl_arg` of <linux/blkpg.h> (neither libc nor nix define it).
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// `struct blkpg_partition` of <linux/blkpg.h>: start and length in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

const BLKPG_ADD_PARTITION: libc::c_int = 1;

/// Re-read attempts while the kernel answers busy (udev-less systems still see short-lived
/// opens, e.g. by a prober): 50 ms doubling to 1 s, about 5 s in all.
const REREAD_ATTEMPTS: u32 = 9;
const REREAD_FIRST_DELAY: Duration = Duration::from_millis(50);
const REREAD_MAX_DELAY: Duration = Duration::from_secs(1);

/// Asks the kernel to re-read the disk's partition table (BLKRRPART) so the new partitions
/// appear, retrying a bounded number of times while it answers busy. A kernel built without
/// a GPT parser finds no partitions; they are then handed to it one by one (BLKPG, as
/// `partx -a` does; the kernel then knows no `PARTNAME=` for them). A regular
/// file (an image written to a file) has no kernel partitions: nothing to do.
pub fn reread_partition_table(disk: &File) -> Result<(), GptError> {
    let metadata = disk.metadata()?;
    if !metadata.file_type().is_block_device() {
        return Ok(());
    }
    blkrrpart_with_retries(disk)?;
    let rdev = metadata.rdev();
    let sysfs_dir = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        rustix::fs::major(rdev),
        rustix::fs::minor(rdev)
    ));
    if kernel_shows_partitions(&sysfs_dir)? {
        return Ok(());
    }
    add_partitions_by_hand(disk)
}

fn blkrrpart_with_retries(disk: &File) -> Result<(), GptError> {
    let mut delay = REREAD_FIRST_DELAY;
    for attempt in 1..=REREAD_ATTEMPTS {
        // SAFETY: BLKRRPART takes no argument; the descriptor is open for the call's duration.
        match unsafe { blkrrpart(disk.as_raw_fd()) } {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) if attempt < REREAD_ATTEMPTS => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(REREAD_MAX_DELAY);
            }
            Err(nix::errno::Errno::EBUSY) => break,
            Err(nix::errno::Errno::EINVAL) => return Err(GptError::RereadUnsupported),
            Err(errno) => return Err(GptError::Reread(io::Error::from(errno))),
        }
    }
    Err(GptError::RereadBusy {
        attempts: REREAD_ATTEMPTS,
    })
}

fn kernel_shows_partitions(sysfs_dir: &Path) -> Result<bool, GptError> {
    Ok(std::fs::read_dir(sysfs_dir)?
        .flatten()
        .any(|entry| entry.path().join("partition").is_file()))
}

fn add_partitions_by_hand(disk: &File) -> Result<(), GptError> {
    let sector_size = u64::from(rustix::fs::ioctl_blksszget(disk).map_err(io::Error::from)?);
    let table = read_table(&mut &*disk, sector_size)?;
    for (number, entry) in table.iter().filter(|(_, entry)| entry.is_used()) {
        let mut partition = BlkpgPartition {
            start: (entry.starting_lba * sector_size) as libc::c_longlong,
            length: ((entry.ending_lba + 1 - entry.starting_lba) * sector_size) as libc::c_longlong,
            pno: number as libc::c_int,
            devname: [0; 64],
            volname: [0; 64],
        };
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the struct is a few hundred bytes, far below c_int::MAX"
        )]
        let datalen = std::mem::size_of::<BlkpgPartition>() as libc::c_int;
        let argument = BlkpgIoctlArg {
            op: BLKPG_ADD_PARTITION,
            flags: 0,
            datalen,
            data: (&raw mut partition).cast(),
        };
        // SAFETY: `argument` points at `partition`, both live across the call, laid out as
        // <linux/blkpg.h> defines them.
        unsafe { blkpg(disk.as_raw_fd(), &argument) }.map_err(|errno| GptError::AddPartition {
            number,
            source: io::Error::from(errno),
        })?;
    }
    Ok(())
}

fn read_table<D: Read + Seek>(disk: &mut D, sector_size: u64) -> Result<GPT, GptError> {
    GPT::read_from(disk, sector_size).map_err(|source| GptError::Read {
        sector_size,
        source,
    })
}

fn disk_sectors(disk: &mut File, sector_size: u64) -> Result<u64, GptError> {
    Ok(disk.seek(SeekFrom::End(0))? / sector_size)
}

/// Zeroes the old backup header and its entry array (`start..=end`, in sectors), left
/// inside the disk when a smaller image was written, so no tool finds a stale table there.
fn zero_sectors(disk: &mut File, sector_size: u64, start: u64, end: u64) -> Result<(), GptError> {
    let length = (end + 1 - start) * sector_size;
    disk.seek(SeekFrom::Start(start * sector_size))?;
    io::copy(&mut io::repeat(0).take(length), disk)?;
    Ok(())
}

/// Points the protective MBR's 0xEE entry at the whole disk, as `sgdisk -e` does; a hybrid
/// or foreign MBR (more than the one 0xEE entry) is left alone.
fn fit_protective_mbr(disk: &mut File, sectors: u64) -> Result<(), GptError> {
    const ENTRIES: usize = 446;
    let mut mbr = [0u8; 512];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut mbr)?;
    let entry = |index: usize| &mbr[ENTRIES + 16 * index..ENTRIES + 16 * (index + 1)];
    let protective = mbr[510..512] == [0x55, 0xAA]
        && entry(0)[4] == 0xEE
        && (1..4).all(|index| entry(index).iter().all(|&byte| byte == 0));
    if !protective {
        return Ok(());
    }
    let length = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    disk.seek(SeekFrom::Start((ENTRIES + 12) as u64))?;
    disk.write_all(&length.to_le_bytes())?;
    Ok(())
}

/// Moves the table to the real size of the disk: the backup header to the last sector and the
/// last usable sector with it, like `sgdisk -e` after writing an image smaller than the disk.
/// Writes nothing when the table already spans the disk.
pub fn relocate_backup_header(disk: &mut File, sector_size: u64) -> Result<(), GptError> {
    let mut table = read_table(disk, sector_size)?;
    let old_backup = table.header.backup_lba;
    let old_last_usable = table.header.last_usable_lba;
    table
        .header
        .update_from(disk, sector_size)
        .map_err(GptError::Write)?;
    if table.header.backup_lba == old_backup {
        return Ok(());
    }
    if old_backup < table.header.backup_lba {
        zero_sectors(disk, sector_size, old_last_usable + 1, old_backup)?;
    }
    write_table(disk, &mut table)
}

/// Writes `table` (both headers), fits the protective MBR to the disk and syncs.
pub(crate) fn write_table(disk: &mut File, table: &mut GPT) -> Result<(), GptError> {
    table.write_into(disk).map_err(GptError::Write)?;
    let sectors = disk_sectors(disk, table.sector_size)?;
    fit_protective_mbr(disk, sectors)?;
    disk.sync_data()?;
    Ok(())
}

/// What applying a layout changed, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutChange {
    /// A partition was grown into the free space.
    Grown {
        /// Its partition number.
        number: u32,
        /// Its GPT name.
        name: String,
        /// Its size before, in bytes.
        old_bytes: u64,
        /// Its size after, in bytes.
        new_bytes: u64,
    },
    /// A partition was added.
    Added {
        /// Its partition number.
        number: u32,
        /// Its GPT name.
        name: String,
        /// Where it starts on the disk, in bytes.
        start_bytes: u64,
        /// Its size in bytes.
        bytes: u64,
    },
}

impl fmt::Display for LayoutChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutChange::Grown {
                number,
                name,
                old_bytes,
                new_bytes,
            } => write!(
                f,
                "partition {number} ({name}) grown from {} to {}",
                human_size(*old_bytes),
                human_size(*new_bytes)
            ),
            LayoutChange::Added {
                number,
                name,
                start_bytes,
                bytes,
            } => write!(
                f,
                "partition {number} ({name}) added: {} at {}",
                human_size(*bytes),
                human_size(*start_bytes)
            ),
        }
    }
}

/// A GUID as text (`0FC63DAF-8483-…`) in the mixed-endian byte order GPT stores.
pub fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    uuid::Uuid::parse_str(text.trim())
        .ok()
        .map(|guid| guid.to_bytes_le())
}

/// A validated added partition: its type in GPT byte order and its size in sectors
/// (`None`: the rest of the disk).
struct Addition<'a> {
    name: &'a str,
    type_guid: [u8; 16],
    sectors: Option<u64>,
}

fn validate_additions(layout: &Layout, mib_sectors: u64) -> Result<Vec<Addition<'_>>, GptError> {
    layout.check()?;
    Ok(layout
        .add
        .iter()
        .map(|partition| Addition {
            name: partition.name.as_str(),
            type_guid: partition.partition_type().gpt_bytes(),
            sectors: partition.size_mib.map(|mib| mib * mib_sectors),
        })
        .collect())
}

/// The used partition that ends last: (number, entry).
fn last_partition(table: &GPT) -> Option<(u32, GPTPartitionEntry)> {
    table
        .iter()
        .filter(|(_, entry)| entry.is_used())
        .max_by_key(|(_, entry)| entry.ending_lba)
        .map(|(number, entry)| (number, entry.clone()))
}

fn check_grow(table: &GPT, grow: u32) -> Result<(), GptError> {
    let exists = table
        .iter()
        .any(|(number, entry)| number == grow && entry.is_used());
    if !exists {
        let existing: Vec<String> = table
            .iter()
            .filter(|(_, entry)| entry.is_used())
            .map(|(number, entry)| format!("{number} ({})", entry.partition_name))
            .collect();
        return Err(GptError::GrowMissing {
            number: grow,
            existing: if existing.is_empty() {
                "no partitions".into()
            } else {
                format!("partitions {}", existing.join(", "))
            },
        });
    }
    if let Some((last, _)) = last_partition(table).filter(|(last, _)| *last != grow) {
        return Err(GptError::GrowNotLast { number: grow, last });
    }
    Ok(())
}

fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

fn align_down(value: u64, alignment: u64) -> u64 {
    value / alignment * alignment
}

/// Applies `layout` to the table on the disk: the table is first stretched to the whole disk,
/// then partitions are added and one grown (rules on [`Layout`]). Nothing is written when a
/// rule is broken or the space does not suffice.
pub fn apply_layout(
    disk: &mut File,
    sector_size: u64,
    layout: &Layout,
) -> Result<Vec<LayoutChange>, GptError> {
    if layout.grow.is_none() && layout.add.is_empty() {
        return Ok(Vec::new());
    }
    let mib_sectors = MIB / sector_size;
    let additions = validate_additions(layout, mib_sectors)?;
    let mut table = read_table(disk, sector_size)?;
    table
        .header
        .update_from(disk, sector_size)
        .map_err(GptError::Write)?;
    if let Some(grow) = layout.grow {
        check_grow(&table, grow)?;
    }

    let used_end = last_partition(&table).map_or(table.header.first_usable_lba, |(_, entry)| {
        entry.ending_lba + 1
    });
    let free_start = align_up(used_end, mib_sectors);
    let free_end = table.header.last_usable_lba + 1;
    let available = free_end.saturating_sub(free_start);
    let fixed: u64 = additions
        .iter()
        .filter_map(|addition| addition.sectors)
        .sum();
    let needed = fixed
        + if additions.iter().any(|addition| addition.sectors.is_none()) {
            mib_sectors
        } else {
            0
        };
    if needed > available {
        return Err(GptError::NoSpace {
            needed_mib: needed.div_ceil(mib_sectors),
            available_mib: available / mib_sectors,
        });
    }

    let mut changes = Vec::new();
    // With nothing added, the grown partition ends at the last usable sector.
    let mut next_start = match (layout.grow, additions.is_empty()) {
        (Some(_), true) => free_end,
        (Some(_), false) => align_down(free_end - fixed, mib_sectors),
        (None, _) => free_start,
    };
    if let Some(grow) = layout.grow {
        let entry = &mut table[grow];
        let old_sectors = entry.ending_lba + 1 - entry.starting_lba;
        entry.ending_lba = next_start - 1;
        changes.push(LayoutChange::Grown {
            number: grow,
            name: entry.partition_name.to_string(),
            old_bytes: old_sectors * sector_size,
            new_bytes: (entry.ending_lba + 1 - entry.starting_lba) * sector_size,
        });
    }
    for addition in &additions {
        let sectors = addition.sectors.unwrap_or(free_end - next_start);
        let number = table
            .iter()
            .find(|(_, entry)| entry.is_unused())
            .map(|(number, _)| number)
            .ok_or_else(|| GptError::TableFull {
                name: addition.name.into(),
            })?;
        table[number] = GPTPartitionEntry {
            partition_type_guid: addition.type_guid,
            unique_partition_guid: uuid::Uuid::new_v4().to_bytes_le(),
            starting_lba: next_start,
            ending_lba: next_start + sectors - 1,
            attribute_bits: 0,
            partition_name: addition.name.into(),
        };
        changes.push(LayoutChange::Added {
            number,
            name: addition.name.into(),
            start_bytes: next_start * sector_size,
            bytes: sectors * sector_size,
        });
        next_start += sectors;
    }
    write_table(disk, &mut table)?;
    Ok(changes)
}

/// Where a partition is, as a UEFI Hard Drive device path names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition number (1-based).
    pub number: u32,
    /// First sector (LBA).
    pub start_lba: u64,
    /// Size in sectors.
    pub size_lbas: u64,
    /// The unique partition GUID in GPT (mixed-endian) byte order.
    pub unique_guid: [u8; 16],
    /// Its GPT name (PARTLABEL).
    pub name: String,
}

fn info(number: u32, entry: &GPTPartitionEntry) -> PartitionInfo {
    PartitionInfo {
        number,
        start_lba: entry.starting_lba,
        size_lbas: entry.ending_lba + 1 - entry.starting_lba,
        unique_guid: entry.unique_partition_guid,
        name: entry.partition_name.to_string(),
    }
}

/// Partition `number` of the table on the disk.
pub fn partition(
    disk: &mut File,
    sector_size: u64,
    number: u32,
) -> Result<PartitionInfo, GptError> {
    let table = read_table(disk, sector_size)?;
    table
        .iter()
        .find(|(found, entry)| *found == number && entry.is_used())
        .map(|(number, entry)| info(number, entry))
        .ok_or(GptError::NoSuchPartition { number })
}

/// The first EFI System partition of the table on the disk.
pub fn esp_partition(disk: &mut File, sector_size: u64) -> Result<PartitionInfo, GptError> {
    let esp_type = guid_bytes(EFI_SYSTEM_TYPE);
    let table = read_table(disk, sector_size)?;
    table
        .iter()
        .find(|(_, entry)| Some(entry.partition_type_guid) == esp_type)
        .map(|(number, entry)| info(number, entry))
        .ok_or(GptError::NoEsp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::install_config::PartitionType;

    const SECTOR: u64 = 512;

    /// A disk file of `disk_mib` holding an EMT-like table made for a `image_mib` image: ESP,
    /// rootfs, edge_persistent, the backup header at the image's end.
    fn emt_disk(image_mib: u64, disk_mib: u64) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(image_mib * MIB).unwrap();
        let mut disk = file.reopen().unwrap();
        let mut table = GPT::new_from(&mut disk, SECTOR, [9; 16]).unwrap();
        let parts = [
            ("esp", EFI_SYSTEM_TYPE, 2048, 4095),
            ("rootfs", PartitionType::LINUX_FILESYSTEM, 4096, 8191),
            (
                "edge_persistent",
                PartitionType::LINUX_FILESYSTEM,
                8192,
                10239,
            ),
        ];
        for (index, (name, type_guid, start, end)) in parts.into_iter().enumerate() {
            table[u32::try_from(index).unwrap() + 1] = GPTPartitionEntry {
                partition_type_guid: guid_bytes(type_guid).unwrap(),
                unique_partition_guid: [u8::try_from(index).unwrap() + 1; 16],
                starting_lba: start,
                ending_lba: end,
                attribute_bits: 0,
                partition_name: name.into(),
            };
        }
        table.write_into(&mut disk).unwrap();
        GPT::write_protective_mbr_into(&mut disk, SECTOR).unwrap();
        file.as_file().set_len(disk_mib * MIB).unwrap();
        file
    }

    fn read_back(file: &tempfile::NamedTempFile) -> GPT {
        GPT::read_from(&mut file.reopen().unwrap(), SECTOR).unwrap()
    }

    fn add(name: &str, size_mib: Option<u64>) -> NewPartition {
        NewPartition {
            name: name.parse().unwrap(),
            size_mib,
            type_guid: None,
        }
    }

    #[test]
    fn the_backup_header_moves_to_the_end_of_the_disk() {
        let file = emt_disk(8, 64);
        let before = read_back(&file);
        assert_eq!(before.header.backup_lba, 8 * 2048 - 1);
        relocate_backup_header(&mut file.reopen().unwrap(), SECTOR).unwrap();
        let after = read_back(&file);
        assert_eq!(after.header.backup_lba, 64 * 2048 - 1);
        assert_eq!(after.header.last_usable_lba, 64 * 2048 - 34);
        // The stale backup header inside the disk is gone.
        let mut old = [0u8; 8];
        let mut disk = file.reopen().unwrap();
        disk.seek(SeekFrom::Start((8 * 2048 - 1) * SECTOR)).unwrap();
        disk.read_exact(&mut old).unwrap();
        assert_eq!(old, [0; 8]);
        // The protective MBR covers the disk.
        let mut length = [0u8; 4];
        disk.seek(SeekFrom::Start(446 + 12)).unwrap();
        disk.read_exact(&mut length).unwrap();
        assert_eq!(u32::from_le_bytes(length), 64 * 2048 - 1);
    }

    #[test]
    fn emt_ab_layout_adds_at_the_end_and_grows_the_last_partition() {
        let file = emt_disk(8, 64);
        let layout = Layout {
            grow: Some(3),
            add: vec![add("rootfs_b", Some(16)), add("hash_b", Some(4))],
        };
        let changes = apply_layout(&mut file.reopen().unwrap(), SECTOR, &layout).unwrap();
        let table = read_back(&file);
        let last_usable = 64 * 2048 - 34;
        // 20 MiB at the end, 1 MiB aligned: hash_b ends within the last MiB.
        let first_added = (last_usable + 1 - 20 * 2048) / 2048 * 2048;
        assert_eq!(table[3].ending_lba, first_added - 1);
        assert_eq!(table[4].partition_name.as_str(), "rootfs_b");
        assert_eq!(table[4].starting_lba, first_added);
        assert_eq!(table[4].size().unwrap(), 16 * 2048);
        assert_eq!(table[5].partition_name.as_str(), "hash_b");
        assert_eq!(table[5].starting_lba, first_added + 16 * 2048);
        assert_eq!(table[5].size().unwrap(), 4 * 2048);
        assert_eq!(
            table[4].partition_type_guid,
            guid_bytes(PartitionType::LINUX_FILESYSTEM).unwrap()
        );
        assert_ne!(
            table[4].unique_partition_guid,
            table[5].unique_partition_guid
        );
        assert_eq!(changes.len(), 3);
        assert_eq!(
            changes[0].to_string(),
            format!(
                "partition 3 (edge_persistent) grown from 1.0 MiB to {}",
                human_size((first_added - 8192) * SECTOR)
            )
        );
    }

    #[test]
    fn without_grow_added_partitions_follow_the_image_and_the_last_takes_the_rest() {
        let file = emt_disk(8, 64);
        let layout = Layout {
            grow: None,
            add: vec![
                add("rootfs_b", Some(4)),
                NewPartition {
                    type_guid: Some("e6d6d379-f507-44c2-a23c-238f2a3df928".parse().unwrap()),
                    ..add("data", None)
                },
            ],
        };
        apply_layout(&mut file.reopen().unwrap(), SECTOR, &layout).unwrap();
        let table = read_back(&file);
        assert_eq!(table[4].starting_lba, 10240);
        assert_eq!(table[4].size().unwrap(), 4 * 2048);
        assert_eq!(table[5].starting_lba, 10240 + 4 * 2048);
        assert_eq!(table[5].ending_lba, table.header.last_usable_lba);
        assert_eq!(
            table[5].partition_type_guid,
            guid_bytes("E6D6D379-F507-44C2-A23C-238F2A3DF928").unwrap()
        );
    }

    #[test]
    fn grow_alone_takes_the_rest_of_the_disk() {
        let file = emt_disk(8, 32);
        let layout = Layout {
            grow: Some(3),
            add: vec![],
        };
        apply_layout(&mut file.reopen().unwrap(), SECTOR, &layout).unwrap();
        let table = read_back(&file);
        assert_eq!(table[3].ending_lba, table.header.last_usable_lba);
        assert_eq!(table.header.backup_lba, 32 * 2048 - 1);
    }

    fn refused(layout: Layout) -> (GptError, Vec<u8>, Vec<u8>) {
        let file = emt_disk(8, 64);
        let before = std::fs::read(file.path()).unwrap();
        let error = apply_layout(&mut file.reopen().unwrap(), SECTOR, &layout).unwrap_err();
        let after = std::fs::read(file.path()).unwrap();
        (error, before, after)
    }

    #[test]
    fn broken_layouts_are_refused_before_anything_is_written() {
        let cases = [
            (
                Layout {
                    grow: Some(7),
                    add: vec![],
                },
                "partition 7 is not in the image's partition table (it has partitions 1 (esp), 2 (rootfs), 3 (edge_persistent))",
            ),
            (
                Layout {
                    grow: Some(2),
                    add: vec![],
                },
                "partition 2 cannot grow: partition 3 comes after it",
            ),
            (
                Layout {
                    grow: Some(3),
                    add: vec![add("data", None)],
                },
                "only one can have the free space; give `data` a size_mib",
            ),
            (
                Layout {
                    grow: None,
                    add: vec![add("a", None), add("b", Some(1))],
                },
                "`a` has no size_mib",
            ),
            (
                Layout {
                    grow: None,
                    add: vec![add("a", Some(0))],
                },
                "`a` has size_mib = 0",
            ),
            (
                Layout {
                    grow: Some(3),
                    add: vec![add("big", Some(60))],
                },
                "needs 60 MiB after the image's partitions but the disk has only 58 MiB there",
            ),
        ];
        for (layout, expected) in cases {
            let (error, before, after) = refused(layout);
            let message = error.to_string();
            assert!(
                message.contains(expected),
                "{message}\n  does not contain: {expected}"
            );
            assert!(
                before == after,
                "the disk changed although the layout was refused: {message}"
            );
        }
    }

    #[test]
    fn the_esp_and_a_partition_are_found_in_the_table() {
        let file = emt_disk(8, 8);
        let mut disk = file.reopen().unwrap();
        let esp = esp_partition(&mut disk, SECTOR).unwrap();
        assert_eq!(
            esp,
            PartitionInfo {
                number: 1,
                start_lba: 2048,
                size_lbas: 2048,
                unique_guid: [1; 16],
                name: "esp".into()
            }
        );
        assert_eq!(
            partition(&mut disk, SECTOR, 3).unwrap().name,
            "edge_persistent"
        );
        assert!(matches!(
            partition(&mut disk, SECTOR, 4),
            Err(GptError::NoSuchPartition { number: 4 })
        ));
    }

    #[test]
    fn a_table_without_esp_is_reported() {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(4 * MIB).unwrap();
        let mut disk = file.reopen().unwrap();
        GPT::new_from(&mut disk, SECTOR, [3; 16])
            .unwrap()
            .write_into(&mut disk)
            .unwrap();
        let error = esp_partition(&mut disk, SECTOR).unwrap_err().to_string();
        assert!(error.contains("no EFI System partition"), "{error}");
    }

    #[test]
    fn a_regular_file_needs_no_reread() {
        let file = tempfile::tempfile().unwrap();
        reread_partition_table(&file).unwrap();
    }
}
