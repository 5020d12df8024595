//! Helpers for the tests of this module: real tar archives built in memory (including the
//! malicious ones tar's builder refuses to write) and tmpfs mounts that always go away.

use std::io::Write;
use std::path::{Path, PathBuf};

use bootkit_common::compress::Compression;
use tar::{EntryType, Header};

/// A tmpfs mounted for one test, unmounted when dropped (even when the test fails).
pub struct TmpfsMount(PathBuf);

impl TmpfsMount {
    pub fn new(path: &Path, options: &str) -> TmpfsMount {
        std::fs::create_dir_all(path).unwrap();
        let data = std::ffi::CString::new(options).unwrap();
        rustix::mount::mount(
            "tmpfs",
            path,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .unwrap();
        TmpfsMount(path.to_path_buf())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Builds a tar archive entry by entry.
pub struct ArchiveBuilder {
    builder: tar::Builder<Vec<u8>>,
}

pub const MTIME: u64 = 1_600_000_000;

impl ArchiveBuilder {
    pub fn new() -> ArchiveBuilder {
        ArchiveBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: EntryType, mode: u32) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        header
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut header = Self::header(EntryType::Directory, mode);
        self.builder
            .append_data(&mut header, path, &[][..])
            .unwrap();
        self
    }

    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.owned_file(path, data, mode, 0, 0)
    }

    pub fn owned_file(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut header = Self::header(EntryType::Regular, mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_size(data.len() as u64);
        self.builder.append_data(&mut header, path, data).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut header = Self::header(EntryType::Symlink, 0o777);
        header.set_link_name_literal(target).unwrap();
        self.builder
            .append_data(&mut header, path, &[][..])
            .unwrap();
        self
    }

    pub fn hard_link(mut self, path: &str, target: &str) -> Self {
        let mut header = Self::header(EntryType::Link, 0o644);
        header.set_link_name_literal(target).unwrap();
        self.builder
            .append_data(&mut header, path, &[][..])
            .unwrap();
        self
    }

    pub fn node(mut self, path: &str, kind: EntryType, major: u32, minor: u32, mode: u32) -> Self {
        let mut header = Self::header(kind, mode);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.builder
            .append_data(&mut header, path, &[][..])
            .unwrap();
        self
    }

    /// pax records for the next entry (xattrs, uid, a path...).
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// An entry with exactly these name and link-name bytes: tar's builder refuses `..` and
    /// absolute names, an attacker's tool does not.
    pub fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Self {
        let mut header = Self::header(kind, 0o644);
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_link_name_literal(link).unwrap();
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

pub fn compress(tar: &[u8], format: Compression) -> Vec<u8> {
    match format {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(tar).unwrap();
            encoder.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 1).unwrap(),
        Compression::Xz => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 0);
            encoder.write_all(tar).unwrap();
            encoder.finish().unwrap()
        }
    }
}

/// A scratch area: the archive file, the new root, and a directory outside the new root that
/// escapes would reach, all siblings.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub archive: PathBuf,
    pub target: PathBuf,
    pub outside: PathBuf,
}

impl Scratch {
    pub fn new(archive_bytes: &[u8]) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("rootfs.tar.gz");
        let target = dir.path().join("newroot");
        let outside = dir.path().join("outside");
        std::fs::write(&archive, archive_bytes).unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::create_dir(&outside).unwrap();
        Scratch {
            dir,
            archive,
            target,
            outside,
        }
    }

    /// What the scratch area holds besides the new root's contents.
    pub fn siblings(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn outside_is_empty(&self) -> bool {
        std::fs::read_dir(&self.outside).unwrap().next().is_none()
    }
}
