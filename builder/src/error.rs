//! The builder's errors. Each says what failed, why, and where useful what to do about it.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("image config: {0}")]
    Config(String),

    // The cause is part of the message rather than a `source()`, so that printing the
    // error chain does not repeat it.
    #[error("{what}: {cause}")]
    Io { what: String, cause: io::Error },

    #[error("{what} not found at {path}: {hint}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        hint: String,
    },

    #[error("kernel {path}: {reason}")]
    Kernel { path: PathBuf, reason: String },

    #[error(
        "kernel module {name:?} {}does not exist in the kernel's module tree {tree} (check the name in [kernel] modules)",
        needed_by.as_ref().map(|by| format!("(needed by {by}) ")).unwrap_or_default()
    )]
    ModuleNotFound {
        name: String,
        needed_by: Option<String>,
        tree: PathBuf,
    },

    #[error("kernel module {path}: cannot read its .modinfo: {reason}")]
    Modinfo { path: PathBuf, reason: String },

    #[error("kernel modules")]
    Kmod(#[from] bootkit_common::kmod::KmodError),

    #[error(transparent)]
    Checksum(#[from] bootkit_common::checksum::ChecksumError),

    #[error("program {program}: {reason}")]
    Elf { program: PathBuf, reason: String },

    #[error(
        "program {program} needs shared library {library}, which is in none of the library directories searched ({searched})"
    )]
    MissingLibrary {
        program: PathBuf,
        library: String,
        searched: String,
    },

    #[error("{archive}: {reason}")]
    Archive { archive: PathBuf, reason: String },

    #[error("image path {path:?}: {reason}")]
    ImagePath { path: String, reason: String },

    #[error(
        "{program} is not installed (it is needed to {purpose}): install the Debian package {package}"
    )]
    ToolMissing {
        program: &'static str,
        package: &'static str,
        purpose: String,
    },

    #[error("{program} failed to {purpose} ({status}): {output}")]
    ToolFailed {
        program: &'static str,
        purpose: String,
        status: String,
        output: String,
    },

    #[error("unified kernel image {path}: {reason}")]
    Uki { path: PathBuf, reason: String },

    #[error("disk image {path}: {reason}")]
    DiskImage { path: PathBuf, reason: String },

    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
}

impl BuildError {
    /// An I/O error with what was being done when it happened.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
        let what = what.into();
        move |cause| BuildError::Io { what, cause }
    }
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;
