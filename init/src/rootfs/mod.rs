//! Root filesystem in RAM: a tmpfs, the rootfs archive unpacked into it, switch_root.
//!
//! Modules, one job each: `tmpfs` mounts the new root; `archive` finds the archive and opens
//! it as a decompressed stream; `unpack` writes its entries, with `bootkit_common::archive_name` (lexical name
//! checks), `beneath` (fd-relative directory lookups that cannot leave the root), `create`
//! (one object by name in an open directory) and `metadata` (owners, modes, times, xattrs); `switch_root` moves the mounts and changes
//! root, with `modules_copy` (kernel modules into the new root) and `free_initramfs`
//! (giving the initramfs's RAM back).

mod archive;
mod beneath;
mod create;
mod error;
mod free_initramfs;
mod metadata;
mod modules_copy;
mod switch_root;
mod tmpfs;
mod unpack;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod unpack_tests;

use std::path::{Path, PathBuf};

use bootkit_common::compress::Compression;

pub use error::RootfsError;

/// What the unpack did, for the boot log.
#[derive(Debug, Clone)]
pub struct UnpackStats {
    /// The archive's compression, detected from its magic bytes.
    pub format: Compression,
    /// Entries created (directories, files, links, nodes).
    pub entries: u64,
    /// File data written.
    pub bytes: u64,
    /// Size of the archive file as stored (compressed).
    pub archive_size: u64,
}

/// Mount a tmpfs at `target` with the kernel command line's `rootflags=` (default `mode=0755`).
pub fn mount_tmpfs(target: &Path, rootflags: Option<&str>) -> Result<(), RootfsError> {
    tmpfs::mount_tmpfs(target, rootflags)
}

/// The rootfs archive: `explicit` (bootkit.rootfs=) or the first of /rootfs.tar.gz,
/// /rootfs.tar.zst, /rootfs.tar that exists.
pub fn find_archive(explicit: Option<&Path>) -> Result<PathBuf, RootfsError> {
    archive::find_archive(explicit)
}

/// Stream-unpack `archive` (format by magic bytes) into `target`. An entry that would
/// escape `target` stops the unpack with an error naming it, before anything is written
/// outside.
pub fn unpack(archive: &Path, target: &Path) -> Result<UnpackStats, RootfsError> {
    unpack::unpack(archive, target)
}

/// Move /proc /sys /dev /run into `newroot`, free the initramfs, chroot into `newroot`.
pub fn switch_root(newroot: &Path) -> Result<(), RootfsError> {
    switch_root::switch_root(newroot)
}
