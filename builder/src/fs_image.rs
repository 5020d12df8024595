//! Filesystem images for the disk images: FAT (an ESP) and ext4, each made in a file of
//! its own, sized from its contents, ready for [`crate::disk_image::assemble`].
//!
//! Deterministic where the tools allow: fixed volume ids and UUIDs from the caller, the
//! build's epoch for every timestamp the tools write themselves (`SOURCE_DATE_EPOCH` for
//! mtools, `E2FSPROGS_FAKE_TIME` for mke2fs), `mkfs.vfat --invariant`. File times inside an
//! ext4 image come from the staging tree: [`set_tree_times`] pins them.

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::path::Path;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::dirs::{dir_entries, entry_type};
use crate::disk_image::MIB;
use crate::error::{BuildError, Result};
use crate::tools::{DEBUGFS, MCOPY, MKFS_EXT4, MKFS_VFAT, MMD};

/// 1980-01-01: FAT cannot store an earlier time, and mke2fs takes a fake time of 0 as
/// "no fake time"; an epoch before it (SOURCE_DATE_EPOCH unset is 0) is raised to it.
pub const EARLIEST_EPOCH: u64 = 315_532_800;

const BLOCK: u64 = 4096;
/// The ext4 journal's size in MiB: mke2fs's minimum (1024 blocks), plenty for data that
/// is written once.
const JOURNAL_MIB: u64 = 4;
/// Attempts at an ext4 image whose contents did not fit, each with twice the headroom.
const EXT4_ATTEMPTS: u32 = 3;

/// The timestamp images are made with.
pub fn image_epoch(epoch: u64) -> u64 {
    epoch.max(EARLIEST_EPOCH)
}

/// A FAT volume id (serial number) from a GUID's first four bytes.
pub fn volume_id(guid: Uuid) -> u32 {
    let bytes = guid.as_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// A file copied into a FAT image: `dest` is its path there (`EFI/BOOT/BOOTX64.EFI`).
#[derive(Debug, Clone, Copy)]
pub struct FatFile<'a> {
    /// The file's path in the image.
    pub dest: &'a str,
    /// The host file to copy.
    pub source: &'a Path,
}

/// Make a FAT image at `image` holding `files`, sized from them with `headroom` bytes to
/// spare. FAT12/16/32 is mkfs.vfat's choice by size: UEFI firmware reads all three on
/// removable media (UEFI 2.10, 13.3.1.1), and OVMF on any disk.
pub fn make_fat(
    image: &Path,
    label: &str,
    volume_id: u32,
    files: &[FatFile<'_>],
    headroom: u64,
    epoch: u64,
) -> Result<()> {
    let mut content = 0;
    for file in files {
        content += fs::metadata(file.source)
            .map_err(BuildError::io(format!("stat {}", file.source.display())))?
            .len()
            .next_multiple_of(BLOCK);
    }
    // FAT tables, root directory and cluster slack stay well under 1/16 of the data plus
    // 2 MiB at these sizes.
    let size = (content + content / 16 + 2 * MIB + headroom).next_multiple_of(MIB);
    create_sized(image, size)?;
    let image_arg = image.as_os_str();
    MKFS_VFAT.run(
        [
            "--invariant".as_ref(),
            "-i".as_ref(),
            format!("{volume_id:08X}").as_ref(),
            "-n".as_ref(),
            label.as_ref(),
            image_arg,
        ],
        &[],
        &format!("format the FAT filesystem {}", image.display()),
    )?;
    let epoch = image_epoch(epoch).to_string();
    let envs = [
        ("SOURCE_DATE_EPOCH", epoch.as_str()),
        ("MTOOLS_SKIP_CHECK", "1"),
    ];
    let mut made = std::collections::BTreeSet::new();
    for file in files {
        let mut dir = String::new();
        let parts: Vec<&str> = file.dest.split('/').filter(|p| !p.is_empty()).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            dir = format!("{dir}/{part}");
            if made.insert(dir.clone()) {
                MMD.run(
                    ["-i".as_ref(), image_arg, format!("::{dir}").as_ref()],
                    &envs,
                    &format!("create {dir} in {}", image.display()),
                )?;
            }
        }
        MCOPY.run(
            [
                "-i".as_ref(),
                image_arg,
                file.source.as_os_str(),
                format!("::/{}", parts.join("/")).as_ref(),
            ],
            &envs,
            &format!("copy {} into {}", file.source.display(), image.display()),
        )?;
    }
    Ok(())
}

/// How an ext4 image is made.
#[derive(Debug, Clone, Copy)]
pub struct Ext4Options<'a> {
    /// The filesystem label.
    pub label: &'a str,
    /// The filesystem UUID, also its directory hash seed.
    pub uuid: Uuid,
    /// Free space to leave beyond the contents, in bytes.
    pub headroom: u64,
    /// The time given to every inode, seconds since the epoch (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

