//! `bootkit-install`: plan (source, checksum, bmap, config, disk), check the disk, write and
//! verify, then make the written system boot and configure it, and sum up.

use bootkit_common::error_chain;
use std::fmt::Write as _;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bootkit_common::bmap::{Bmap, BmapError};
use bootkit_common::compress::{Compression, decoder};
use bootkit_common::install_config::{ConsoleSpec, FetchRetries, KernelArg, SavePartitions};
use bootkit_common::layout::USB_DATA_LABEL;
use bootkit_common::size::human_size;

use crate::config::{AfterInstall, ConfigError, InstallConfig};
use crate::configure::{self, ConfigureError};
use crate::copy_network::{self, CopyNetworkError, NetworkFile};
use crate::disk::{self, DiskError};
use crate::efi::{self, EfiError};
use crate::gpt::{self, GptError};
use crate::kargs::{self, KargsError};
use crate::kexec;
use crate::power;
use crate::progress::{Progress, Summary};
use crate::save::{SaveError, Saved};
use crate::source::http::{HttpError, HttpOptions, ProxySettings};
use crate::source::{SourceError, SourceSpec};
use crate::usbdata::{self, DataPartition, InstallLog, UsbDataError};
use crate::verify::{ChecksumError, Sha256Digest, Written};
use crate::write::{self, WriteError, WriteOptions, WriteReport};

/// Enough of the image to see its compression and where its GPT header sits.
const PEEK_BYTES: usize = 8192;

/// What the user asked for (`bootkit-install`'s options, or image2disk's environment).
#[derive(Debug, Clone, Default)]
pub struct InstallRequest {
    /// The image: a file, a block device or an http(s) URL; None: the install config's, or the USB
    /// data partition's.
    pub image: Option<String>,
    /// The target disk (`/dev/sda`, `auto`); None: the install config's, or chosen automatically.
    pub disk: Option<String>,
    /// The expected sha256 of the image (hex); None: from `sha256_file` or not checked.
    pub sha256: Option<String>,
    /// A `.sha256sum` file to read the expected sha256 from.
    pub sha256_file: Option<PathBuf>,
    /// A bmaptool block map: write and verify only the mapped ranges.
    pub bmap: Option<PathBuf>,
    /// The install config (`install.toml`).
    pub config: Option<PathBuf>,
    /// Decide and print the plan, write nothing.
    pub dry_run: bool,
    /// How http(s) images are fetched.
    pub http: HttpOptions,
    /// Refuse an image without a published checksum (`--require-checksum`).
    pub require_checksum: bool,
    /// Partitions of the target's current table to keep (`--save-partlabel`,
    /// `--save-partindex`), added to the install config's.
    pub save: SavePartitions,
    /// On a failed write leave the disk as it is (`--preserve-on-error`).
    pub preserve_on_error: bool,
    /// Resumes of a broken download (`--fetch-retries`); None: the config's, or the default.
    pub fetch_retries: Option<FetchRetries>,
    /// Kernel arguments for the installed system (`--append-karg`), after the config's.
    pub append_karg: Vec<KernelArg>,
    /// Kernel arguments to remove from it (`--delete-karg`), with the config's.
    pub delete_karg: Vec<KernelArg>,
    /// Consoles for it (`--console`); when given, instead of the config's.
    pub console: Vec<ConsoleSpec>,
    /// Write the bootkit's network into the installed system (`--copy-network`).
    pub copy_network: bool,
    /// Wait for the USB stick's data partition when no image is given (`--usb`); also when
    /// the kernel command line says `bootkit.mode=standalone`.
    pub usb: bool,
    /// image2disk's `COMPRESSED`. The format is always found by magic bytes, so a wrong
    /// value cannot break the write (Tinkerbell's action would write gzip bytes raw); a
    /// mismatch is only noted.
    pub compressed: Option<bool>,
}

