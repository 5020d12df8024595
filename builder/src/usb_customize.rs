//! `bootkit-build usb customize`: put an install config and an OS image into a USB
//! installer stick that was already made (like `coreos-installer iso customize`), in place
//! or into a new image.
//!
//! The stick is recognised by its GPT partition names (see [`crate::usb`]); what changes is
//! the `BOOTKIT-DATA` partition, the ext4 filesystem the installer reads: `install.toml` is
//! replaced, and a new OS image replaces every file there except `install.toml` and the
//! installer's logs (the old image, its checksum file and its bmap), with its own checksum
//! file (checked against it, or written from it) and bmap. Everything is checked before the
//! stick is touched.
//!
//! When the files fit, they are written into the filesystem as it is, with debugfs
//! (e2fsprogs: no mount, so no root). When they do not, and the stick is an image file whose
//! data partition is the last one, the data partition is made anew (the kept files and the
//! new ones, same label and UUID) and the image grows to hold it; a stick already written to
//! a device cannot grow, and the error says how much room there is and how much is needed.
//! (resize2fs cannot grow a filesystem inside an image file: it truncates the file to the
//! filesystem's size, counted from the start of the file.)

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bootkit_common::layout::{INSTALL_CONFIG_NAME, USB_DATA_LABEL, USB_ESP_NAME};
use gptman::GPT;
use uuid::Uuid;

use crate::dirs::scratch_dir_in;
use crate::disk_image::{MIB, SECTOR, copy_sparse};
use crate::error::{BuildError, Result};
use crate::fs_image::{
    Ext4Options, image_epoch, make_ext4, pinned_metadata_script, run_debugfs_script,
};
use crate::install_check::check_install_config;
use crate::kernel::sha256_file;
use crate::progress::Progress;
use crate::publish::sibling;
use crate::reproducible::source_date_epoch;
use crate::tools::{DEBUGFS, E2FSCK};
use crate::usb::{DATA_HEADROOM, check_bmap, check_sha256_file, file_name, link_or_copy};

/// Space for a file's extent blocks and the directory entries, beyond its data blocks: one
/// block per 128 MiB extent is far more than ext4 uses.
const EXTENT_OVERHEAD_PER: u64 = 128 * MIB;
const BLOCK_ALIGN: u64 = 4096;

/// What to put on the stick; at least one of `install_config` and `os_image`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CustomizeInputs<'a> {
    /// The installer's config, checked against its schema and copied as `install.toml`.
    pub install_config: Option<&'a Path>,
    /// The OS image as published (`.raw.gz`, `.raw.zst`, `.raw.xz` or `.raw`).
    pub os_image: Option<&'a Path>,
    /// Its `sha256sum` file; `None` takes `<os_image>.sha256sum` when it exists, else one is
    /// written from the image.
    pub sha256_file: Option<&'a Path>,
    /// The bmap of the uncompressed image.
    pub bmap: Option<&'a Path>,
}

/// What a customization did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customized {
    /// The stick written (the input, or the `--output` image).
    pub image: PathBuf,
    /// The files now on the data partition that were put there, by name.
    pub written: Vec<String>,
    /// The files taken off the data partition (the OS image replaced, its sidecars).
    pub removed: Vec<String>,
    /// Bytes the image grew by to make room (0 when the files fit).
    pub grown_by: u64,
}

/// A file to put on the data partition.
struct NewFile {
    /// Its name on the partition.
    name: String,
    /// The host file.
    source: PathBuf,
    size: u64,
}

/// A regular file on the data partition, as debugfs lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DataFile {
    name: String,
    size: u64,
}

/// The data partition: where it is on the stick, and its GPT entry's number.
#[derive(Debug, Clone, Copy)]
struct DataPartition {
    number: u32,
    offset: u64,
    size: u64,
    /// No partition lies behind it: it can grow at the end of the image.
    is_last: bool,
}

