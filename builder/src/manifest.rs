//! `manifest.json`: what a build produced, with digests, so a deployment can verify the
//! files and a second build can be compared with the first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub sha256: String,
    pub size: u64,
}

impl FileDigest {
    pub fn of(data: &[u8]) -> FileDigest {
        FileDigest {
            sha256: hex::encode(Sha256::digest(data)),
            size: data.len() as u64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsDigest {
    /// Its name in the initramfs, e.g. `rootfs.tar.zst`.
    pub name: String,
    pub compression: String,
    #[serde(flatten)]
    pub digest: FileDigest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The image config, as given on the command line.
    pub config: String,
    pub kernel_version: String,
    /// Output file name (`vmlinuz`, `initramfs`, `cmdline`) -> digest.
    pub outputs: BTreeMap<String, FileDigest>,
    /// Modules shipped in the initramfs (requested ones and their dependencies).
    pub modules: Vec<String>,
    /// Requested modules that are built into the kernel.
    pub modules_builtin: Vec<String>,
    pub rootfs: RootfsDigest,
    /// The mtime given to every file the builder added.
    pub source_date_epoch: u64,
}

impl Manifest {
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }
}
