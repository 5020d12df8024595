//! Every way the root filesystem stage can fail, each worded so that the person at the console
//! knows what failed, why, and what to change.

use std::io;
use std::path::PathBuf;

use bootkit_common::compress::Compression;
use bootkit_common::size::human_size_exact;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot create the mount point {path} for the root tmpfs: {source}")]
    CreateMountPoint { path: PathBuf, source: io::Error },

    #[error(
        "cannot mount a tmpfs at {target} with options \"{options}\": {source} \
         (check rootflags= on the kernel command line, e.g. rootflags=mode=0755,size=1G)"
    )]
    MountTmpfs {
        target: PathBuf,
        options: String,
        source: io::Error,
    },

    #[error(
        "the rootfs archive {path} named by bootkit.rootfs= cannot be used: {source} \
         (check the path on the kernel command line; it is a path inside the initramfs)"
    )]
    ExplicitArchive { path: PathBuf, source: io::Error },

    #[error(
        "no rootfs archive in the initramfs: looked for {} \
         (build the image with a rootfs, or name the archive with bootkit.rootfs=PATH)",
        join_paths(.looked_for)
    )]
    ArchiveNotFound { looked_for: Vec<PathBuf> },

    #[error("cannot open the rootfs archive {path}: {source}")]
    OpenArchive { path: PathBuf, source: io::Error },

    #[error(
        "cannot read the rootfs archive {archive} ({format}) {position}: {source} \
         (the archive is corrupt or truncated; rebuild the image)"
    )]
    ReadArchive {
        archive: PathBuf,
        format: Compression,
        /// Where in the archive, e.g. `in entry 'usr/bin/ls'`.
        position: String,
        source: io::Error,
    },

    #[error("cannot open the new root {path}: {source}")]
    OpenTarget { path: PathBuf, source: io::Error },

    #[error(
        "refusing rootfs archive entry '{entry}': {reason}; the unpack stopped and nothing was \
         written outside {target} (rebuild the rootfs archive without this entry)"
    )]
    UnsafeEntry {
        entry: String,
        reason: String,
        target: PathBuf,
    },

    #[error(
        "rootfs archive entry '{entry}' has a type this unpacker does not create ({kind}); \
         rebuild the rootfs archive without it"
    )]
    UnsupportedEntry { entry: String, kind: String },

    #[error(
        "cannot unpack rootfs archive entry '{entry}' into {target}: cannot {action}: {source}"
    )]
    WriteEntry {
        entry: String,
        target: PathBuf,
        action: String,
        source: io::Error,
    },

    #[error(
        "the root tmpfs at {target} is full (no space left while writing '{entry}'): the tmpfs \
         holds {}, the rootfs archive {archive} is {} on disk and {} were unpacked before it \
         filled up; raise rootflags=size= on the kernel command line (e.g. rootflags=size=2G) \
         or give the machine more RAM",
        tmpfs_size.map_or_else(|| "an unknown size".to_string(), human_size_exact),
        human_size_exact(*archive_size),
        human_size_exact(*written)
    )]
    NoSpace {
        target: PathBuf,
        entry: String,
        tmpfs_size: Option<u64>,
        archive: PathBuf,
        archive_size: u64,
        written: u64,
    },

    #[error("refusing to delete {root}: {reason}; deleting it could wipe a real disk")]
    NotInitramfs { root: PathBuf, reason: String },

    #[error("cannot free the initramfs at {root}: cannot {action}: {source}")]
    FreeInitramfs {
        root: PathBuf,
        action: String,
        source: io::Error,
    },

    #[error("switch_root into {newroot}: cannot {action}: {source}")]
    SwitchRoot {
        newroot: PathBuf,
        action: String,
        source: io::Error,
    },

    #[error(
        "cannot copy the kernel modules {from} into {to}: {source} \
         (later services could not load modules)"
    )]
    CopyModules {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// An archive name as bytes, printable in a message whatever it contains.
pub fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_are_printable() {
        assert_eq!(display_name(b"a\nb"), "a\\nb");
        assert_eq!(display_name(b"\xff"), "\u{fffd}");
    }
}
