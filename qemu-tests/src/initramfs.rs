//! Building and extending initramfs archives in the kernel's `newc` cpio
//! format, so tests can inject files (a hostile rootfs archive, a test
//! service, a busybox /init) into an image without rebuilding it.
//!
//! The kernel unpacks concatenated archives one after the other, compressed
//! or not, and later entries replace earlier ones. An uncompressed archive
//! must start at a 4-byte-aligned offset; the zero bytes before it are
//! skipped (init/initramfs.c: `unpack_to_rootfs`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Inode numbers for appended entries start high so they never look like
/// hard links to entries of the archive being extended.
const INO_BASE: u32 = 0x4000_0000;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file with its content.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(String),
    /// A character device node.
    CharDev {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
}

/// One archive entry. `path` is relative to the root (`/` and `./`
/// prefixes are removed); `mode` holds the permission bits only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    /// Relative to the root, without `/` or `./`.
    pub path: String,
    /// Permission bits only (`0o755`).
    pub mode: u32,
    /// What the entry is.
    pub kind: EntryKind,
}

impl CpioEntry {
    /// A regular file holding `data`.
    pub fn file(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self::new(path, mode, EntryKind::File(data.into()))
    }

    /// A directory.
    pub fn dir(path: &str, mode: u32) -> Self {
        Self::new(path, mode, EntryKind::Dir)
    }

    /// A symbolic link (mode 0777) to `target`.
    pub fn symlink(path: &str, target: &str) -> Self {
        Self::new(path, 0o777, EntryKind::Symlink(target.to_string()))
    }

    /// A character device node `major:minor`.
    pub fn char_dev(path: &str, mode: u32, major: u32, minor: u32) -> Self {
        Self::new(path, mode, EntryKind::CharDev { major, minor })
    }

    fn new(path: &str, mode: u32, kind: EntryKind) -> Self {
        Self {
            path: normalize(path),
            mode: mode & 0o7777,
            kind,
        }
    }

    fn type_bits(&self) -> u32 {
        match self.kind {
            EntryKind::File(_) => S_IFREG,
            EntryKind::Dir => S_IFDIR,
            EntryKind::Symlink(_) => S_IFLNK,
            EntryKind::CharDev { .. } => S_IFCHR,
        }
    }

    fn data(&self) -> &[u8] {
        match &self.kind {
            EntryKind::File(d) => d,
            EntryKind::Symlink(t) => t.as_bytes(),
            EntryKind::Dir | EntryKind::CharDev { .. } => &[],
        }
    }
}

/// `(path, bytes, mode)` is a regular file.
impl<P: AsRef<str>, D: AsRef<[u8]>> From<(P, D, u32)> for CpioEntry {
    fn from((path, data, mode): (P, D, u32)) -> Self {
        CpioEntry::file(path.as_ref(), data.as_ref().to_vec(), mode)
    }
}

fn normalize(path: &str) -> String {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    p.trim_end_matches('/').to_string()
}

/// Adds a `0755` directory entry for every parent that is not itself an
/// entry, placed before the entries: the kernel does not create missing
/// parents, and `mkdir` of an existing directory is harmless.
fn with_parents(entries: &[CpioEntry]) -> Vec<CpioEntry> {
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut parents = BTreeSet::new();
    for e in entries {
        let mut p = e.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !listed.contains(parent) {
                parents.insert(parent.to_string());
            }
            p = parent;
        }
    }
    // BTreeSet order puts "a" before "a/b": parents come first.
    let mut out: Vec<CpioEntry> = parents.iter().map(|p| CpioEntry::dir(p, 0o755)).collect();
    out.extend(entries.iter().cloned());
    out
}

/// Writes one complete uncompressed newc archive (with trailer) to `w`.
pub fn write_newc<W: Write>(entries: &[CpioEntry], mut w: W) -> Result<W> {
    let ctx = || "writing a cpio archive".to_string();
    for (i, e) in with_parents(entries).iter().enumerate() {
        if e.path.is_empty() {
            continue; // the root itself already exists
        }
        let data = e.data();
        let size = u32::try_from(data.len())
            .map_err(|_| Error::Other(format!("{}: newc entries are limited to 4 GiB", e.path)))?;
        let ino = u32::try_from(i)
            .ok()
            .and_then(|i| INO_BASE.checked_add(i))
            .ok_or_else(|| Error::Other(format!("{}: too many cpio entries for newc", e.path)))?;
        let mut b = cpio::newc::Builder::new(&e.path)
            .ino(ino)
            .mode(e.type_bits() | e.mode)
            .nlink(if e.kind == EntryKind::Dir { 2 } else { 1 });
        if let EntryKind::CharDev { major, minor } = e.kind {
            b = b.rdev_major(major).rdev_minor(minor);
        }
        let mut writer = b.write(w, size);
        writer.write_all(data).map_err(Error::io(ctx()))?;
        w = writer.finish().map_err(Error::io(ctx()))?;
    }
    cpio::newc::trailer(w).map_err(Error::io(ctx()))
}