/// Make an ext4 image at `image` holding a copy of the `staging` tree (owned by root),
/// sized from the tree. Returns the image's size.
pub fn make_ext4(image: &Path, staging: &Path, options: &Ext4Options<'_>) -> Result<u64> {
    let content = tree_size(staging)?;
    let uuid = options.uuid.hyphenated().to_string();
    let epoch = image_epoch(options.epoch).to_string();
    // Inode tables, bitmaps and extent blocks: well under 1/8 of the data at these sizes.
    let mut headroom = options.headroom + 4 * MIB;
    let mut attempt = 1;
    loop {
        let size = (content + content / 8 + JOURNAL_MIB * MIB + headroom).next_multiple_of(MIB);
        create_sized(image, size)?;
        let result = MKFS_EXT4.run(
            [
                "-q".as_ref(),
                "-F".as_ref(),
                "-b".as_ref(),
                "4096".as_ref(),
                "-m".as_ref(),
                "0".as_ref(),
                "-J".as_ref(),
                format!("size={JOURNAL_MIB}").as_ref(),
                "-L".as_ref(),
                options.label.as_ref(),
                "-U".as_ref(),
                uuid.as_ref(),
                "-E".as_ref(),
                format!("hash_seed={uuid},root_owner=0:0").as_ref(),
                "-d".as_ref(),
                staging.as_os_str(),
                image.as_os_str(),
            ],
            &[("E2FSPROGS_FAKE_TIME", epoch.as_str())],
            &format!(
                "make the ext4 filesystem {} from {}",
                image.display(),
                staging.display()
            ),
        );
        match result {
            Err(BuildError::ToolFailed { ref output, .. })
                if attempt < EXT4_ATTEMPTS && is_out_of_space(output) =>
            {
                headroom = headroom * 2 + content;
                attempt += 1;
            }
            Err(err) => return Err(err),
            Ok(()) => {
                pin_inode_metadata(image, staging, options.epoch)?;
                return Ok(size);
            }
        }
    }
}

/// mke2fs 1.47.0 copies each staged file's change time (ctime), which only the kernel
/// sets, into the image, its access time, which reading the staging tree (mke2fs itself
/// does) moves to now, and its owner, the user who built it; debugfs sets the times to the
/// epoch and the owner to root afterwards, so the image does not depend on when or by
/// whom it was built.
fn pin_inode_metadata(image: &Path, staging: &Path, epoch: u64) -> Result<()> {
    let mut paths = vec![String::from("/")];
    image_paths(staging, "", &mut paths)?;
    run_debugfs_script(
        image.as_os_str(),
        &pinned_metadata_script(&paths, epoch),
        epoch,
        &format!("set the inode times and owners in {}", image.display()),
    )
}

/// The debugfs commands that set the change and access times of `paths` (as seen from the
/// image's root) to `epoch` and their owner to root.
pub(crate) fn pinned_metadata_script(paths: &[String], epoch: u64) -> String {
    let epoch = image_epoch(epoch);
    paths
        .iter()
        .flat_map(|path| {
            [
                ("ctime", format!("@{epoch}")),
                ("atime", format!("@{epoch}")),
                ("uid", "0".into()),
                ("gid", "0".into()),
            ]
            .map(|(field, value)| format!("set_inode_field \"{path}\" {field} {value}\n"))
        })
        .collect()
}

/// Run the debugfs commands `script` read-write on `image` (a file, or `FILE?offset=N` for
/// a filesystem inside a disk image), with `epoch` as the time debugfs writes itself.
pub(crate) fn run_debugfs_script(
    image: &OsStr,
    script: &str,
    epoch: u64,
    purpose: &str,
) -> Result<()> {
    let epoch = image_epoch(epoch);
    let commands = tempfile::NamedTempFile::new()
        .and_then(|mut file| {
            std::io::Write::write_all(&mut file, script.as_bytes())?;
            Ok(file)
        })
        .map_err(BuildError::io("write the debugfs commands"))?;
    DEBUGFS.run(
        [
            "-w".as_ref(),
            "-f".as_ref(),
            commands.path().as_os_str(),
            image,
        ],
        &[("E2FSPROGS_FAKE_TIME", epoch.to_string().as_str())],
        purpose,
    )
}

/// Every path under `dir`, as seen from the image's root (`/etc/passwd`).
fn image_paths(dir: &Path, prefix: &str, paths: &mut Vec<String>) -> Result<()> {
    for entry in dir_entries(dir)? {
        let entry = entry?;
        let path = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let kind = entry_type(&entry)?;
        if kind.is_dir() {
            image_paths(&entry.path(), &path, paths)?;
        }
        paths.push(path);
    }
    Ok(())
}

fn is_out_of_space(output: &str) -> bool {
    output.contains("Could not allocate") || output.contains("No space left")
}

/// A new (sparse) file of exactly `size` bytes, replacing any old one.
fn create_sized(image: &Path, size: u64) -> Result<()> {
    let what = || format!("create {}", image.display());
    let file = File::create(image).map_err(BuildError::io(what()))?;
    file.set_len(size).map_err(BuildError::io(what()))
}

/// Bytes the tree takes in 4 KiB blocks, a block per directory and symlink.
pub fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = BLOCK;
    for entry in dir_entries(dir)? {
        let entry = entry?;
        let meta = entry
            .metadata()
            .map_err(BuildError::io(format!("stat {}", entry.path().display())))?;
        total += if meta.is_dir() {
            tree_size(&entry.path())?
        } else {
            meta.len().next_multiple_of(BLOCK).max(BLOCK)
        };
    }
    Ok(total)
}

/// Set the access and modification times of everything in `dir` (and `dir`) to `epoch`,
/// so an image made from it does not carry the time it was staged. Symlinks are left
/// alone (their own times cannot be set through std).
pub fn set_tree_times(dir: &Path, epoch: u64) -> Result<()> {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(image_epoch(epoch));
    let times = FileTimes::new().set_accessed(time).set_modified(time);
    for entry in dir_entries(dir)? {
        let entry = entry?;
        let kind = entry_type(&entry)?;
        if kind.is_dir() {
            set_tree_times(&entry.path(), epoch)?;
        } else if kind.is_file() {
            set_times(&entry.path(), times)?;
        }
    }
    set_times(dir, times)
}

fn set_times(path: &Path, times: FileTimes) -> Result<()> {
    File::open(path)
        .and_then(|file| file.set_times(times))
        .map_err(BuildError::io(format!(
            "set the times of {}",
            path.display()
        )))
}