/// Customize the stick `stick` with `inputs`: in place, or into `output` (a copy; `stick`
/// is left as it is).
pub fn customize_usb(
    stick: &Path,
    inputs: &CustomizeInputs<'_>,
    output: Option<&Path>,
    progress: &Progress,
) -> Result<Customized> {
    let new_files = checked_inputs(inputs)?;
    // Beside the image written, so that the new image is renamed into place and a remade
    // data partition is staged on the same filesystem; a device's directory is /dev.
    let stick_is_file = fs::metadata(stick)
        .map_err(BuildError::io(format!("stat {}", stick.display())))?
        .is_file();
    let scratch_parent = match output {
        Some(output) => output.parent().map(Path::to_path_buf),
        None if stick_is_file => stick.parent().map(Path::to_path_buf),
        None => Some(std::env::temp_dir()),
    }
    .filter(|dir| !dir.as_os_str().is_empty())
    .unwrap_or_else(|| PathBuf::from("."));
    fs::create_dir_all(&scratch_parent).map_err(BuildError::io(format!(
        "create {}",
        scratch_parent.display()
    )))?;
    let scratch = scratch_dir_in(&scratch_parent, ".usb-customize-")?;
    let new_files = stage_checksum(new_files, inputs, scratch.path(), progress)?;

    let partition = find_data_partition(stick)?;
    let listing = list_data_files(stick, &partition)?;
    let room = plan_room(
        stick,
        &partition,
        &listing,
        &new_files,
        inputs.os_image.is_some(),
    )?;
    let target = match output {
        None => stick.to_path_buf(),
        Some(_) => scratch.path().join("usb.img"),
    };
    let grown_by = if room.fits() {
        if output.is_some() {
            copy_image(stick, &target, None, progress)?;
        }
        write_files(&target, &partition, &room.removed, &new_files)?;
        check_written(&target, &partition, &new_files)?;
        0
    } else {
        let growable = partition.is_last && (output.is_some() || stick_is_file);
        if !growable {
            return Err(BuildError::NoRoom {
                path: stick.to_path_buf(),
                needed: room.needed,
                available: room.available,
                hint: if partition.is_last {
                    "a stick on a device cannot grow: customize the image file (usb.img) and \
                     write it to the stick again"
                } else {
                    "its data partition is not the last one, so it cannot grow: make the stick \
                     anew with `bootkit-build usb`"
                },
            });
        }
        let data = remake_data_partition(
            stick,
            &partition,
            &listing,
            &room.removed,
            &new_files,
            scratch.path(),
        )?;
        if output.is_some() {
            // The old data partition is replaced: only what lies before it is copied.
            copy_image(stick, &target, Some(partition.offset), progress)?;
        }
        let grown = replace_data_partition(&target, &partition, &data)?;
        check_written(&target, &grown, &new_files)?;
        grown.size - partition.size
    };
    let image = match output {
        None => target,
        Some(output) => {
            fs::rename(&target, output)
                .map_err(BuildError::io(format!("write {}", output.display())))?;
            output.to_path_buf()
        }
    };
    Ok(Customized {
        image,
        written: new_files.into_iter().map(|file| file.name).collect(),
        removed: room.removed,
        grown_by,
    })
}

/// Every input exists and is what it claims; the files to write, checksum file not yet
/// among them.
fn checked_inputs(inputs: &CustomizeInputs<'_>) -> Result<Vec<NewFile>> {
    if inputs.install_config.is_none() && inputs.os_image.is_none() {
        return Err(BuildError::Usage(
            "usb customize: nothing to put on the stick: give --install-config FILE, \
             --os-image FILE, or both"
                .into(),
        ));
    }
    if inputs.os_image.is_none() && (inputs.sha256_file.is_some() || inputs.bmap.is_some()) {
        return Err(BuildError::Usage(
            "usb customize: --sha256-file and --bmap belong to an OS image: give --os-image too"
                .into(),
        ));
    }
    for (what, path) in [
        ("install config", inputs.install_config),
        ("OS image", inputs.os_image),
        ("OS image checksum file", inputs.sha256_file),
        ("bmap", inputs.bmap),
    ] {
        if let Some(path) = path.filter(|path| !path.is_file()) {
            return Err(BuildError::Missing {
                what,
                path: path.to_path_buf(),
                hint: "check the path".into(),
            });
        }
    }
    let mut files = Vec::new();
    if let Some(config) = inputs.install_config {
        check_install_config(config)?;
        files.push(new_file(INSTALL_CONFIG_NAME.to_owned(), config)?);
    }
    if let Some(os_image) = inputs.os_image {
        files.push(new_file(file_name(os_image)?, os_image)?);
        if let Some(bmap) = inputs.bmap {
            check_bmap(bmap)?;
            files.push(new_file(file_name(bmap)?, bmap)?);
        }
    }
    Ok(files)
}

