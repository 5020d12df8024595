//! The builder's errors. Each says what failed, why, and where useful what to do about it.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a build (or `inspect`, `check-kernel`) failed.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The image config is invalid; says which key and why.
    #[error("image config: {0}")]
    Config(String),

    // The cause is part of the message rather than a `source()`, so that printing the
    // error chain does not repeat it.
    /// A file operation failed.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The operating system's error.
        cause: io::Error,
    },

    /// An input file or directory does not exist.
    #[error("{what} not found at {path}: {hint}")]
    Missing {
        /// What it is (`the kernel package`, ...).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// What to do about it.
        hint: String,
    },

    /// The kernel package or tree is unusable.
    #[error("kernel {path}: {reason}")]
    Kernel {
        /// The kernel file or tree.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A requested kernel module is in neither the module tree nor built in.
    #[error(
        "kernel module {name:?} {}does not exist in the kernel's module tree {tree} (check the name in [kernel] modules)",
        needed_by.as_ref().map(|by| format!("(needed by {by}) ")).unwrap_or_default()
    )]
    ModuleNotFound {
        /// The module's name.
        name: String,
        /// The module that needs it, when it was not requested directly.
        needed_by: Option<String>,
        /// The module tree searched.
        tree: PathBuf,
    },

    /// A module file's `.modinfo` cannot be read.
    #[error("kernel module {path}: cannot read its .modinfo: {reason}")]
    Modinfo {
        /// The module file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// `modules.dep` is malformed or has a cycle.
    #[error("kernel modules")]
    Kmod(#[from] bootkit_common::kmod::KmodError),

    /// A checksum file cannot be read or written.
    #[error(transparent)]
    Checksum(#[from] bootkit_common::checksum::ChecksumError),

    /// A program to ship is not a usable ELF file.
    #[error("program {program}: {reason}")]
    Elf {
        /// The program's host path.
        program: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A program needs a shared library found in no library directory.
    #[error(
        "program {program} needs shared library {library}, which is in none of the library directories searched ({searched})"
    )]
    MissingLibrary {
        /// The program.
        program: PathBuf,
        /// The library's soname.
        library: String,
        /// The directories searched, comma-separated.
        searched: String,
    },

    /// An archive (rootfs, initramfs) cannot be read or written.
    #[error("{archive}: {reason}")]
    Archive {
        /// The archive's path.
        archive: PathBuf,
        /// What failed.
        reason: String,
    },

    /// A path inside the image is not valid (absolute outside the tree, `..`).
    #[error("image path {path:?}: {reason}")]
    ImagePath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A host tool the build needs is not installed.
    #[error(
        "{program} is not installed (it is needed to {purpose}): install the Debian package {package}"
    )]
    ToolMissing {
        /// The program's name.
        program: &'static str,
        /// The Debian package that ships it.
        package: &'static str,
        /// What it was needed for.
        purpose: String,
    },

    /// A host tool ran and failed.
    #[error("{program} failed to {purpose} ({status}): {output}")]
    ToolFailed {
        /// The program's name.
        program: &'static str,
        /// What it was run for.
        purpose: String,
        /// Its exit status, as text.
        status: String,
        /// What it printed.
        output: String,
    },

    /// The UKI cannot be made or checked.
    #[error("unified kernel image {path}: {reason}")]
    Uki {
        /// The UKI's path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// The disk image cannot be made.
    #[error("disk image {path}: {reason}")]
    DiskImage {
        /// The disk image's path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// The USB stick's install config does not fit the installer's schema.
    #[error("install config {path}: {problem}; fix it, or the installer refuses the stick on site")]
    InstallConfig {
        /// The install config file.
        path: PathBuf,
        /// What is wrong, with its line and key.
        problem: String,
    },

    /// The inputs given cannot be used together, or not at all; says what to give instead.
    #[error("{0}")]
    Usage(String),

    /// The image to customize is not a USB installer stick made by `bootkit-build usb`.
    #[error(
        "{path} is not a bootkit USB installer stick: looked for GPT partitions named \
         BOOTKIT-ESP and BOOTKIT-DATA (an ext4 filesystem labelled BOOTKIT-DATA), found {found}; \
         give the usb.img that `bootkit-build usb` or `build` made"
    )]
    NotABootkitStick {
        /// The image or device given.
        path: PathBuf,
        /// What it has instead.
        found: String,
    },

    /// The files to put on the stick's data partition do not fit, and it cannot grow.
    #[error(
        "{path}: the BOOTKIT-DATA partition has {} MiB free, the files need {} MiB: {hint}",
        available.div_ceil(1 << 20),
        needed.div_ceil(1 << 20)
    )]
    NoRoom {
        /// The stick.
        path: PathBuf,
        /// Bytes the new files take.
        needed: u64,
        /// Bytes free, counting the files they replace.
        available: u64,
        /// What to do about it.
        hint: &'static str,
    },

    /// The registry refused or failed a publish.
    #[error("registry {registry}: {reason}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What failed.
        reason: String,
    },
}

impl BuildError {
    /// An I/O error with what was being done when it happened.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
        let what = what.into();
        move |cause| BuildError::Io { what, cause }
    }
}

/// The builder's results; errors are [`BuildError`].
pub type Result<T, E = BuildError> = std::result::Result<T, E>;