/// Why an install failed; each message says whether the disk was written yet.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// No image was given anywhere.
    #[error(
        "no image to install: give --image (a file, a block device or an http(s) URL) or \
         `file` in [image] of the install config"
    )]
    NoImage,
    /// No image was given on a machine that is not the USB installer.
    #[error(
        "--image is missing: give --image (a file, a block device or an http(s) URL) or an \
         install config (--config) with `file` in [image]; to install from a USB stick's \
         {USB_DATA_LABEL} partition give --usb (the USB installer, booted with \
         bootkit.mode=standalone, waits for it by itself)"
    )]
    MissingImage,
    /// A checksum is required and none was given or found beside the image.
    #[error(
        "no published checksum for {image}: --require-checksum (or `require_checksum` in \
         [image] of the install config) asks for one; give --sha256 or --sha256-file, or put \
         {name}.sha256sum beside the image"
    )]
    ChecksumRequired {
        /// The image as given.
        image: String,
        /// Its file name.
        name: String,
    },
    /// The checksum file beside an image URL cannot be fetched (other than "not found").
    #[error(
        "cannot fetch the checksum file {url} beside the image; fix the server or give \
         --sha256 or --sha256-file"
    )]
    FetchChecksum {
        /// The checksum file's URL.
        url: String,
        /// Why fetching it failed.
        source: std::io::Error,
    },
    /// What the server answered for the checksum file beside an image URL is not one (e.g.
    /// a catch-all page for every path).
    #[error(
        "the server answered {url} (a checksum file beside the image) with something that is \
         not a sha256sum file; fix or remove it on the server, or give --sha256 or \
         --sha256-file"
    )]
    PublishedChecksum {
        /// The checksum file's URL.
        url: String,
        /// Why it is not a checksum file.
        source: bootkit_common::checksum::ChecksumError,
    },
    /// No image was given and no USB data partition appeared.
    #[error(
        "no image given and no USB data partition (GPT name or label `{}`) appeared within \
         {} s: give --image, or plug in a stick made by `bootkit-build` (its second partition)",
        USB_DATA_LABEL,
        waited.as_secs()
    )]
    NoDataPartition {
        /// How long it waited.
        waited: Duration,
    },
    /// The install config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The bootkit's network cannot be copied (`--copy-network`).
    #[error(transparent)]
    CopyNetwork(#[from] CopyNetworkError),
    /// The partitions to keep cannot be read or put back.
    #[error(transparent)]
    Save(#[from] SaveError),
    /// The image source cannot be opened.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The expected checksum is malformed or cannot be read.
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    /// The bmap file cannot be read.
    #[error("cannot read the bmap {path}")]
    ReadBmap {
        /// The bmap's path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bmap does not parse or does not check.
    #[error("bmap {path}")]
    Bmap {
        /// The bmap's path.
        path: PathBuf,
        /// What is wrong with it.
        source: BmapError,
    },
    /// The target disk cannot be chosen or opened.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// Writing or verifying the image failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The written partition table cannot be read or finished (moved to the disk's end,
    /// the layout applied).
    #[error("the image was {written}; its partition table could not be read or finished")]
    Partitions {
        /// What the write established.
        written: Written,
        /// What failed.
        source: GptError,
    },
    /// The USB data partition cannot be used.
    #[error("USB data partition")]
    UsbData(#[from] UsbDataError),
    /// The UEFI boot entry cannot be written.
    #[error(
        "the image was {written} and the system configured; its UEFI boot entry could not \
         be written (the firmware may still boot it from the removable-media path)"
    )]
    BootEntry {
        /// What the write established.
        written: Written,
        /// What failed.
        source: EfiError,
    },
    /// A `[layout]` or kept partitions were asked for an image without a GPT.
    #[error(
        "the image was {written}; it has no GPT, so the [layout] and the kept partitions \
         of the install config cannot be applied: remove them or install a GPT disk image"
    )]
    LayoutWithoutGpt {
        /// What the write established.
        written: Written,
    },
    /// The written disk cannot be reopened.
    #[error("cannot open {path} to read its partition table")]
    Reopen {
        /// The disk's path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The installed system's kernel command line cannot be edited.
    #[error("the image was {written}; its kernel command line could not be edited")]
    KernelArgs {
        /// What the write established.
        written: Written,
        /// What failed.
        source: KargsError,
    },
    /// Configuring the installed system failed.
    #[error("the image was {written}; configuring the installed system failed")]
    Configure {
        /// What the write established.
        written: Written,
        /// What failed.
        source: ConfigureError,
    },
}