/// The OS image's checksum file, checked against the image (the one given, or the one
/// published next to it) and written into `scratch` for the stick, as `usb` does.
fn stage_checksum(
    mut files: Vec<NewFile>,
    inputs: &CustomizeInputs<'_>,
    scratch: &Path,
    progress: &Progress,
) -> Result<Vec<NewFile>> {
    let Some(os_image) = inputs.os_image else {
        return Ok(files);
    };
    let os_name = file_name(os_image)?;
    let digest = bootkit_common::checksum::Sha256Digest::parse(&sha256_file(os_image, progress)?)?;
    let published = sibling(os_image, "sha256sum");
    let given = inputs
        .sha256_file
        .or_else(|| published.is_file().then_some(published.as_path()));
    if let Some(sums) = given {
        check_sha256_file(sums, &os_name, digest)?;
    }
    let name = format!("{os_name}.sha256sum");
    let path = scratch.join(&name);
    fs::write(&path, digest.sha256sum_line(&os_name))
        .map_err(BuildError::io(format!("write {}", path.display())))?;
    files.push(new_file(name, &path)?);
    Ok(files)
}

fn new_file(name: String, source: &Path) -> Result<NewFile> {
    // debugfs reads its commands as words; a quote or a line break would split them.
    if name.contains(['"', '\n', '\\']) {
        return Err(BuildError::Usage(format!(
            "{}: a file name with a quote, backslash or line break cannot go on the stick; \
             rename the file",
            source.display()
        )));
    }
    let size = fs::metadata(source)
        .map_err(BuildError::io(format!("stat {}", source.display())))?
        .len();
    Ok(NewFile {
        name,
        source: source.to_path_buf(),
        size,
    })
}

/// The stick's data partition, or why `stick` is not a bootkit stick.
fn find_data_partition(stick: &Path) -> Result<DataPartition> {
    let not_a_stick = |found: String| BuildError::NotABootkitStick {
        path: stick.to_path_buf(),
        found,
    };
    let mut file =
        File::open(stick).map_err(BuildError::io(format!("open {}", stick.display())))?;
    let gpt = GPT::read_from(&mut file, SECTOR)
        .map_err(|err| not_a_stick(format!("no GPT partition table ({err})")))?;
    let used: Vec<(u32, &gptman::GPTPartitionEntry)> =
        gpt.iter().filter(|(_, entry)| entry.is_used()).collect();
    let named = |name: &str| {
        used.iter()
            .find(|(_, entry)| entry.partition_name.as_str() == name)
    };
    let (Some(_), Some(&(number, data))) = (named(USB_ESP_NAME), named(USB_DATA_LABEL)) else {
        let names: Vec<String> = used
            .iter()
            .map(|(_, entry)| format!("`{}`", entry.partition_name.as_str()))
            .collect();
        return Err(not_a_stick(if names.is_empty() {
            "a GPT without partitions".into()
        } else {
            format!("partitions named {}", names.join(", "))
        }));
    };
    let is_last = used
        .iter()
        .all(|(_, entry)| entry.starting_lba <= data.starting_lba);
    let partition = DataPartition {
        number,
        offset: data.starting_lba * SECTOR,
        size: (data.ending_lba + 1 - data.starting_lba) * SECTOR,
        is_last,
    };
    let stats = debugfs_request(stick, &partition, "stats").map_err(|err| {
        not_a_stick(format!(
            "a {USB_DATA_LABEL} partition without an ext4 filesystem ({err})"
        ))
    })?;
    match stat_field(&stats, "Filesystem volume name") {
        Some(label) if label == USB_DATA_LABEL => Ok(partition),
        label => Err(not_a_stick(format!(
            "a {USB_DATA_LABEL} partition whose filesystem is labelled {:?}",
            label.unwrap_or_default()
        ))),
    }
}

