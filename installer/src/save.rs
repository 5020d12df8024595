//! Partitions kept across a reinstall (`--save-partlabel`, `--save-partindex`, `[disk]
//! save_partlabel`/`save_partindex`), as coreos-installer keeps them: their entries are read
//! from the disk's table before anything is written, the image must end before the first of
//! them (so their data is never written over), and the entries are put into the written
//! table afterwards, under their old number when it is free. On a failure the disk gets a
//! table with only the saved partitions, so a failed reinstall does not lose them either.

use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};

use bootkit_common::install_config::SavePartitions;
use gptman::{GPT, GPTPartitionEntry};

use crate::gpt::{self, GptError};

/// Why the partitions to keep cannot be found or put back.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The disk cannot be opened to read its current table.
    #[error("cannot open {path} to read the partitions to keep")]
    Open {
        /// The disk.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A saved partition starts inside the disk's first MiB, where the new table goes.
    #[error(
        "partition {number} ({name}) of {path} is to be kept but starts at byte {start}, inside \
         the first MiB that the image's partition table is written to; it cannot be kept"
    )]
    InHead {
        /// The disk.
        path: PathBuf,
        /// Its partition number.
        number: u32,
        /// Its GPT name.
        name: String,
        /// Its first byte.
        start: u64,
    },
    /// A saved partition lies where the written image has a partition.
    #[error(
        "partition {number} ({name}) is to be kept but the image's partition {image_number} \
         ({image_name}) overlaps it: keep only partitions that lie after the image's"
    )]
    Overlap {
        /// The saved partition's number.
        number: u32,
        /// Its GPT name.
        name: String,
        /// The image's partition it overlaps.
        image_number: u32,
        /// That partition's GPT name.
        image_name: String,
    },
    /// The written table has no free entry for a saved partition.
    #[error("the image's partition table has no free entry for the kept partition {name}")]
    TableFull {
        /// The saved partition's GPT name.
        name: String,
    },
    /// Reading or writing a partition table failed.
    #[error(transparent)]
    Gpt(#[from] GptError),
}

/// One partition to keep, as it was in the disk's table.
#[derive(Debug, Clone)]
pub struct SavedPartition {
    /// Its number in the old table.
    pub number: u32,
    /// Its entry (type, GUID, LBAs, attributes, name).
    pub entry: GPTPartitionEntry,
}

/// The partitions to keep, with the sector size their LBAs count in.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// The disk's logical sector size in bytes.
    pub sector_size: u64,
    /// The partitions, in table order.
    pub partitions: Vec<SavedPartition>,
}

impl Saved {
    /// The partitions of `disk`'s current table that `rules` name. A disk without a (valid)
    /// GPT has nothing to keep.
    pub fn read(disk: &Path, sector_size: u64, rules: &SavePartitions) -> Result<Saved, SaveError> {
        let mut saved = Saved {
            sector_size,
            partitions: Vec::new(),
        };
        if rules.is_empty() {
            return Ok(saved);
        }
        let mut file = File::open(disk).map_err(|source| SaveError::Open {
            path: disk.to_path_buf(),
            source,
        })?;
        let Ok(table) = GPT::read_from(&mut file, sector_size) else {
            return Ok(saved);
        };
        for (number, entry) in table.iter().filter(|(_, entry)| entry.is_used()) {
            let label = entry.partition_name.as_str().to_string();
            let by_index = rules.indexes.iter().any(|range| range.contains(number));
            let by_label = rules.labels.iter().any(|glob| fnmatch(glob, &label));
            if !(by_index || by_label) {
                continue;
            }
            let start = entry.starting_lba * sector_size;
            if start < crate::write::HEAD_BYTES {
                return Err(SaveError::InHead {
                    path: disk.to_path_buf(),
                    number,
                    name: label,
                    start,
                });
            }
            saved.partitions.push(SavedPartition {
                number,
                entry: entry.clone(),
            });
        }
        Ok(saved)
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// The kept partitions as byte ranges `[start, end)`, which nothing may write to.
    pub fn byte_ranges(&self) -> Vec<(u64, u64)> {
        self.partitions
            .iter()
            .map(|saved| {
                (
                    saved.entry.starting_lba * self.sector_size,
                    (saved.entry.ending_lba + 1) * self.sector_size,
                )
            })
            .collect()
    }

    /// For the plan and the notes: `3 (edge_persistent, 5.0 MiB at byte 3145728)`.
    pub fn describe(&self) -> Vec<String> {
        self.partitions
            .iter()
            .map(|saved| {
                let bytes =
                    (saved.entry.ending_lba + 1 - saved.entry.starting_lba) * self.sector_size;
                format!(
                    "partition {} ({}, {} at byte {})",
                    saved.number,
                    saved.entry.partition_name.as_str(),
                    bootkit_common::size::human_size(bytes),
                    saved.entry.starting_lba * self.sector_size
                )
            })
            .collect()
    }

    /// Puts the kept entries into the table written to `disk` (already stretched to the
    /// whole disk): under their old number when the image does not use it, else the first
    /// free one. Returns what was done, one line per partition.
    pub fn restore(&self, disk: &mut File) -> Result<Vec<String>, SaveError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let mut table =
            GPT::read_from(disk, self.sector_size).map_err(|source| GptError::Read {
                sector_size: self.sector_size,
                source,
            })?;
        self.merge(&mut table).and_then(|notes| {
            gpt::write_table(disk, &mut table)
                .map(|()| notes)
                .map_err(Into::into)
        })
    }