/// Everything decided before a byte is written.
pub struct Plan {
    /// Where the image comes from.
    pub source: SourceSpec,
    /// Compression and GPT sector size, when the source is local and could be peeked at.
    pub compression: Option<Compression>,
    /// The image's GPT sector size, when it has a GPT and could be peeked at.
    pub image_sector_size: Option<u32>,
    /// Bytes the source gives, when known.
    pub source_length: Option<u64>,
    /// The uncompressed size when known (a bmap, an uncompressed file).
    pub image_size: Option<u64>,
    /// The sha256 to check the image against; None: not checked.
    pub expected_sha256: Option<Sha256Digest>,
    /// Where that sha256 came from, for the plan and the notes (`--sha256`, a file's path).
    pub checksum_origin: Option<String>,
    /// The bmap to write by, with its path.
    pub bmap: Option<(PathBuf, Bmap)>,
    /// The install config (defaults when none was given).
    pub config: InstallConfig,
    /// The target disk.
    pub disk: disk::Disk,
    /// Why this disk was chosen, for the plan's printout.
    pub disk_reason: String,
    /// The target's partitions to keep.
    pub saved: Saved,
    /// `--copy-network`'s files, made from the bootkit's network before the disk is written.
    pub copied_network: Vec<NetworkFile>,
    /// Leave the disk as it is when the write fails.
    pub preserve_on_error: bool,
}

/// Resolve the source, checksum, bmap, config and disk, and check the disk is safe to write.
pub fn plan(request: &InstallRequest) -> Result<Plan, InstallError> {
    let mut config = match &request.config {
        Some(path) => crate::config::load(path)?,
        None => InstallConfig::default(),
    };
    // Options add to the config's lists, as --save-partlabel does; consoles replace its own.
    let boot = &mut config.boot;
    boot.append_karg.extend(request.append_karg.iter().cloned());
    boot.delete_karg.extend(request.delete_karg.iter().cloned());
    if !request.console.is_empty() {
        boot.console.clone_from(&request.console);
    }
    let image_text = request
        .image
        .clone()
        .or_else(|| config.image.file.as_ref().map(|p| p.display().to_string()))
        .ok_or(InstallError::NoImage)?;
    let source = SourceSpec::parse(&image_text)?;
    let (compression, image_sector_size) = match source.path() {
        Some(path) => peek(path),
        None => (None, None),
    };
    let source_length = source.path().and_then(local_length);

    let (expected_sha256, checksum_origin) = expected_sha256(request, &config, &source)?;
    if expected_sha256.is_none() && (request.require_checksum || config.image.require_checksum) {
        return Err(InstallError::ChecksumRequired {
            image: source.to_string(),
            name: source.file_name().unwrap_or_else(|| "IMAGE".into()),
        });
    }
    let bmap = match request.bmap.as_ref().or(config.image.bmap.as_ref()) {
        Some(path) => Some((path.clone(), read_bmap(path)?)),
        None => None,
    };
    let image_size = bmap
        .as_ref()
        .map(|(_, bmap)| bmap.image_size)
        .or(source_length.filter(|_| compression == Some(Compression::None)));
    // Unknown (compressed) sizes: the compressed size is at least a lower bound.
    let size_for_checks = image_size.or(source_length).unwrap_or(0);

    let (disk, disk_reason) = choose_disk(request, &config, &source, size_for_checks)?;
    disk::check_safe(&disk, size_for_checks, image_sector_size)?;
    let rules = SavePartitions {
        labels: [&request.save.labels, &config.disk.save.labels]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        indexes: [&request.save.indexes, &config.disk.save.indexes]
            .into_iter()
            .flatten()
            .copied()
            .collect(),
    };
    let saved = Saved::read(&disk.dev_path, u64::from(disk.logical_sector_size), &rules)?;
    let preserve_on_error = request.preserve_on_error || config.disk.preserve_on_error;
    let copied_network = if request.copy_network || config.copy_network {
        copy_network::of_running_bootkit(Path::new("/proc/cmdline"))?
    } else {
        Vec::new()
    };
    Ok(Plan {
        source,
        compression,
        image_sector_size,
        source_length,
        image_size,
        expected_sha256,
        checksum_origin,
        bmap,
        config,
        disk,
        disk_reason,
        saved,
        copied_network,
        preserve_on_error,
    })
}

/// A note when `COMPRESSED` disagrees with what the magic bytes said.
fn compression_note(expected: Option<bool>, found: Compression) -> Option<String> {
    let expected = expected?;
    (expected != (found != Compression::None)).then(|| {
        format!(
            "note: COMPRESSED={expected}, but the image is {found}; it was written as {found} \
             (formats are recognised by their magic bytes)"
        )
    })
}

/// A block device's size is its end, not its metadata length.
fn local_length(path: &Path) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::End(0)).ok()
}

