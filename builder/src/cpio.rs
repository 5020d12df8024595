//! The initramfs itself: a newc cpio archive (the only format the kernel unpacks), written
//! with the `cpio` crate from a [`Tree`], so entries come sorted with parents first.
//!
//! Reproducible: inode numbers count up in archive order (from 1, or from where the previous
//! segment of the same image stopped, so that no two entries of an image share one), uid/gid
//! are 0, every mtime is the build's epoch, device numbers of the entries are 0.

use std::io::Write;

use cpio::newc::{self, ModeFileType};

use crate::compress::{Encoder, NoFlush};
use crate::config::CompressionKind;
use crate::error::{BuildError, Result};
use crate::tree::{NodeKind, Tree};

/// Write `tree` as a newc archive ending in `TRAILER!!!`, numbering inodes from 1.
pub fn write_newc<W: Write>(tree: &Tree, out: W, epoch: u32) -> Result<W> {
    write_newc_from(tree, out, epoch, 1)
}

/// [`write_newc`] with inode numbers counting up from `first_ino`: a later segment of the
/// same image starts where the earlier one stopped (the kernel takes entries with equal
/// inode numbers and nlink > 1 for hard links, so they must not repeat).
pub fn write_newc_from<W: Write>(tree: &Tree, mut out: W, epoch: u32, first_ino: u32) -> Result<W> {
    for (index, (path, node)) in tree.nodes().enumerate() {
        let ino = u32::try_from(index)
            .ok()
            .and_then(|index| index.checked_add(first_ino))
            .ok_or_else(|| BuildError::ImagePath {
                path: path.to_string(),
                reason: "more entries than a cpio archive can number".into(),
            })?;
        let entry = newc::Builder::new(path)
            .ino(ino)
            .uid(0)
            .gid(0)
            .mtime(epoch)
            .mode(node.mode);
        let (entry, data): (_, std::borrow::Cow<'_, [u8]>) = match &node.kind {
            NodeKind::File(source) => (
                entry.set_mode_file_type(ModeFileType::Regular),
                source.read()?,
            ),
            NodeKind::Dir => (
                entry.set_mode_file_type(ModeFileType::Directory).nlink(2),
                Default::default(),
            ),
            NodeKind::Symlink(target) => (
                entry.set_mode_file_type(ModeFileType::Symlink),
                target.as_bytes().into(),
            ),
            NodeKind::CharDevice { major, minor } => (
                entry
                    .set_mode_file_type(ModeFileType::Char)
                    .rdev_major(*major)
                    .rdev_minor(*minor),
                Default::default(),
            ),
        };
        let size = u32::try_from(data.len()).map_err(|_| BuildError::ImagePath {
            path: path.to_string(),
            reason: "larger than the 4 GiB a newc cpio entry can hold".into(),
        })?;
        let mut writer = entry.write(out, size);
        let fail = || BuildError::io(format!("write {path} to the initramfs"));
        writer.write_all(&data).map_err(fail())?;
        out = writer.finish().map_err(fail())?;
    }
    newc::trailer(out).map_err(BuildError::io("finish the initramfs archive"))
}

/// The newc archive of `tree`, compressed as `kind` (one stream, so the bytes do not depend on
/// the machine).
pub fn compress_cpio(tree: &Tree, kind: CompressionKind, epoch: u32) -> Result<Vec<u8>> {
    let encoder = Encoder::new(kind, Vec::new()).map_err(BuildError::io("start compressor"))?;
    let NoFlush(encoder) = write_newc(tree, NoFlush(encoder), epoch)?;
    encoder
        .finish()
        .map_err(BuildError::io("compress the initramfs"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Source;
    use std::io::Read;

    #[test]
    fn writes_a_valid_newc_archive() {
        let mut tree = Tree::new();
        tree.add_file("/init", Source::Bytes(b"#!/bin/sh\n".to_vec()), 0o755)
            .unwrap();
        tree.add_char_device("/dev/console", 5, 1, 0o600).unwrap();
        tree.add_symlink("/bin/sh", "busybox").unwrap();
        let data = write_newc(&tree, Vec::new(), 42).unwrap();
        assert_eq!(data.len() % 4, 0, "newc pads to 4 bytes");
        let mut reader = &data[..];
        let mut seen = Vec::new();
        loop {
            let mut entry = newc::Reader::new(reader).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            let meta = entry.entry().clone();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            seen.push((
                meta.name().to_string(),
                meta.ino(),
                meta.mode(),
                meta.mtime(),
                meta.rdev_major(),
                meta.rdev_minor(),
                body,
            ));
            reader = entry.finish().unwrap();
        }
        let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/sh", "dev", "dev/console", "init"]);
        let inos: Vec<u32> = seen.iter().map(|s| s.1).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5]);
        assert_eq!(seen[1].2, 0o120777);
        assert_eq!(seen[1].6, b"busybox");
        assert_eq!((seen[3].2, seen[3].4, seen[3].5), (0o020600, 5, 1));
        assert_eq!((seen[4].2, seen[4].3), (0o100755, 42));
    }
}
