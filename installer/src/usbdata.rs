//! The USB installer's data partition (`BOOTKIT-DATA`): found without udev, mounted
//! read-write, searched for the OS image, its checksum, its block map and `install.toml`, and
//! given the installer's log at the end, on success and on failure alike.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bootkit_common::checksum::{ChecksumError, Sha256Digest};
use bootkit_common::layout::{INSTALL_CONFIG_NAME, USB_DATA_LABEL};

use crate::mount::{MountError, Mounted};

/// File name endings of OS images, compressed or not.
const IMAGE_SUFFIXES: [&str; 4] = [".raw.gz", ".raw.zst", ".raw.xz", ".raw"];
/// Files beside an image that must not be taken for one (`*.img*` also matches these).
const SIDECAR_SUFFIXES: [&str; 4] = [".sha256sum", ".sha256", ".bmap", ".log"];
/// Compression endings stripped to find the block map of the uncompressed image.
const COMPRESSION_SUFFIXES: [&str; 3] = [".gz", ".zst", ".xz"];

/// Why the data partition or what it holds cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UsbDataError {
    /// Reading the partitions from sysfs failed.
    #[error(transparent)]
    Sysfs(#[from] bootkit_common::blockdev::BlockDevError),
    /// More than one partition is named or labelled `BOOTKIT-DATA`: several installer sticks.
    #[error(
        "more than one {USB_DATA_LABEL} partition: {}; unplug all installer sticks but one",
        .devices.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    SeveralDataPartitions {
        /// The device nodes of those partitions.
        devices: Vec<PathBuf>,
    },
    /// Mounting or unmounting the data partition failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The directory to search for the image cannot be listed.
    #[error("cannot read {path} on the data partition")]
    Read {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// No file in the directory has an OS image's name.
    #[error(
        "no OS image on the data partition ({dir}): expected one file named *.raw.gz, \
         *.raw.zst, *.raw.xz, *.raw or *.img*; copy the image there"
    )]
    NoImage {
        /// The directory searched.
        dir: PathBuf,
    },
    /// More than one file in the directory has an OS image's name.
    #[error(
        "more than one OS image on the data partition: {}; keep one, or name it in \
         install.toml ([image] file)",
        .names.join(", ")
    )]
    SeveralImages {
        /// Their file names, sorted.
        names: Vec<String>,
    },
    /// The image's `.sha256sum` file cannot be read or has no checksum line for the image.
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    /// The installer log cannot be created, flushed or copied to the data partition.
    #[error("cannot write the installer log {path}")]
    Log {
        /// The log file that cannot be written.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// Finds the data partition: by GPT partition name (uevent `PARTNAME`) among the partitions of
/// every disk in `sys_root` (`/sys` on the bootkit), else by filesystem label; device nodes are looked up
/// under `dev_root` (`/dev`). `None` when there is none (not booted from the USB stick).
pub fn find_data_partition(
    sys_root: &Path,
    dev_root: &Path,
) -> Result<Option<PathBuf>, UsbDataError> {
    let mut found = find_data_partitions(sys_root, dev_root)?;
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(UsbDataError::SeveralDataPartitions { devices: found }),
    }
}

/// Every partition that looks like a data partition (see [`find_data_partition`]).
pub fn find_data_partitions(
    sys_root: &Path,
    dev_root: &Path,
) -> Result<Vec<PathBuf>, UsbDataError> {
    let partitions = bootkit_common::blockdev::Sysfs::at(sys_root).all_partitions()?;
    let by_name: Vec<PathBuf> = partitions
        .iter()
        .filter(|p| p.part_label.as_deref() == Some(USB_DATA_LABEL))
        .map(|p| dev_root.join(&p.dev_name))
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    // An MBR stick has no partition names; its filesystem label says the same.
    Ok(partitions
        .iter()
        .map(|p| dev_root.join(&p.dev_name))
        .filter(|device| {
            crate::mount::probe(device)
                .ok()
                .flatten()
                .is_some_and(|fs| fs.label == USB_DATA_LABEL)
        })
        .collect())
}

/// What the data partition holds for the installer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallMedia {
    /// The OS image: `*.raw.gz`, `*.raw.zst`, `*.raw.xz`, `*.raw` or `*.img*`.
    pub image: PathBuf,
    /// From `<image>.sha256sum`, when present: 64 lowercase hex digits.
    pub sha256: Option<String>,
    /// The `<image>.sha256sum` file `sha256` was read from, when present.
    pub sha256_file: Option<PathBuf>,
    /// `<image without compression suffix>.bmap` (or `<image>.bmap`), when present.
    pub bmap: Option<PathBuf>,
    /// `install.toml`, when present.
    pub config: Option<PathBuf>,
}