/// The compression and the GPT's sector size of a local image, from its first bytes.
fn peek(path: &Path) -> (Option<Compression>, Option<u32>) {
    let Ok(file) = std::fs::File::open(path) else {
        return (None, None);
    };
    let Ok((compression, decoded)) = decoder(BufReader::new(file)) else {
        return (None, None);
    };
    let mut head = Vec::with_capacity(PEEK_BYTES);
    if decoded
        .take(PEEK_BYTES as u64)
        .read_to_end(&mut head)
        .is_err()
    {
        return (Some(compression), None);
    }
    (Some(compression), disk::image_sector_size(&head))
}

/// The expected sha256 and where it came from: `--sha256`/`sha256`, `--sha256-file`/
/// `sha256_file`, or else an `IMAGE.sha256sum` or `IMAGE.sha256` beside the image (a file
/// or a URL), as published next to EMT images.
fn expected_sha256(
    request: &InstallRequest,
    config: &InstallConfig,
    source: &SourceSpec,
) -> Result<(Option<Sha256Digest>, Option<String>), InstallError> {
    let name = source.file_name();
    if let Some(hex) = &request.sha256 {
        return Ok((Some(Sha256Digest::parse(hex)?), Some("--sha256".into())));
    }
    if let Some(hex) = &config.image.sha256 {
        return Ok((
            Some(Sha256Digest::parse(hex)?),
            Some("sha256 in the install config".into()),
        ));
    }
    if let Some(path) = request
        .sha256_file
        .as_ref()
        .or(config.image.sha256_file.as_ref())
    {
        let digest = Sha256Digest::from_sha256sum_file(path, name.as_deref())?;
        return Ok((Some(digest), Some(path.display().to_string())));
    }
    match source {
        SourceSpec::File(path) => {
            for suffix in CHECKSUM_SUFFIXES {
                let mut beside = path.clone().into_os_string();
                beside.push(suffix);
                let beside = PathBuf::from(beside);
                if beside.is_file() {
                    let digest = Sha256Digest::from_sha256sum_file(&beside, name.as_deref())?;
                    return Ok((Some(digest), Some(beside.display().to_string())));
                }
            }
            Ok((None, None))
        }
        SourceSpec::Url(url) => checksum_beside_url(url, name.as_deref(), &request.http),
        SourceSpec::BlockDevice(_) => Ok((None, None)),
    }
}

/// The names a published checksum file has beside its image, in the order looked for.
const CHECKSUM_SUFFIXES: [&str; 2] = [".sha256sum", ".sha256"];
/// A checksum file is a few lines; more is not one.
const CHECKSUM_FILE_MAX: u64 = 1 << 20;

/// `URL.sha256sum` or `URL.sha256` (before any query), when the server has one: a 404 or 410
/// means there is none, and so does a 403 (S3 and its kind answer 403 for a missing object
/// when listing is not allowed); any other failure is an error, so a flaky server cannot silently
/// turn verification off.
fn checksum_beside_url(
    url: &str,
    name: Option<&str>,
    http: &HttpOptions,
) -> Result<(Option<Sha256Digest>, Option<String>), InstallError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    for suffix in CHECKSUM_SUFFIXES {
        let beside = match query {
            Some(query) => format!("{base}{suffix}?{query}"),
            None => format!("{base}{suffix}"),
        };
        let fetch_error = |source| InstallError::FetchChecksum {
            url: beside.clone(),
            source,
        };
        let reader = match crate::source::http::open(&beside, http) {
            Ok(reader) => reader,
            Err(HttpError::Status {
                status: 403 | 404 | 410,
                ..
            }) => continue,
            Err(error) => return Err(fetch_error(std::io::Error::other(error))),
        };
        let mut text = Vec::new();
        reader
            .take(CHECKSUM_FILE_MAX)
            .read_to_end(&mut text)
            .map_err(fetch_error)?;
        // The sha256sum rule lives in common::checksum, which reads files: the fetched text
        // is kept in a file named like the published one so that its messages name it.
        let dir = tempfile::tempdir().map_err(fetch_error)?;
        let file = dir
            .path()
            .join(format!("{}{suffix}", name.unwrap_or("image")));
        std::fs::write(&file, &text).map_err(fetch_error)?;
        let digest = Sha256Digest::from_sha256sum_file(&file, name).map_err(|source| {
            InstallError::PublishedChecksum {
                url: beside.clone(),
                source,
            }
        })?;
        return Ok((Some(digest), Some(beside)));
    }
    Ok((None, None))
}