/// `IMAGE?offset=N`: how e2fsprogs addresses a filesystem inside a disk image.
fn e2fs_address(image: &Path, partition: &DataPartition) -> OsString {
    let mut address = image.as_os_str().to_owned();
    address.push(format!("?offset={}", partition.offset));
    address
}

/// What debugfs prints for the read-only `request` on the data partition.
fn debugfs_request(image: &Path, partition: &DataPartition, request: &str) -> Result<String> {
    DEBUGFS.output(
        ["-R".into(), request.into(), e2fs_address(image, partition)],
        &[],
        &format!("read the {USB_DATA_LABEL} partition of {}", image.display()),
    )
}

/// The value of `Name:   value` in debugfs's `stats`.
fn stat_field<'a>(stats: &'a str, name: &str) -> Option<&'a str> {
    stats.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

fn stat_number(stats: &str, name: &str, image: &Path) -> Result<u64> {
    stat_field(stats, name)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| BuildError::DiskImage {
            path: image.to_path_buf(),
            reason: format!("debugfs's stats of the {USB_DATA_LABEL} partition show no {name:?}"),
        })
}

/// Free bytes on the data partition's filesystem.
fn free_bytes(image: &Path, partition: &DataPartition) -> Result<u64> {
    let stats = debugfs_request(image, partition, "stats")?;
    Ok(stat_number(&stats, "Free blocks", image)? * stat_number(&stats, "Block size", image)?)
}

/// The regular files in the data partition's root directory.
fn list_data_files(image: &Path, partition: &DataPartition) -> Result<Vec<DataFile>> {
    let listing = debugfs_request(image, partition, "ls -p /")?;
    Ok(parse_listing(&listing))
}

/// debugfs `ls -p` lines: `/INODE/MODE/UID/GID/NAME/SIZE/`; regular files have mode 100xxx.
fn parse_listing(listing: &str) -> Vec<DataFile> {
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim().trim_matches('/').split('/').collect();
            match fields[..] {
                [_inode, mode, _uid, _gid, name, size] if mode.starts_with("100") => {
                    Some(DataFile {
                        name: name.to_owned(),
                        size: size.parse().ok()?,
                    })
                }
                _ => None,
            }
        })
        .collect()
}

/// The bytes a file of `size` takes on ext4, with room for its extent blocks.
fn on_disk(size: u64) -> u64 {
    size.next_multiple_of(BLOCK_ALIGN) + (size / EXTENT_OVERHEAD_PER + 1) * BLOCK_ALIGN
}

/// The files that leave the data partition, and whether the new ones fit.
#[derive(Debug)]
struct Room {
    /// Names of the files replaced or taken off.
    removed: Vec<String>,
    /// Bytes the new files take.
    needed: u64,
    /// Bytes free, with those of the files removed.
    available: u64,
}

impl Room {
    fn fits(&self) -> bool {
        self.needed <= self.available
    }
}

fn plan_room(
    image: &Path,
    partition: &DataPartition,
    listing: &[DataFile],
    new_files: &[NewFile],
    replaces_os_image: bool,
) -> Result<Room> {
    let removed: Vec<&DataFile> = listing
        .iter()
        .filter(|file| {
            new_files.iter().any(|new| new.name == file.name)
                || (replaces_os_image
                    && file.name != INSTALL_CONFIG_NAME
                    && !file.name.ends_with(".log"))
        })
        .collect();
    let freed: u64 = removed.iter().map(|file| on_disk(file.size)).sum();
    Ok(Room {
        removed: removed.iter().map(|file| file.name.clone()).collect(),
        needed: new_files.iter().map(|file| on_disk(file.size)).sum(),
        available: free_bytes(image, partition)? + freed,
    })
}