/// The mounted data partition. Call [`DataPartition::finish`] at the end, also on failure, to
/// leave the log there and unmount cleanly; dropping it only unmounts.
#[derive(Debug)]
pub struct DataPartition {
    mounted: Mounted,
}

impl DataPartition {
    /// Mounts `device` read-write (the log is written back to it).
    pub fn mount(device: &Path) -> Result<Self, UsbDataError> {
        Ok(Self {
            mounted: Mounted::new(device)?,
        })
    }

    /// Where the partition is mounted (a temporary directory).
    pub fn path(&self) -> &Path {
        self.mounted.path()
    }

    /// The partition's device node.
    pub fn device(&self) -> &Path {
        self.mounted.device()
    }

    /// The install config on the partition, if any, without requiring an image (the config
    /// may name one elsewhere).
    pub fn config(&self) -> Option<PathBuf> {
        Some(self.path().join(INSTALL_CONFIG_NAME)).filter(|path| path.is_file())
    }

    /// Finds the one OS image with its checksum, block map and the install config.
    pub fn media(&self) -> Result<InstallMedia, UsbDataError> {
        find_media(self.path())
    }

    /// Copies the log to `bootkit-install-<UTC time>.log` on the partition, flushes it and
    /// unmounts. Returns the log's path on the partition (valid until unmounted: for the
    /// summary line).
    pub fn finish(self, log: &InstallLog) -> Result<PathBuf, UsbDataError> {
        let name = format!("bootkit-install-{}.log", utc_timestamp());
        let destination = self.path().join(&name);
        log.copy_to(&destination)?;
        self.mounted.unmount()?;
        Ok(PathBuf::from(name))
    }
}

/// Finds the one OS image in `dir` (not in subdirectories) with its `.sha256sum`, its
/// `.bmap` and `install.toml`.
pub fn find_media(dir: &Path) -> Result<InstallMedia, UsbDataError> {
    let names = file_names(dir)?;
    let mut images: Vec<&String> = names.iter().filter(|name| is_image_name(name)).collect();
    let image_name = match images.len() {
        0 => {
            return Err(UsbDataError::NoImage {
                dir: dir.to_owned(),
            });
        }
        1 => images.remove(0),
        _ => {
            return Err(UsbDataError::SeveralImages {
                names: images.into_iter().cloned().collect(),
            });
        }
    };
    let sha256_file = Some(format!("{image_name}.sha256sum")).filter(|n| names.contains(n));
    let sha256 = match &sha256_file {
        Some(file) => Some(read_sha256sum(&dir.join(file), image_name)?),
        None => None,
    };
    let uncompressed = COMPRESSION_SUFFIXES
        .iter()
        .find_map(|suffix| image_name.strip_suffix(suffix))
        .unwrap_or(image_name);
    let bmap = [format!("{uncompressed}.bmap"), format!("{image_name}.bmap")]
        .into_iter()
        .find(|name| names.contains(name));
    let config = Some(INSTALL_CONFIG_NAME.to_owned()).filter(|name| names.contains(name));
    Ok(InstallMedia {
        image: dir.join(image_name),
        sha256,
        sha256_file: sha256_file.map(|name| dir.join(name)),
        bmap: bmap.map(|name| dir.join(name)),
        config: config.map(|name| dir.join(name)),
    })
}

fn file_names(dir: &Path) -> Result<Vec<String>, UsbDataError> {
    let read_error = |source| UsbDataError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if entry.file_type().map_err(read_error)?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn is_image_name(name: &str) -> bool {
    let sidecar = SIDECAR_SUFFIXES.iter().any(|suffix| name.ends_with(suffix));
    let image = IMAGE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) || name.contains(".img");
    image && !sidecar
}

/// The image's sha256 (lowercase hex) from its `.sha256sum` file, by the one checksum-file rule.
fn read_sha256sum(path: &Path, image_name: &str) -> Result<String, UsbDataError> {
    Ok(Sha256Digest::from_sha256sum_file(path, Some(image_name))?.to_hex())
}