fn read_bmap(path: &Path) -> Result<Bmap, InstallError> {
    let text = std::fs::read_to_string(path).map_err(|source| InstallError::ReadBmap {
        path: path.to_path_buf(),
        source,
    })?;
    Bmap::parse(&text).map_err(|source| InstallError::Bmap {
        path: path.to_path_buf(),
        source,
    })
}

fn choose_disk(
    request: &InstallRequest,
    config: &InstallConfig,
    source: &SourceSpec,
    image_size: u64,
) -> Result<(disk::Disk, String), InstallError> {
    if let Some(spec) = &request.disk {
        return Ok((disk::resolve(spec)?, "named by --disk".into()));
    }
    if let Some(device) = &config.disk.device {
        let reason = "named by [disk] device in the install config".into();
        return Ok((disk::resolve(&device.display().to_string())?, reason));
    }
    let mut medium_files: Vec<&Path> = Vec::new();
    medium_files.extend(source.path());
    medium_files.extend(request.config.as_deref());
    let exclude = disk::boot_medium(&medium_files)?;
    let chosen = disk::choose(&config.disk.policy, image_size, &exclude)?;
    let reason = format!(
        "chosen automatically: the {:?} eligible disk (non-removable, not the boot medium, \
         large enough)",
        config.disk.policy.prefer
    )
    .to_lowercase();
    Ok((chosen, reason))
}

