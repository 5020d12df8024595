//! `manifest.json`: what a build produced, with digests, so a deployment can verify the
//! files and a second build can be compared with the first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A file's sha256 and size, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Lower-case hex.
    pub sha256: String,
    /// In bytes.
    pub size: u64,
}

impl FileDigest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> FileDigest {
        FileDigest {
            sha256: hex::encode(Sha256::digest(data)),
            size: data.len() as u64,
        }
    }
}

/// The rootfs archive inside the initramfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsDigest {
    /// Its name in the initramfs, e.g. `rootfs.tar.zst`.
    pub name: String,
    /// `zstd`, `gzip` or `none`.
    pub compression: String,
    /// The archive's digest (flattened into this object in JSON).
    #[serde(flatten)]
    pub digest: FileDigest,
}

/// What a build made, written as `manifest.json` beside the outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The image config, as given on the command line.
    pub config: String,
    /// The kernel release (`uname -r`).
    pub kernel_version: String,
    /// Output file name (`vmlinuz`, `initramfs`, `cmdline`) -> digest.
    pub outputs: BTreeMap<String, FileDigest>,
    /// Modules shipped in the initramfs (requested ones and their dependencies).
    pub modules: Vec<String>,
    /// Requested modules that are built into the kernel.
    pub modules_builtin: Vec<String>,
    /// The rootfs archive in the initramfs.
    pub rootfs: RootfsDigest,
    /// The mtime given to every file the builder added.
    pub source_date_epoch: u64,
}

impl Manifest {
    /// The manifest as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }
}