/// `20261122T030339Z`: sortable, and without the `:` that FAT file names cannot hold.
fn utc_timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// The installer's log: each line goes to stderr (the console) and to a file, which
/// [`DataPartition::finish`] copies to the data partition. Cheap to clone; clones share the
/// file.
#[derive(Debug, Clone)]
pub struct InstallLog {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl InstallLog {
    /// Creates (or truncates) the log file at `path`, e.g. `/run/bootkit-install.log`.
    pub fn create(path: &Path) -> Result<Self, UsbDataError> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|source| UsbDataError::Log {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The log file, as given to [`InstallLog::create`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line to stderr and to the log file. A log file that cannot be written is
    /// reported once on stderr and does not stop the install.
    pub fn line(&self, message: &str) {
        eprintln!("{message}");
        self.record(message);
    }

    /// Writes one line to the log file only (for what was already shown another way).
    pub fn record(&self, message: &str) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = writeln!(file, "{message}") {
            eprintln!(
                "bootkit-install: cannot write the log file {}: {error}",
                self.path.display()
            );
        }
    }

    fn copy_to(&self, destination: &Path) -> Result<(), UsbDataError> {
        let log_error = |source| UsbDataError::Log {
            path: destination.to_owned(),
            source,
        };
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
            .map_err(log_error)?;
        std::fs::copy(&self.path, destination).map_err(log_error)?;
        File::open(destination)
            .and_then(|copy| copy.sync_all())
            .map_err(log_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::blockdev::fake::FakeSysfs;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn images_are_told_from_their_sidecar_files() {
        for image in [
            "emt.raw.gz",
            "emt.raw.zst",
            "emt.raw.xz",
            "emt.raw",
            "disk.img",
            "disk.img.gz",
        ] {
            assert!(is_image_name(image), "{image} is an image");
        }
        for other in [
            "emt.raw.gz.sha256sum",
            "emt.raw.bmap",
            "disk.img.bmap",
            "install.toml",
            "bootkit-install-20261122T030339Z.log",
            "notes.txt",
        ] {
            assert!(!is_image_name(other), "{other} is not an image");
        }
    }

    #[test]
    fn media_beside_the_image_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("emt.raw.gz", "image".to_owned()),
            ("emt.raw.gz.sha256sum", format!("{HEX}  emt.raw.gz\n")),
            ("emt.raw.bmap", "<bmap/>".to_owned()),
            ("install.toml", String::new()),
            ("bootkit-install-20261121T000000Z.log", String::new()),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::create_dir(dir.path().join("old.raw.gz")).unwrap();
        let media = find_media(dir.path()).unwrap();
        assert_eq!(
            media,
            InstallMedia {
                image: dir.path().join("emt.raw.gz"),
                sha256: Some(HEX.into()),
                sha256_file: Some(dir.path().join("emt.raw.gz.sha256sum")),
                bmap: Some(dir.path().join("emt.raw.bmap")),
                config: Some(dir.path().join("install.toml")),
            }
        );
    }

    #[test]
    fn two_images_or_a_checksum_file_without_the_image_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.raw.gz"), "").unwrap();
        std::fs::write(
            dir.path().join("a.raw.gz.sha256sum"),
            format!("{HEX}  b.raw.gz\n"),
        )
        .unwrap();
        let message = find_media(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("a.raw.gz.sha256sum") && message.contains("no valid sha256 line"),
            "{message}"
        );

        std::fs::write(dir.path().join("b.img.zst"), "").unwrap();
        let message = find_media(dir.path()).unwrap_err().to_string();
        assert!(message.contains("a.raw.gz, b.img.zst"), "{message}");

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            find_media(empty.path()),
            Err(UsbDataError::NoImage { .. })
        ));
    }

    /// The uevent parsing this test checked lives with the shared partition walk now
    /// (`bootkit_common::blockdev`); what stays here is what it is for: the partition named
    /// BOOTKIT-DATA is found by its device name, the whole disk is not a partition.
    #[test]
    fn uevent_of_a_partition_gives_its_device_and_gpt_name() {
        let sys = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::new(sys.path());
        fake.disk("loop0")
            .partitions(2)
            .partition_label(2, USB_DATA_LABEL)
            .add();
        let found = find_data_partition(sys.path(), Path::new("/dev")).unwrap();
        assert_eq!(found.as_deref(), Some(Path::new("/dev/loop0p2")));
    }

    #[test]
    fn two_data_partitions_are_an_error_naming_both() {
        let sys = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::new(sys.path());
        for disk in ["sdb", "sdc"] {
            fake.disk(disk)
                .usb()
                .partitions(2)
                .partition_label(2, USB_DATA_LABEL)
                .add();
        }
        let message = find_data_partition(sys.path(), Path::new("/dev"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("/dev/sdb2") && message.contains("/dev/sdc2"),
            "{message}"
        );
    }

    #[test]
    fn log_lines_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = InstallLog::create(&dir.path().join("install.log")).unwrap();
        log.line("writing /dev/vda");
        log.clone().line("verified");
        let copy = dir.path().join("copy.log");
        log.copy_to(&copy).unwrap();
        assert_eq!(
            std::fs::read_to_string(copy).unwrap(),
            "writing /dev/vda\nverified\n"
        );
    }

    #[test]
    fn timestamp_is_utc_and_fat_safe() {
        let stamp = utc_timestamp();
        assert_eq!(stamp.len(), 16, "{stamp}");
        assert!(stamp.ends_with('Z') && !stamp.contains(':'), "{stamp}");
    }
}