impl Plan {
    /// What `--dry-run` prints.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "source:  {} ({})", self.source, self.source.kind());
        let format = self
            .compression
            .map_or_else(|| "found when streaming".to_string(), |c| c.to_string());
        let _ = writeln!(text, "format:  {format}");
        let size = match (self.image_size, self.source_length) {
            (Some(image), _) => format!("{image} bytes ({})", human_size(image)),
            (None, Some(source)) => {
                format!("unknown until decompressed ({source} bytes compressed)")
            }
            (None, None) => "unknown until streamed".into(),
        };
        let _ = writeln!(text, "size:    {size}");
        let sha256 = match (self.expected_sha256, &self.checksum_origin) {
            (Some(digest), Some(origin)) => format!("{} (from {origin})", digest.to_hex()),
            (Some(digest), None) => digest.to_hex(),
            (None, _) => "none given or found beside the image: the image will not be verified \
                          against a published checksum (computed and reported)"
                .into(),
        };
        let _ = writeln!(text, "sha256:  {sha256}");
        match &self.bmap {
            Some((path, bmap)) => {
                let _ = writeln!(
                    text,
                    "bmap:    {} ({} of {} bytes mapped, {} ranges)",
                    path.display(),
                    bmap.mapped_bytes(),
                    bmap.image_size,
                    bmap.ranges.len()
                );
            }
            None => {
                let _ = writeln!(text, "bmap:    none: every byte is written");
            }
        }
        let _ = writeln!(text, "disk:    {}, {}", self.disk, self.disk_reason);
        for kept in self.saved.describe() {
            let _ = writeln!(text, "keep:    {kept}");
        }
        let boot = &self.config.boot;
        let words = |args: &[KernelArg]| {
            args.iter()
                .map(KernelArg::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !boot.delete_karg.is_empty() {
            let _ = writeln!(text, "kernel:  delete {}", words(&boot.delete_karg));
        }
        if !boot.console.is_empty() {
            let consoles: Vec<String> = boot
                .console
                .iter()
                .map(|c| format!("console={c}"))
                .collect();
            let _ = writeln!(text, "kernel:  consoles {}", consoles.join(" "));
        }
        if !boot.append_karg.is_empty() {
            let _ = writeln!(text, "kernel:  append {}", words(&boot.append_karg));
        }
        for file in &self.copied_network {
            let _ = writeln!(
                text,
                "network: {}/{} (copied from the bootkit)",
                copy_network::NETWORK_DIR,
                file.name
            );
        }
        let layout = &self.config.layout;
        if layout.grow.is_none() && layout.add.is_empty() {
            let _ = writeln!(text, "layout:  the image's own partitions");
        } else {
            if let Some(number) = layout.grow {
                let _ = writeln!(text, "layout:  grow partition {number}");
            }
            for partition in &layout.add {
                let size = partition
                    .size_mib
                    .map_or_else(|| "the rest of the disk".into(), |mib| format!("{mib} MiB"));
                let _ = writeln!(text, "layout:  add {} ({size})", partition.name);
            }
        }
        text
    }
}

/// Plan, write, verify and configure; `cancel` is set by a signal handler. With neither an
/// image nor a config given (the USB installer), both come from the `BOOTKIT-DATA`
/// partition, which also receives the installer's log, on failure too.
pub fn run(
    request: &InstallRequest,
    progress: &mut Progress,
    cancel: &AtomicBool,
) -> Result<Option<Summary>, InstallError> {
    if request.image.is_some() || request.config.is_some() {
        return Ok(install(request, progress, cancel)?.map(|installed| installed.summary));
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if !(request.usb || standalone_mode(&cmdline)) {
        return Err(InstallError::MissingImage);
    }
    let device = wait_for_data_partition(progress)?;
    let data = DataPartition::mount(&device)?;
    let log = InstallLog::create(&std::env::temp_dir().join("bootkit-install.log"))?;
    progress.log_to(log.clone());
    let result = data.media().map_err(InstallError::from).and_then(|media| {
        progress.note(&format!(
            "USB data partition {}: image {}",
            device.display(),
            media.image.display()
        ));
        let from_usb = InstallRequest {
            image: Some(media.image.display().to_string()),
            sha256: request.sha256.clone().or(media.sha256),
            sha256_file: request.sha256_file.clone(),
            bmap: request.bmap.clone().or(media.bmap),
            config: media.config.clone(),
            ..request.clone()
        };
        install(&from_usb, progress, cancel)
            .map(|installed| installed.map(|installed| load_kexec(installed, progress)))
    });
    if let Err(error) = &result {
        progress.note(&format!(
            "bootkit-install: error: {error}",
            error = error_chain(error)
        ));
    }
    match data.finish(&log) {
        Ok(name) => progress.note(&format!(
            "log written to {} on {}",
            name.display(),
            device.display()
        )),
        Err(error) => progress.note(&format!(
            "warning: the log was not saved: {error}",
            error = error_chain(&error)
        )),
    }
    Ok(result?.map(|installed| {
        power::after_install(installed.after, progress);
        installed.summary
    }))
}

/// True when the kernel command line starts the bootkit as the USB installer: only then does
/// a missing image mean "wait for the stick", on a workstation it is a mistake.
fn standalone_mode(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .any(|word| word == "bootkit.mode=standalone")
}

/// How long the USB installer waits for its stick: USB storage is probed after the init has
/// loaded the drivers (usb-storage waits a second before scanning, then SCSI scans).
const DATA_PARTITION_TIMEOUT: Duration = Duration::from_secs(60);
const DATA_PARTITION_POLL: Duration = Duration::from_millis(250);

fn wait_for_data_partition(progress: &Progress) -> Result<PathBuf, InstallError> {
    let deadline = Instant::now() + DATA_PARTITION_TIMEOUT;
    let mut waiting_noted = false;
    loop {
        if let Some(device) = usbdata::find_data_partition(Path::new("/sys"), Path::new("/dev"))? {
            return Ok(device);
        }
        if Instant::now() >= deadline {
            return Err(InstallError::NoDataPartition {
                waited: DATA_PARTITION_TIMEOUT,
            });
        }
        if !waiting_noted {
            progress.note(&format!(
                "waiting up to {} s for the {} partition of the USB stick",
                DATA_PARTITION_TIMEOUT.as_secs(),
                USB_DATA_LABEL
            ));
            waiting_noted = true;
        }
        std::thread::sleep(DATA_PARTITION_POLL);
    }
}

/// A finished install: what was done, what the install config asks for next, and where the
/// installed system boots from (for `after = "kexec"`).
struct Installed {
    summary: Summary,
    after: AfterInstall,
    disk: PathBuf,
    sector_size: u64,
    loader: String,
}

/// For `after = "kexec"`, the installed system's kernel loaded while the log is still open,
/// or the reboot the kexec falls back to.
fn load_kexec(installed: Installed, progress: &Progress) -> Installed {
    let after = power::prepare(
        installed.after,
        || kexec::load_installed(&installed.disk, installed.sector_size, &installed.loader),
        progress,
    );
    Installed { after, ..installed }
}

/// Plan, write, verify and configure; prints the summary. `None`: a dry run, nothing written.
fn install(
    request: &InstallRequest,
    progress: &mut Progress,
    cancel: &AtomicBool,
) -> Result<Option<Installed>, InstallError> {
    let plan = plan(request)?;
    if request.dry_run {
        print!("{}", plan.describe());
        return Ok(None);
    }
    progress.note(&format!("installing {} on {}", plan.source, plan.disk));
    progress.note(&crate::secure_boot::state(Path::new(crate::efi::EFIVARS)).to_string());
    let (report, mut target) = match write_plan(&plan, request, progress, cancel) {
        Ok(written) => written,
        Err(error) => {
            keep_after_failure(&plan, progress);
            return Err(error);
        }
    };
    let ranges = if report.ranges_verified > 0 {
        format!(", {} bmap ranges checked", report.ranges_verified)
    } else {
        String::new()
    };
    let written = Written {
        checksum_origin: plan.checksum_origin.clone(),
    };
    let hint = if written.checksum_origin.is_none() {
        " (give --sha256, or put IMAGE.sha256sum beside the image)"
    } else {
        ""
    };
    progress.note(&format!(
        "{written}{hint}: {} bytes of {} image, sha256 {}{ranges}",
        report.image_bytes,
        report.compression,
        report.sha256.to_hex(),
    ));

    progress.stage("partitions", None);
    let has_gpt = written_gpt_sector_size(&target).is_some();
    if has_gpt {
        finish_partitions(
            &mut target,
            &plan.config.layout,
            &plan.saved,
            &written,
            progress,
        )?;
    } else if plan.config.layout.grow.is_some()
        || !plan.config.layout.add.is_empty()
        || !plan.saved.is_empty()
    {
        return Err(InstallError::LayoutWithoutGpt { written });
    } else {
        progress.note("the image has no GPT: its partition table is left as written");
        if let Err(error) = gpt::reread_partition_table(&target.file) {
            progress.note(&format!("warning: {error}", error = error_chain(&error)));
        }
    }
    drop(target);

    progress.stage("configuring", None);
    let changes =
        configure::configure_disk(&plan.config, &plan.disk.dev_path, &plan.copied_network)
            .map_err(|source| InstallError::Configure {
                written: written.clone(),
                source,
            })?;
    for change in changes {
        progress.note(&change.to_string());
    }

    if kargs::edits_requested(&plan.config.boot) {
        progress.stage("kernel command line", None);
        let sector_size = u64::from(plan.disk.logical_sector_size);
        let changes =
            kargs::apply(&plan.config, &plan.disk.dev_path, sector_size).map_err(|source| {
                InstallError::KernelArgs {
                    written: written.clone(),
                    source,
                }
            })?;
        for change in changes {
            progress.note(&change.to_string());
        }
    }

    progress.stage("boot entry", None);
    if has_gpt {
        add_boot_entry(&plan, &written, progress)?;
    } else {
        progress.note("the image has no GPT, so no EFI system partition: no boot entry written");
    }
    let mut summary = Summary::new(
        plan.disk.dev_path.display().to_string(),
        plan.source.to_string(),
        report.sha256.to_hex(),
        report.bytes_written,
        report.image_bytes,
        report.elapsed,
    );
    summary.checksum_verified = plan.expected_sha256.is_some();
    summary.checksum_origin = written.checksum_origin;
    progress.summary(&summary);
    Ok(Some(Installed {
        summary,
        after: plan.config.after,
        disk: plan.disk.dev_path.clone(),
        sector_size: u64::from(plan.disk.logical_sector_size),
        loader: plan.config.boot.loader.clone(),
    }))
}

/// `Boot####` for the installed ESP's loader, first in BootOrder; skipped with a note when
/// the bootkit was not started through UEFI (there are no boot variables then).
fn add_boot_entry(plan: &Plan, written: &Written, progress: &Progress) -> Result<(), InstallError> {
    if !efi::uefi_booted() {
        progress.note("not booted through UEFI: no boot entry written");
        return Ok(());
    }
    let path = &plan.disk.dev_path;
    let mut disk = std::fs::File::open(path).map_err(|source| InstallError::Reopen {
        path: path.clone(),
        source,
    })?;
    let sector_size = u64::from(plan.disk.logical_sector_size);
    let esp =
        gpt::esp_partition(&mut disk, sector_size).map_err(|source| InstallError::Partitions {
            written: written.clone(),
            source,
        })?;
    let boot = &plan.config.boot;
    let number = efi::add_boot_entry(
        Path::new(efi::EFIVARS),
        &mut disk,
        sector_size,
        esp.number,
        &boot.loader,
        &boot.label,
    )
    .map_err(|source| InstallError::BootEntry {
        written: written.clone(),
        source,
    })?;
    progress.note(&format!(
        "boot entry Boot{number:04X} \"{}\" -> partition {} {}, first in BootOrder",
        boot.label, esp.number, boot.loader
    ));
    Ok(())
}

/// Where the written image's GPT header is (512 or 4096), if it has one: MBR-only and
/// whole-disk filesystem images are valid images too, they just have nothing to finish.
fn written_gpt_sector_size(target: &write::Disk) -> Option<u32> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; 4096 + 512];
    target.file.read_exact_at(&mut head, 0).ok()?;
    disk::image_sector_size(&head)
}