/// Copies the initramfs `src` to `dst` and appends an uncompressed newc
/// segment holding `entries`. `src` may be compressed (zstd, gzip, ...).
pub fn append_segment(src: &Path, dst: &Path, entries: &[CpioEntry]) -> Result<()> {
    let mut image = std::fs::read(src).map_err(Error::io(format!("reading {}", src.display())))?;
    // The kernel only recognises an uncompressed archive at a 4-byte boundary.
    image.resize(image.len().next_multiple_of(4), 0);
    let image = write_newc(entries, image)?;
    std::fs::write(dst, image).map_err(Error::io(format!("writing {}", dst.display())))
}

/// [`append_segment`] with regular files given as `(path, bytes, mode)`.
pub fn append_files(src: &Path, dst: &Path, files: &[(&str, &[u8], u32)]) -> Result<()> {
    let entries: Vec<CpioEntry> = files.iter().map(|&f| CpioEntry::from(f)).collect();
    append_segment(src, dst, &entries)
}

/// Reads every entry of one or more concatenated *uncompressed* newc
/// archives, in order (later entries win, as in the kernel). For tests of
/// the helpers above and of uncompressed images.
pub fn read_newc(mut bytes: &[u8]) -> Result<Vec<CpioEntry>> {
    let mut out = Vec::new();
    let total = bytes.len();
    loop {
        // Skip the zero padding between archives, as the kernel does.
        while let [0, rest @ ..] = bytes {
            bytes = rest;
        }
        if bytes.is_empty() {
            return Ok(out);
        }
        let offset = total - bytes.len();
        if !offset.is_multiple_of(4) {
            return Err(Error::Other(format!(
                "cpio archive at unaligned offset {offset}"
            )));
        }
        let mut reader = cpio::newc::Reader::new(bytes).map_err(Error::io(format!(
            "reading a cpio header at offset {offset}"
        )))?;
        let entry = reader.entry().clone();
        if entry.is_trailer() {
            bytes = reader
                .finish()
                .map_err(Error::io("reading a cpio trailer"))?;
            continue;
        }
        let mut data = Vec::new();
        reader
            .read_to_end(&mut data)
            .map_err(Error::io(format!("reading cpio entry {}", entry.name())))?;
        bytes = reader
            .finish()
            .map_err(Error::io(format!("reading cpio entry {}", entry.name())))?;
        let mode = entry.mode();
        let kind = match mode & 0o170000 {
            S_IFREG => EntryKind::File(data),
            S_IFDIR => EntryKind::Dir,
            S_IFLNK => EntryKind::Symlink(String::from_utf8_lossy(&data).into_owned()),
            S_IFCHR => EntryKind::CharDev {
                major: entry.rdev_major(),
                minor: entry.rdev_minor(),
            },
            other => {
                return Err(Error::Other(format!(
                    "cpio entry {}: unsupported file type {other:o}",
                    entry.name()
                )));
            }
        };
        out.push(CpioEntry::new(entry.name(), mode, kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_round_trip_keeps_base_and_adds_parents() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        let base = dir.path().join("base.cpio");
        let out = dir.path().join("out.cpio");
        // An odd-sized base proves the alignment padding.
        let mut base_bytes = write_newc(
            &[CpioEntry::file("/init", b"#!/bin/sh\n".to_vec(), 0o755)],
            Vec::new(),
        )?;
        base_bytes.push(0);
        std::fs::write(&base, &base_bytes).map_err(Error::io("write base"))?;

        append_files(
            &base,
            &out,
            &[
                ("/etc/bootkit/x.toml", b"a = 1\n", 0o644),
                ("./evil.tar", b"tar", 0o600),
            ],
        )?;
        let out_bytes = std::fs::read(&out).map_err(Error::io("read out"))?;
        assert_eq!(&out_bytes[..base_bytes.len()], &base_bytes[..]);

        let entries = read_newc(&out_bytes)?;
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "init",
                "etc",
                "etc/bootkit",
                "etc/bootkit/x.toml",
                "evil.tar"
            ]
        );
        assert_eq!(
            entries[3],
            CpioEntry::file("etc/bootkit/x.toml", b"a = 1\n".to_vec(), 0o644)
        );
        assert_eq!(entries[1].kind, EntryKind::Dir);
        Ok(())
    }

    #[test]
    fn special_entries_round_trip() -> Result<()> {
        let entries = vec![
            CpioEntry::dir("dev", 0o755),
            CpioEntry::char_dev("dev/console", 0o600, 5, 1),
            CpioEntry::symlink("bin/sh", "busybox"),
        ];
        let bytes = write_newc(&entries, Vec::new())?;
        let back = read_newc(&bytes)?;
        // "bin" is added as a missing parent, ahead of all listed entries.
        assert_eq!(back[0], CpioEntry::dir("bin", 0o755));
        assert_eq!(back[1..], entries[..]);
        Ok(())
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("/./a/b/"), "a/b");
        assert_eq!(normalize("./x"), "x");
    }
}
