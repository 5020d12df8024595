//! The USB installer's data partition (`BOOTKIT-DATA`): found without udev, mounted
//! read-write, searched for the OS image, its checksum, its block map and `install.toml`, and
//! given the installer's log at the end, on success and on failure alike.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::mount::{MountError, Mounted};

/// The GPT partition name (and filesystem label) of the data partition.
pub const DATA_PARTITION_NAME: &str = "BOOTKIT-DATA";

/// The install config's file name on the data partition.
pub const CONFIG_FILE_NAME: &str = "install.toml";

/// File name endings of OS images, compressed or not.
const IMAGE_SUFFIXES: [&str; 4] = [".raw.gz", ".raw.zst", ".raw.xz", ".raw"];
/// Files beside an image that must not be taken for one (`*.img*` also matches these).
const SIDECAR_SUFFIXES: [&str; 4] = [".sha256sum", ".sha256", ".bmap", ".log"];
/// Compression endings stripped to find the block map of the uncompressed image.
const COMPRESSION_SUFFIXES: [&str; 3] = [".gz", ".zst", ".xz"];

#[derive(Debug, thiserror::Error)]
pub enum UsbDataError {
    #[error("cannot list block devices in {dir}")]
    Sysfs { dir: PathBuf, source: io::Error },
    #[error(
        "more than one {DATA_PARTITION_NAME} partition: {}; unplug all installer sticks but one",
        .devices.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    SeveralDataPartitions { devices: Vec<PathBuf> },
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("cannot read {path} on the data partition")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "no OS image on the data partition ({dir}): expected one file named *.raw.gz, \
         *.raw.zst, *.raw.xz, *.raw or *.img*; copy the image there"
    )]
    NoImage { dir: PathBuf },
    #[error(
        "more than one OS image on the data partition: {}; keep one, or name it in \
         install.toml ([image] file)",
        .names.join(", ")
    )]
    SeveralImages { names: Vec<String> },
    #[error(
        "{path} has no valid sha256 line for {image} (expected \"<64 hex digits>  {image}\"); \
         regenerate it with sha256sum"
    )]
    NoChecksumLine { path: PathBuf, image: String },
    #[error("cannot write the installer log {path}")]
    Log { path: PathBuf, source: io::Error },
}

/// Finds the data partition: by GPT partition name in each block device's uevent file under
/// `sys_root` (`/sys` on the bootkit), else by filesystem label; device nodes are looked up
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
    let partitions = list_partitions(sys_root)?;
    let by_name: Vec<PathBuf> = partitions
        .iter()
        .filter(|p| p.name.as_deref() == Some(DATA_PARTITION_NAME))
        .map(|p| dev_root.join(&p.devname))
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    // An MBR stick has no partition names; its filesystem label says the same.
    Ok(partitions
        .iter()
        .map(|p| dev_root.join(&p.devname))
        .filter(|device| {
            crate::mount::probe(device)
                .ok()
                .flatten()
                .is_some_and(|fs| fs.label == DATA_PARTITION_NAME)
        })
        .collect())
}

/// A partition as the kernel's uevent file describes it.
struct Partition {
    devname: String,
    name: Option<String>,
}

fn list_partitions(sys_root: &Path) -> Result<Vec<Partition>, UsbDataError> {
    let dir = sys_root.join("class/block");
    let entries = std::fs::read_dir(&dir).map_err(|source| UsbDataError::Sysfs {
        dir: dir.clone(),
        source,
    })?;
    let mut partitions: Vec<Partition> = entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("uevent")).ok())
        .filter_map(|uevent| parse_uevent(&uevent))
        .collect();
    partitions.sort_by(|a, b| a.devname.cmp(&b.devname));
    Ok(partitions)
}

/// The partition described by a uevent file; `None` for whole disks.
fn parse_uevent(uevent: &str) -> Option<Partition> {
    let value = |key: &str| {
        uevent
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
    };
    if value("DEVTYPE") != Some("partition") {
        return None;
    }
    Some(Partition {
        devname: value("DEVNAME")?.to_owned(),
        name: value("PARTNAME").map(str::to_owned),
    })
}

/// What the data partition holds for the installer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallMedia {
    pub image: PathBuf,
    /// From `<image>.sha256sum`, when present: 64 lowercase hex digits.
    pub sha256: Option<String>,
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

    pub fn path(&self) -> &Path {
        self.mounted.path()
    }

    pub fn device(&self) -> &Path {
        self.mounted.device()
    }

    /// The install config on the partition, if any, without requiring an image (the config
    /// may name one elsewhere).
    pub fn config(&self) -> Option<PathBuf> {
        Some(self.path().join(CONFIG_FILE_NAME)).filter(|path| path.is_file())
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
    let config = Some(CONFIG_FILE_NAME.to_owned()).filter(|name| names.contains(name));
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

fn read_sha256sum(path: &Path, image_name: &str) -> Result<String, UsbDataError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsbDataError::Read {
        path: path.to_owned(),
        source,
    })?;
    sha256_for(&text, image_name).ok_or_else(|| UsbDataError::NoChecksumLine {
        path: path.to_owned(),
        image: image_name.to_owned(),
    })
}

/// The sha256 (lowercase hex) that a `sha256sum` output gives for `file_name`. Lines are
/// `HEX  name` (text mode) or `HEX *name` (binary mode); the name is compared without its
/// directory, since sha256sum was usually run elsewhere.
pub fn sha256_for(sha256sum: &str, file_name: &str) -> Option<String> {
    sha256sum.lines().find_map(|line| {
        let (hex, name) = line.trim_end().split_once(' ')?;
        let name = name.strip_prefix([' ', '*'])?;
        let base = name.rsplit('/').next().unwrap_or(name);
        let valid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        (valid && base == file_name).then(|| hex.to_ascii_lowercase())
    })
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

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn sha256sum_line_for_the_image_is_found_in_text_and_binary_mode() {
        let text = format!("{}  other.raw.gz\n{HEX}  os.raw.gz\n", "0".repeat(64));
        assert_eq!(sha256_for(&text, "os.raw.gz").as_deref(), Some(HEX));
        let binary = format!("{}  *./out/os.raw.gz\n", HEX.to_uppercase());
        assert_eq!(sha256_for(&binary, "os.raw.gz").as_deref(), Some(HEX));
        assert_eq!(sha256_for(&text, "missing.raw.gz"), None);
        assert_eq!(sha256_for("abc  os.raw.gz\n", "os.raw.gz"), None);
    }

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

    #[test]
    fn uevent_of_a_partition_gives_its_device_and_gpt_name() {
        let partition = parse_uevent(
            "MAJOR=7\nMINOR=2\nDEVNAME=loop0p2\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=2\nPARTNAME=BOOTKIT-DATA\n",
        )
        .unwrap();
        assert_eq!(partition.devname, "loop0p2");
        assert_eq!(partition.name.as_deref(), Some(DATA_PARTITION_NAME));
        assert!(parse_uevent("MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\n").is_none());
    }

    #[test]
    fn two_data_partitions_are_an_error_naming_both() {
        let sys = tempfile::tempdir().unwrap();
        for (dev, partn) in [("sdb2", 2), ("sdc2", 2)] {
            let dir = sys.path().join("class/block").join(dev);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("uevent"),
                format!("DEVNAME={dev}\nDEVTYPE=partition\nPARTN={partn}\nPARTNAME=BOOTKIT-DATA\n"),
            )
            .unwrap();
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