/// The written table made to fit the disk: backup header moved to the end, the layout
/// applied, and the kernel told, so the partitions appear for configuring.
fn finish_partitions(
    target: &mut write::Disk,
    layout: &gpt::Layout,
    saved: &Saved,
    written: &Written,
    progress: &Progress,
) -> Result<(), InstallError> {
    let failed = |source| InstallError::Partitions {
        written: written.clone(),
        source,
    };
    gpt::relocate_backup_header(&mut target.file, target.sector_size).map_err(failed)?;
    // Kept partitions first: the layout then sees them (a grown partition must stay clear).
    for note in saved.restore(&mut target.file)? {
        progress.note(&note);
    }
    let changes =
        gpt::apply_layout(&mut target.file, target.sector_size, layout).map_err(failed)?;
    for change in changes {
        progress.note(&change.to_string());
    }
    gpt::reread_partition_table(&target.file).map_err(failed)?;
    Ok(())
}

/// After a failed write: when the disk's tables were cleared, a new table with only the kept
/// partitions, so a failed reinstall does not lose them (an untouched disk keeps its table).
fn keep_after_failure(plan: &Plan, progress: &Progress) {
    if plan.saved.is_empty() || plan.preserve_on_error {
        return;
    }
    let path = &plan.disk.dev_path;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path);
    let mut disk = match opened {
        Ok(disk) => disk,
        Err(error) => {
            progress.note(&format!(
                "warning: the kept partitions could not be put back: cannot open {}: {error}",
                path.display()
            ));
            return;
        }
    };
    let sector_size = u64::from(plan.disk.logical_sector_size);
    if gptman::GPT::read_from(&mut disk, sector_size).is_ok_and(|table| plan.saved.all_in(&table)) {
        return;
    }
    match plan.saved.restore_alone(&mut disk) {
        Ok(notes) => {
            for note in notes {
                progress.note(&format!("{note} in a new partition table"));
            }
            if let Err(error) = gpt::reread_partition_table(&disk) {
                progress.note(&format!("warning: {error}", error = error_chain(&error)));
            }
        }
        Err(error) => progress.note(&format!(
            "warning: the kept partitions could not be put back: {error}",
            error = error_chain(&error)
        )),
    }
}