    /// True when `table` still lists every kept partition where it was: a disk the failure
    /// did not touch, which needs nothing put back.
    pub fn all_in(&self, table: &GPT) -> bool {
        self.partitions.iter().all(|saved| {
            table.iter().any(|(number, entry)| {
                number == saved.number
                    && entry.unique_partition_guid == saved.entry.unique_partition_guid
                    && entry.starting_lba == saved.entry.starting_lba
                    && entry.ending_lba == saved.entry.ending_lba
            })
        })
    }

    /// After a failure: a new, empty table on `disk` with only the kept partitions, so they
    /// survive although the image does not. The failure zeroed the first MiB, protective MBR
    /// included, and the kernel (like fdisk and blkid) ignores a GPT without one: a new
    /// protective MBR is written with the table.
    pub fn restore_alone(&self, disk: &mut File) -> Result<Vec<String>, SaveError> {
        let mut table = GPT::new_from(disk, self.sector_size, uuid::Uuid::new_v4().to_bytes_le())
            .map_err(GptError::Write)?;
        let notes = self.merge(&mut table)?;
        GPT::write_protective_mbr_into(disk, self.sector_size).map_err(GptError::Write)?;
        gpt::write_table(disk, &mut table)?;
        Ok(notes)
    }

    fn merge(&self, table: &mut GPT) -> Result<Vec<String>, SaveError> {
        let mut notes = Vec::new();
        for saved in &self.partitions {
            let name = saved.entry.partition_name.as_str().to_string();
            let overlapping = table.iter().find(|(_, entry)| {
                entry.is_used()
                    && entry.starting_lba <= saved.entry.ending_lba
                    && saved.entry.starting_lba <= entry.ending_lba
            });
            if let Some((image_number, entry)) = overlapping {
                return Err(SaveError::Overlap {
                    number: saved.number,
                    name: name.clone(),
                    image_number,
                    image_name: entry.partition_name.as_str().to_string(),
                });
            }
            let free = |number: u32| table.iter().any(|(n, e)| n == number && e.is_unused());
            let number = if free(saved.number) {
                saved.number
            } else {
                table
                    .iter()
                    .find(|(_, entry)| entry.is_unused())
                    .map(|(number, _)| number)
                    .ok_or_else(|| SaveError::TableFull { name: name.clone() })?
            };
            table[number] = saved.entry.clone();
            notes.push(if number == saved.number {
                format!("kept partition {number} ({name})")
            } else {
                format!(
                    "kept partition {} ({name}) as partition {number}: the image uses {}",
                    saved.number, saved.number
                )
            });
        }
        Ok(notes)
    }
}

/// Shell glob matching as fnmatch(3) does it, the rule coreos-installer's
/// `--save-partlabel` documents ("glob-style").
pub(crate) fn fnmatch(pattern: &str, text: &str) -> bool {
    let (Ok(pattern), Ok(text)) = (CString::new(pattern), CString::new(text)) else {
        return false;
    };
    // SAFETY: both are NUL-terminated strings that live across the call.
    unsafe { libc::fnmatch(pattern.as_ptr(), text.as_ptr(), 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_as_shell_globs() {
        assert!(fnmatch("edge_*", "edge_persistent"));
        assert!(fnmatch("edge_persistent", "edge_persistent"));
        assert!(!fnmatch("edge_*", "rootfs"));
        assert!(fnmatch("data[0-9]", "data3"));
    }
}