/// A new data filesystem in `scratch`: the files of `stick`'s data partition that stay
/// (read out with debugfs) and `new_files`, with the old one's label and UUID and the
/// headroom `usb` leaves. Returns the filesystem image.
fn remake_data_partition(
    stick: &Path,
    partition: &DataPartition,
    listing: &[DataFile],
    removed: &[String],
    new_files: &[NewFile],
    scratch: &Path,
) -> Result<PathBuf> {
    let stats = debugfs_request(stick, partition, "stats")?;
    let uuid = stat_field(&stats, "Filesystem UUID")
        .and_then(|text| Uuid::parse_str(text).ok())
        .ok_or_else(|| BuildError::DiskImage {
            path: stick.to_path_buf(),
            reason: format!("the {USB_DATA_LABEL} filesystem shows no UUID in debugfs's stats"),
        })?;
    let staging = scratch.join("data");
    fs::create_dir(&staging).map_err(BuildError::io(format!("create {}", staging.display())))?;
    let kept: Vec<&DataFile> = listing
        .iter()
        .filter(|file| !removed.contains(&file.name))
        .collect();
    if !kept.is_empty() {
        let script: String = kept
            .iter()
            .map(|file| {
                let dest = debugfs_word(&staging.join(&file.name))?;
                Ok(format!("dump \"/{}\" \"{dest}\"\n", file.name))
            })
            .collect::<Result<_>>()?;
        let script_path = scratch.join("dump.debugfs");
        fs::write(&script_path, script)
            .map_err(BuildError::io(format!("write {}", script_path.display())))?;
        DEBUGFS.run(
            [
                "-f".into(),
                script_path.into_os_string(),
                e2fs_address(stick, partition),
            ],
            &[],
            &format!(
                "read the files kept from the {USB_DATA_LABEL} partition of {}",
                stick.display()
            ),
        )?;
    }
    for file in new_files {
        link_or_copy(&file.source, &staging.join(&file.name))?;
    }
    let data = scratch.join("data.img");
    make_ext4(
        &data,
        &staging,
        &Ext4Options {
            label: USB_DATA_LABEL,
            uuid,
            headroom: DATA_HEADROOM,
            epoch: source_date_epoch()?,
        },
    )?;
    Ok(data)
}