fn write_plan(
    plan: &Plan,
    request: &InstallRequest,
    progress: &mut Progress,
    cancel: &AtomicBool,
) -> Result<(WriteReport, write::Disk), InstallError> {
    // With a known sha256 the whole image is checked before the partition table is written,
    // so a resume without a strong validator cannot install a mix of two files.
    let max_resumes = request
        .fetch_retries
        .or(plan.config.image.fetch_retries)
        .map_or(request.http.max_resumes, FetchRetries::max_resumes);
    let http = HttpOptions {
        whole_file_verified: plan.expected_sha256.is_some(),
        max_resumes,
        ..request.http.clone()
    };
    let source = plan.source.open(&http)?;
    let file = disk::open_for_write(&plan.disk)?;
    let target = write::Disk {
        path: plan.disk.dev_path.clone(),
        file,
        size: plan.disk.size_bytes,
        sector_size: u64::from(plan.disk.logical_sector_size),
    };
    let options = WriteOptions {
        expected_sha256: plan.expected_sha256,
        bmap: plan.bmap.as_ref().map(|(_, bmap)| bmap),
        source_length: source.length,
        cancel: Some(cancel),
        keep: plan.saved.byte_ranges(),
        preserve_on_error: plan.preserve_on_error,
    };
    let report = write::write_image(source.reader, &target, &options, progress)?;
    if let Some(note) = compression_note(request.compressed, report.compression) {
        progress.note(&note);
    }
    Ok((report, target))
}

/// Options for URLs from the usual environment (proxies) and `--ca`.
pub fn http_options(ca_file: Option<PathBuf>) -> HttpOptions {
    HttpOptions {
        ca_file,
        proxy: ProxySettings::from_env(),
        ..HttpOptions::default()
    }
}
