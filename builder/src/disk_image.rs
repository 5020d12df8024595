//! Whole-disk images: filesystem images placed at 1 MiB-aligned offsets behind a GPT
//! (written with gptman, protective MBR included). The result is a sparse file: runs of
//! zeros in the filesystem images are skipped, not written.
//!
//! GUIDs are derived from a seed (SHA-256 of the seed and what the GUID is for), so the
//! same inputs give the same image byte for byte, while different images get different
//! GUIDs and can sit in one machine without PARTUUID clashes.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gptman::{GPT, GPTPartitionEntry};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{BuildError, Result};

/// One mebibyte in bytes: partitions start and end on MiB boundaries.
pub const MIB: u64 = 1 << 20;
/// The sector size of the disks made: GPT LBAs count these.
pub(crate) const SECTOR: u64 = 512;

/// EFI System Partition.
pub const ESP_TYPE: Uuid = Uuid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B);
/// Linux filesystem data.
pub const LINUX_DATA_TYPE: Uuid = Uuid::from_u128(0x0FC63DAF_8483_4772_8E79_3D69D8477DE4);

/// A GUID for `what`, the same every time for the same `seed`.
pub fn derived_guid(seed: &str, what: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(seed.as_bytes())
        .chain_update([0])
        .chain_update(what.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// One partition of the disk: its GPT entry and the filesystem image that fills it.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// The GPT partition name (PARTLABEL).
    pub name: String,
    /// The GPT partition type (ESP, Linux filesystem, ...).
    pub type_guid: Uuid,
    /// The partition's own GUID (PARTUUID).
    pub unique_guid: Uuid,
    /// The filesystem image; the partition is its size rounded up to a MiB.
    pub image: PathBuf,
}

/// Where a partition ended up on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPartition {
    /// 1-based partition number.
    pub number: u32,
    /// The GPT partition name (PARTLABEL).
    pub name: String,
    /// Where it starts on the disk, in bytes.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Write a GPT disk image at `out` holding `partitions` in order, the first at 1 MiB, each
/// 1 MiB-aligned, with 1 MiB after the last for the backup GPT.
pub fn assemble(
    out: &Path,
    disk_guid: Uuid,
    partitions: &[PartitionSpec],
) -> Result<Vec<PlacedPartition>> {
    let fail = |reason: String| BuildError::DiskImage {
        path: out.to_path_buf(),
        reason,
    };
    let mut placed = Vec::with_capacity(partitions.len());
    let mut offset = MIB;
    for (index, spec) in partitions.iter().enumerate() {
        let size = fs::metadata(&spec.image)
            .map_err(BuildError::io(format!("stat {}", spec.image.display())))?
            .len()
            .next_multiple_of(MIB);
        let number = u32::try_from(index + 1).map_err(|_| fail("too many partitions".into()))?;
        placed.push(PlacedPartition {
            number,
            name: spec.name.clone(),
            offset,
            size,
        });
        offset += size;
    }
    let total = offset + MIB;

    let what = || format!("write {}", out.display());
    let mut file = File::create(out).map_err(BuildError::io(what()))?;
    file.set_len(total).map_err(BuildError::io(what()))?;
    let mut gpt = GPT::new_from(&mut file, SECTOR, disk_guid.to_bytes_le())
        .map_err(|err| fail(format!("cannot start a partition table: {err}")))?;
    gpt.align = MIB / SECTOR;
    for (spec, place) in partitions.iter().zip(&placed) {
        gpt[place.number] = GPTPartitionEntry {
            partition_type_guid: spec.type_guid.to_bytes_le(),
            unique_partition_guid: spec.unique_guid.to_bytes_le(),
            starting_lba: place.offset / SECTOR,
            ending_lba: (place.offset + place.size) / SECTOR - 1,
            attribute_bits: 0,
            partition_name: spec.name.as_str().into(),
        };
    }
    gpt.write_into(&mut file)
        .map_err(|err| fail(format!("cannot write the partition table: {err}")))?;
    GPT::write_protective_mbr_into(&mut file, SECTOR)
        .map_err(|err| fail(format!("cannot write the protective MBR: {err}")))?;
    for (spec, place) in partitions.iter().zip(&placed) {
        File::open(&spec.image)
            .and_then(|mut image| copy_sparse(&mut image, &mut file, place.offset))
            .map_err(BuildError::io(format!(
                "copy {} into {} at offset {}",
                spec.image.display(),
                out.display(),
                place.offset
            )))?;
    }
    file.sync_all().map_err(BuildError::io(what()))?;
    Ok(placed)
}

/// Copy `input` into `out` at `offset`, leaving all-zero blocks as holes. `out` must be
/// freshly sized (its holes already read as zeros).
pub(crate) fn copy_sparse(
    input: &mut impl Read,
    out: &mut File,
    offset: u64,
) -> std::io::Result<()> {
    const BLOCK: usize = 1 << 20;
    let mut buf = vec![0u8; BLOCK];
    let mut position = offset;
    loop {
        let filled = read_full(input, &mut buf)?;
        if filled == 0 {
            return Ok(());
        }
        let block = &buf[..filled];
        if block.iter().any(|&byte| byte != 0) {
            out.seek(SeekFrom::Start(position))?;
            out.write_all(block)?;
        }
        position += filled as u64;
    }
}

/// Read until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_guids_are_stable_and_distinct() {
        let a = derived_guid("image-a", "esp");
        assert_eq!(a, derived_guid("image-a", "esp"));
        assert_ne!(a, derived_guid("image-a", "rootfs"));
        assert_ne!(a, derived_guid("image-b", "esp"));
        assert_eq!(a.get_version_num(), 4);
    }

    #[test]
    fn partitions_are_aligned_and_hold_their_images() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.img");
        let second = dir.path().join("second.img");
        fs::write(&first, vec![0xAAu8; 3 * 512]).unwrap();
        let mib = usize::try_from(MIB).unwrap();
        let mut data = vec![0u8; mib + 10];
        data[mib + 5] = 7;
        fs::write(&second, &data).unwrap();
        let out = dir.path().join("disk.img");
        let placed = assemble(
            &out,
            derived_guid("t", "disk"),
            &[
                PartitionSpec {
                    name: "one".into(),
                    type_guid: ESP_TYPE,
                    unique_guid: derived_guid("t", "one"),
                    image: first,
                },
                PartitionSpec {
                    name: "two".into(),
                    type_guid: LINUX_DATA_TYPE,
                    unique_guid: derived_guid("t", "two"),
                    image: second,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            placed
                .iter()
                .map(|p| (p.offset, p.size))
                .collect::<Vec<_>>(),
            [(MIB, MIB), (2 * MIB, 2 * MIB)]
        );
        let disk = fs::read(&out).unwrap();
        assert_eq!(disk.len() as u64, 5 * MIB);
        let mib = usize::try_from(MIB).unwrap();
        assert_eq!(&disk[mib..mib + 1536], &[0xAA; 1536][..]);
        assert_eq!(disk[3 * mib + 5], 7);

        let mut file = File::open(&out).unwrap();
        let gpt = GPT::read_from(&mut file, SECTOR).unwrap();
        assert_eq!(gpt[1].partition_name.as_str(), "one");
        assert_eq!(gpt[1].partition_type_guid, ESP_TYPE.to_bytes_le());
        assert_eq!(gpt[2].partition_name.as_str(), "two");
        assert_eq!(gpt[2].starting_lba, 2 * MIB / SECTOR);
        assert_eq!(gpt[2].ending_lba, 4 * MIB / SECTOR - 1);
    }
}
