//! Every way the root filesystem stage can fail, each worded so that the person at the console
//! knows what failed, why, and what to change.

use std::io;
use std::path::PathBuf;

use bootkit_common::compress::Compression;
use bootkit_common::size::human_size_exact;

/// A failure of the root filesystem stage: mounting the tmpfs, finding, reading or unpacking the
/// rootfs archive, freeing the initramfs or switching root.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The directory to mount the root tmpfs on could not be created.
    #[error("cannot create the mount point {path} for the root tmpfs")]
    CreateMountPoint {
        /// The mount point.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    #[error(
        "cannot mount a tmpfs at {target} with options \"{options}\" \
         (check rootflags= on the kernel command line, e.g. rootflags=mode=0755,size=1G)"
    )]
    /// mount(2) of the root tmpfs failed, usually because of bad `rootflags=`.
    MountTmpfs {
        /// The mount point.
        target: PathBuf,
        /// The mount options passed: `rootflags=` with `mode=0755` added unless it sets a mode.
        options: String,
        /// The operating system's error.
        source: io::Error,
    },

    #[error(
        "the rootfs archive {path} named by bootkit.rootfs= cannot be used \
         (check the path on the kernel command line; it is a path inside the initramfs)"
    )]
    /// The archive named by `bootkit.rootfs=` does not exist, cannot be read or is not a
    /// regular file.
    ExplicitArchive {
        /// The path as given on the kernel command line.
        path: PathBuf,
        /// The operating system's error, or why the file is not usable.
        source: io::Error,
    },

    #[error(
        "no rootfs archive in the initramfs: looked for {} \
         (build the image with a rootfs, or name the archive with bootkit.rootfs=PATH)",
        join_paths(.looked_for)
    )]
    /// No `bootkit.rootfs=` was given and none of the default archive paths exists.
    ArchiveNotFound {
        /// The paths tried, in order.
        looked_for: Vec<PathBuf>,
    },

    /// The archive file could not be opened, its size read, or its format detected.
    #[error("cannot open the rootfs archive {path}")]
    OpenArchive {
        /// The archive file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    #[error(
        "cannot read the rootfs archive {archive} ({format}) {position} \
         (the archive is corrupt or truncated; rebuild the image)"
    )]
    /// Reading or decompressing the archive failed part-way: it is corrupt or truncated.
    ReadArchive {
        /// The archive file.
        archive: PathBuf,
        /// The compression detected from its magic bytes.
        format: Compression,
        /// Where in the archive, e.g. `in entry 'usr/bin/ls'`.
        position: String,
        /// The read or decompression error.
        source: io::Error,
    },

    /// The archive holds no entries (an empty file, or only tar's end blocks): the machine
    /// would sit in an empty root.
    #[error(
        "the rootfs archive {archive} ({format}) has no entries: the image was built without a \
         rootfs; rebuild it"
    )]
    EmptyArchive {
        /// The archive file.
        archive: PathBuf,
        /// The compression detected from its magic bytes.
        format: Compression,
    },

    /// The directory to unpack into could not be opened.
    #[error("cannot open the new root {path}")]
    OpenTarget {
        /// The new root.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    #[error(
        "refusing rootfs archive entry '{entry}': {reason}; the unpack stopped and nothing was \
         written outside {target} (rebuild the rootfs archive without this entry)"
    )]
    /// An entry whose name or links could lead outside the new root; the unpack stops at it.
    UnsafeEntry {
        /// The entry's name, made printable.
        entry: String,
        /// What makes it unsafe, e.g. a `..` component or a path through a symbolic link.
        reason: String,
        /// The new root.
        target: PathBuf,
    },

    #[error(
        "rootfs archive entry '{entry}' has a type this unpacker does not create ({kind}); \
         rebuild the rootfs archive without it"
    )]
    /// An entry of a tar type the unpacker does not create.
    UnsupportedEntry {
        /// The entry's name, made printable.
        entry: String,
        /// Its type, e.g. `tar type 'V'`.
        kind: String,
    },

    /// Creating an entry in the new root, or setting its metadata, failed for a reason other
    /// than a full tmpfs (that is [`RootfsError::NoSpace`]).
    #[error("cannot unpack rootfs archive entry '{entry}' into {target}: cannot {action}")]
    WriteEntry {
        /// The entry's name, made printable.
        entry: String,
        /// The new root.
        target: PathBuf,
        /// What failed, worded to follow "cannot", e.g. `create the file`.
        action: String,
        /// The operating system's error.
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
    /// The root tmpfs filled up (`ENOSPC`) while an entry was written.
    NoSpace {
        /// The new root.
        target: PathBuf,
        /// The entry being written, made printable.
        entry: String,
        /// The tmpfs's size in bytes; `None` when it cannot be read or the tmpfs has no size
        /// limit (then the machine's RAM ran out).
        tmpfs_size: Option<u64>,
        /// The archive file.
        archive: PathBuf,
        /// The archive's size on disk (compressed), in bytes.
        archive_size: u64,
        /// Bytes of file data unpacked before the tmpfs filled up.
        written: u64,
    },

    /// Freeing the initramfs was refused: the old root is not shown to be a ramfs or tmpfs
    /// with an `/init`, so deleting its files could wipe a real disk.
    #[error("refusing to delete {root}: {reason}; deleting it could wipe a real disk")]
    NotInitramfs {
        /// The old root whose files would have been deleted.
        root: PathBuf,
        /// Why it is not taken for an initramfs.
        reason: String,
    },

    /// Deleting the initramfs's files to give its RAM back failed.
    #[error("cannot free the initramfs at {root}: cannot {action}")]
    FreeInitramfs {
        /// The initramfs root.
        root: PathBuf,
        /// What failed, worded to follow "cannot".
        action: String,
        /// The operating system's error.
        source: io::Error,
    },

    /// A step of switch_root failed: moving a mount, moving the new root onto `/`, `chroot`.
    #[error("switch_root into {newroot}: cannot {action}")]
    SwitchRoot {
        /// The new root.
        newroot: PathBuf,
        /// What failed, worded to follow "cannot", e.g. `chdir into it`.
        action: String,
        /// The operating system's error.
        source: io::Error,
    },

    #[error(
        "cannot copy the kernel modules {from} into {to} \
         (later services could not load modules)"
    )]
    /// Copying the initramfs's kernel modules into a new root that has none for the running
    /// kernel failed.
    CopyModules {
        /// The initramfs's modules directory, `/lib/modules`.
        from: PathBuf,
        /// The new root's `lib/modules`.
        to: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}