/// Put the filesystem image `data` in place of the data partition (the last one) of
/// `image`, which grows to hold it and keeps 1 MiB after it for the backup GPT, as
/// [`crate::disk_image`] lays disks out. Returns the partition as it is then.
fn replace_data_partition(
    image: &Path,
    partition: &DataPartition,
    data: &Path,
) -> Result<DataPartition> {
    let fail = |reason: String| BuildError::DiskImage {
        path: image.to_path_buf(),
        reason,
    };
    let what = || {
        format!(
            "write the new {USB_DATA_LABEL} partition into {}",
            image.display()
        )
    };
    let data_size = fs::metadata(data)
        .map_err(BuildError::io(format!("stat {}", data.display())))?
        .len()
        .next_multiple_of(MIB);
    let grown = DataPartition {
        size: data_size.max(partition.size),
        ..*partition
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(BuildError::io(what()))?;
    let mut gpt = GPT::read_from(&mut file, SECTOR)
        .map_err(|err| fail(format!("cannot read the partition table: {err}")))?;
    // Cut off the old partition and the backup GPT: what grows back reads as zeros, as
    // the sparse copy below needs, and no stale GPT is left for a scanner to find.
    file.set_len(partition.offset)
        .and_then(|()| file.set_len(grown.offset + grown.size + MIB))
        .map_err(BuildError::io(what()))?;
    gpt.header
        .update_from(&mut file, SECTOR)
        .map_err(|err| fail(format!("cannot resize the partition table: {err}")))?;
    gpt[partition.number].ending_lba = (grown.offset + grown.size) / SECTOR - 1;
    gpt.write_into(&mut file)
        .map_err(|err| fail(format!("cannot write the partition table: {err}")))?;
    GPT::write_protective_mbr_into(&mut file, SECTOR)
        .map_err(|err| fail(format!("cannot write the protective MBR: {err}")))?;
    File::open(data)
        .and_then(|mut input| copy_sparse(&mut input, &mut file, grown.offset))
        .map_err(BuildError::io(what()))?;
    file.sync_all().map_err(BuildError::io(what()))?;
    Ok(grown)
}

/// A host path as one word of a debugfs command (in double quotes).
fn debugfs_word(path: &Path) -> Result<String> {
    let text = path.to_string_lossy();
    if text.contains(['"', '\n', '\\']) {
        return Err(BuildError::Usage(format!(
            "{text}: a path with a quote, backslash or line break cannot be given to \
             debugfs; move the file"
        )));
    }
    Ok(text.into_owned())
}

/// Remove `removed` and write `new_files` into the data partition's root, owned by root,
/// with the build's epoch as their times.
fn write_files(
    image: &Path,
    partition: &DataPartition,
    removed: &[String],
    new_files: &[NewFile],
) -> Result<()> {
    let epoch = source_date_epoch()?;
    let mut script: String = removed
        .iter()
        .map(|name| format!("rm \"/{name}\"\n"))
        .collect();
    let mut paths = Vec::new();
    for file in new_files {
        script.push_str(&format!(
            "write \"{}\" \"{}\"\n",
            debugfs_word(&file.source)?,
            file.name
        ));
        script.push_str(&format!(
            "set_inode_field \"/{}\" mtime @{}\n",
            file.name,
            image_epoch(epoch)
        ));
        paths.push(format!("/{}", file.name));
    }
    script.push_str(&pinned_metadata_script(&paths, epoch));
    run_debugfs_script(
        &e2fs_address(image, partition),
        &script,
        epoch,
        &format!(
            "write the files into the {USB_DATA_LABEL} partition of {}",
            image.display()
        ),
    )
}

/// debugfs reports a failed `write` (a full filesystem) without failing itself: each file
/// must be there with its size, and the filesystem must check clean.
fn check_written(image: &Path, partition: &DataPartition, new_files: &[NewFile]) -> Result<()> {
    let listing = list_data_files(image, partition)?;
    for file in new_files {
        let found = listing.iter().find(|listed| listed.name == file.name);
        if found.map(|listed| listed.size) != Some(file.size) {
            return Err(BuildError::DiskImage {
                path: image.to_path_buf(),
                reason: format!(
                    "{} did not get onto the {USB_DATA_LABEL} partition whole ({} of {} bytes); \
                     the stick is incomplete: customize it again, or make it anew",
                    file.name,
                    found.map_or(0, |listed| listed.size),
                    file.size
                ),
            });
        }
    }
    E2FSCK.run(
        ["-f".into(), "-n".into(), e2fs_address(image, partition)],
        &[],
        &format!(
            "check the {USB_DATA_LABEL} filesystem of {}",
            image.display()
        ),
    )
}

/// Copy the stick `source` (an image or a device) to the new file `dest`, holes kept; with
/// `up_to`, only the bytes before it.
fn copy_image(source: &Path, dest: &Path, up_to: Option<u64>, progress: &Progress) -> Result<()> {
    let what = || format!("copy {} to {}", source.display(), dest.display());
    let task = progress.task(&format!("copying {}", source.display()), None);
    let len = File::open(source)
        .and_then(|mut file| file.seek(SeekFrom::End(0)))
        .map_err(BuildError::io(what()))?;
    let len = up_to.map_or(len, |up_to| up_to.min(len));
    let mut out = File::create(dest).map_err(BuildError::io(what()))?;
    out.set_len(len).map_err(BuildError::io(what()))?;
    File::open(source)
        .and_then(|input| copy_sparse(&mut input.take(len), &mut out, 0))
        .and_then(|()| out.sync_all())
        .map_err(BuildError::io(what()))?;
    task.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debugfs_listings_give_the_regular_files_with_their_sizes() {
        let listing = "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/11/040700/0/0/lost+found//\n\
                       /12/100644/0/0/os.raw.gz/4096/\n/13/100644/0/0/install.toml/31/\n";
        assert_eq!(
            parse_listing(listing),
            [
                DataFile {
                    name: "os.raw.gz".into(),
                    size: 4096
                },
                DataFile {
                    name: "install.toml".into(),
                    size: 31
                },
            ]
        );
    }
}
