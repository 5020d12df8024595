//! Streaming the rootfs archive into the new root: the tar crate parses the entries, every
//! filesystem write is ours and relative to a directory fd opened below the root, so that no
//! entry can write outside it (see `bootkit_common::archive_name` and `beneath` for the two checks).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bootkit_common::archive_name::{EntryName, display_name, join, through_symlink_reason};
use bootkit_common::compress::Compression;
use bootkit_common::size::human_size_exact;
use rustix::fs::{FileType, Mode, OFlags, makedev, openat};
use rustix::io::Errno;
use tar::EntryType;

use super::archive;
use super::beneath::{BeneathError, open_dir_beneath};
use super::create;
use super::metadata::{Metadata, XattrOutcome};
use super::{RootfsError, UnpackStats};

/// Large writes: fewer syscalls for the big files (firmware, libraries) of a rootfs.
const COPY_BUFFER: usize = 256 * 1024;

pub fn unpack(archive_path: &Path, target: &Path) -> Result<UnpackStats, RootfsError> {
    let opened = archive::open(archive_path)?;
    crate::info!(
        "rootfs",
        "unpacking {} ({}, {}) into {}",
        archive_path.display(),
        opened.format,
        human_size_exact(opened.size),
        target.display()
    );
    let root = open_target(target)?;
    let context = Context {
        target: target.to_path_buf(),
        archive: archive_path.to_path_buf(),
        format: opened.format,
        archive_size: opened.size,
    };
    let mut unpacker = Unpacker::new(root, context);
    unpacker.unpack_all(opened.tar)?;
    unpacker.finish_directories()?;
    unpacker.report_skipped_xattrs();
    let stats = unpacker.stats();
    crate::info!(
        "rootfs",
        "unpacked {} entries, {} of file data from {} of {} archive",
        stats.entries,
        human_size_exact(stats.bytes),
        human_size_exact(stats.archive_size),
        stats.format
    );
    Ok(stats)
}

fn open_target(target: &Path) -> Result<OwnedFd, RootfsError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    openat(rustix::fs::CWD, target, flags, Mode::empty()).map_err(|errno| RootfsError::OpenTarget {
        path: target.to_path_buf(),
        source: errno.into(),
    })
}

/// What every error message needs to say where it happened.
struct Context {
    target: PathBuf,
    archive: PathBuf,
    format: Compression,
    archive_size: u64,
}

impl Context {
    fn refuse(&self, entry: &str, reason: impl Into<String>) -> RootfsError {
        RootfsError::UnsafeEntry {
            entry: entry.to_string(),
            reason: reason.into(),
            target: self.target.clone(),
        }
    }

    /// A failed read. The tar reader's messages quote the archive's own bytes (a broken
    /// numeric field, a name): the whole chain is made printable here, so no control byte of
    /// the archive reaches the console.
    fn read_error(&self, position: String, source: io::Error) -> RootfsError {
        let text =
            bootkit_common::shown::shown(&bootkit_common::error_chain(&source), &[]).into_owned();
        RootfsError::ReadArchive {
            archive: self.archive.clone(),
            format: self.format,
            position,
            source: io::Error::new(source.kind(), text),
        }
    }

    /// A failed write; a full tmpfs gets the message that says how to make room.
    fn write_error(
        &self,
        entry: &str,
        action: &str,
        written: u64,
        source: io::Error,
    ) -> RootfsError {
        if is_no_space(&source) {
            return RootfsError::NoSpace {
                target: self.target.clone(),
                entry: entry.to_string(),
                tmpfs_size: self.tmpfs_size(),
                archive: self.archive.clone(),
                archive_size: self.archive_size,
                written,
            };
        }
        RootfsError::WriteEntry {
            entry: entry.to_string(),
            target: self.target.clone(),
            action: action.to_string(),
            source,
        }
    }

    fn tmpfs_size(&self) -> Option<u64> {
        let vfs = rustix::fs::statvfs(&self.target).ok()?;
        // size=0 means unlimited: then the machine's RAM ran out, not a set size.
        Some(vfs.f_blocks * vfs.f_frsize).filter(|&size| size > 0)
    }

    fn full_path(&self, name: &EntryName<'_>) -> PathBuf {
        self.target.join(OsStr::from_bytes(&join(&name.components)))
    }
}

fn is_no_space(error: &io::Error) -> bool {
    error.raw_os_error() == Some(Errno::NOSPC.raw_os_error())
        || error.kind() == io::ErrorKind::StorageFull
}

/// A directory whose mode, owner and times are applied once everything inside it exists.
struct DeferredDir {
    components: Vec<Vec<u8>>,
    entry: String,
    metadata: Metadata,
    /// The directory this entry made or kept, so that its metadata goes to it and not to
    /// whatever a later entry put at the same path (tar's "later entry wins"). `None` for
    /// the new root itself, which no entry can replace.
    made: Option<Inode>,
}

/// A filesystem object's identity.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Inode {
    device: u64,
    number: u64,
}

impl Inode {
    fn of(stat: &rustix::fs::Stat) -> Inode {
        Inode {
            device: stat.st_dev,
            number: stat.st_ino,
        }
    }
}

/// The directory fd of the previous entry's parent: archives list a directory's files
/// together, so most entries reuse it instead of resolving the path again.
struct CachedParent {
    path: Vec<u8>,
    fd: OwnedFd,
}

struct Unpacker {
    root: OwnedFd,
    context: Context,
    entries: u64,
    written: u64,
    deferred_dirs: Vec<DeferredDir>,
    cached_parent: Option<CachedParent>,
    xattrs: XattrOutcome,
    buffer: Vec<u8>,
}

impl Unpacker {
    fn new(root: OwnedFd, context: Context) -> Unpacker {
        Unpacker {
            root,
            context,
            entries: 0,
            written: 0,
            deferred_dirs: Vec::new(),
            cached_parent: None,
            xattrs: XattrOutcome::default(),
            buffer: vec![0; COPY_BUFFER],
        }
    }

    fn stats(&self) -> UnpackStats {
        UnpackStats {
            format: self.context.format,
            entries: self.entries,
            bytes: self.written,
            archive_size: self.context.archive_size,
        }
    }

    fn unpack_all(&mut self, tar: Box<dyn Read>) -> Result<(), RootfsError> {
        let mut archive = tar::Archive::new(tar);
        let entries = archive
            .entries()
            .map_err(|e| self.context.read_error("at its start".into(), e))?;
        let mut previous = String::new();
        for entry in entries {
            let position = || match previous.as_str() {
                "" => "at its first entry".to_string(),
                name => format!("after entry '{name}'"),
            };
            let mut entry = entry.map_err(|e| self.context.read_error(position(), e))?;
            previous = display_name(&entry.path_bytes());
            self.unpack_entry(&mut entry, &previous)?;
        }
        if self.entries == 0 {
            return Err(RootfsError::EmptyArchive {
                archive: self.context.archive.clone(),
                format: self.context.format,
            });
        }
        // tar stops at its end blocks; the compressed stream goes on to its checksum (gzip's
        // CRC32 and size, zstd's content checksum, xz's check) and maybe more. Reading it to
        // its end makes the decoder check all of it, so a corrupt or padded-with-garbage
        // archive fails the boot as `gzip -t` / `zstd -t` / `xz -t` would refuse it.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| {
            self.context.read_error(
                format!(
                    "after its last entry '{previous}', checking the {} stream to its end",
                    self.context.format
                ),
                e,
            )
        })?;
        Ok(())
    }

    fn unpack_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<(), RootfsError> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let raw_name = entry.path_bytes().into_owned();
        let name =
            EntryName::parse(&raw_name).map_err(|reason| self.context.refuse(shown, reason))?;
        let metadata = Metadata::from_entry(entry).map_err(|e| {
            self.context
                .read_error(format!("in the header of entry '{shown}'"), e)
        })?;
        self.entries += 1;
        // Pre-POSIX archives mark directories by a trailing slash on a regular entry.
        let is_dir = kind == EntryType::Directory || (kind.is_file() && raw_name.ends_with(b"/"));
        let Some(file_name) = name.file_name() else {
            return self.unpack_root_entry(is_dir, shown, metadata);
        };
        let parent = self.parent_dir(&name, shown)?;
        let result = match kind {
            _ if is_dir => self.make_dir(parent.as_fd(), &name, file_name, shown, metadata),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.write_file(entry, parent.as_fd(), file_name, shown, &metadata)
            }
            EntryType::Symlink => {
                self.make_symlink(entry, parent.as_fd(), &name, file_name, shown, &metadata)
            }
            EntryType::Link => self.make_hard_link(entry, parent.as_fd(), &name, file_name, shown),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.make_node(entry, parent.as_fd(), &name, file_name, shown, &metadata)
            }
            other => Err(RootfsError::UnsupportedEntry {
                entry: shown.to_string(),
                kind: format!("tar type '{}'", char::from(other.as_byte())),
            }),
        };
        self.cache_parent(&name, parent);
        result
    }

    /// `./`: its mode, owner and times are the new root's own.
    fn unpack_root_entry(
        &mut self,
        is_dir: bool,
        shown: &str,
        metadata: Metadata,
    ) -> Result<(), RootfsError> {
        if !is_dir {
            return Err(self
                .context
                .refuse(shown, "the archive's root must be a directory"));
        }
        self.deferred_dirs.push(DeferredDir {
            components: Vec::new(),
            entry: shown.to_string(),
            metadata,
            made: None,
        });
        Ok(())
    }

    /// The entry's parent directory, created if the archive did not list it before.
    fn parent_dir(&mut self, name: &EntryName<'_>, shown: &str) -> Result<OwnedFd, RootfsError> {
        let path = join(name.parent());
        if let Some(cached) = self.cached_parent.take()
            && cached.path == path
        {
            return Ok(cached.fd);
        }
        open_dir_beneath(self.root.as_fd(), name.parent(), true)
            .map_err(|e| self.beneath_error(e, shown, "create its parent directories"))
    }

    fn cache_parent(&mut self, name: &EntryName<'_>, fd: OwnedFd) {
        self.cached_parent = Some(CachedParent {
            path: join(name.parent()),
            fd,
        });
    }

    fn beneath_error(&self, error: BeneathError, shown: &str, action: &str) -> RootfsError {
        match error {
            BeneathError::ThroughSymlink(link) => self
                .context
                .refuse(shown, through_symlink_reason("its path", &link)),
            BeneathError::NotADirectory(path) => self.write_error(
                shown,
                action,
                io::Error::other(format!("'{path}' is not a directory")),
            ),
            BeneathError::Io(source) => self.write_error(shown, action, source),
        }
    }

    fn write_error(&self, shown: &str, action: &str, source: io::Error) -> RootfsError {
        self.context
            .write_error(shown, action, self.written, source)
    }

    fn make_dir(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &EntryName<'_>,
        file_name: &[u8],
        shown: &str,
        metadata: Metadata,
    ) -> Result<(), RootfsError> {
        create::dir(parent, file_name)
            .map_err(|e| self.write_error(shown, "create the directory", e))?;
        let made = rustix::fs::statat(parent, file_name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.write_error(shown, "look at the directory it created", e.into()))?;
        self.deferred_dirs.push(DeferredDir {
            components: name.components.iter().map(|c| c.to_vec()).collect(),
            entry: shown.to_string(),
            metadata,
            made: Some(Inode::of(&made)),
        });
        Ok(())
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        file_name: &[u8],
        shown: &str,
        metadata: &Metadata,
    ) -> Result<(), RootfsError> {
        let fd = create::file(parent, file_name)
            .map_err(|e| self.write_error(shown, "create the file", e))?;
        let mut file = File::from(fd);
        self.copy_data(entry, &mut file, shown)?;
        metadata
            .apply_to_fd(file.as_fd(), &mut self.xattrs)
            .map_err(|e| self.write_error(shown, "set its owner, mode, xattrs and times", e))
    }

    fn copy_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        shown: &str,
    ) -> Result<(), RootfsError> {
        loop {
            let read = entry
                .read(&mut self.buffer)
                .map_err(|e| self.context.read_error(format!("in entry '{shown}'"), e))?;
            if read == 0 {
                return Ok(());
            }
            self.write_counted(file, read)
                .map_err(|e| self.write_error(shown, "write the file", e))?;
        }
    }

    /// Like write_all, but every byte that reached the file is counted, so that a full tmpfs
    /// reports how much really fit.
    fn write_counted(&mut self, file: &mut File, len: usize) -> io::Result<()> {
        let mut done = 0;
        while done < len {
            match file.write(&self.buffer[done..len]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    self.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn make_symlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        name: &EntryName<'_>,
        file_name: &[u8],
        shown: &str,
        metadata: &Metadata,
    ) -> Result<(), RootfsError> {
        // The link's text is stored as is: absolute targets are normal in a rootfs, and a
        // symlink is never followed while unpacking, so it cannot redirect a write.
        let link =
            link_name(entry).map_err(|e| self.write_error(shown, "read its link target", e))?;
        create::symlink(parent, file_name, &link)
            .map_err(|e| self.write_error(shown, "create the symbolic link", e))?;
        metadata
            .apply_by_name(
                parent,
                file_name,
                &self.context.full_path(name),
                true,
                &mut self.xattrs,
            )
            .map_err(|e| self.write_error(shown, "set its owner and times", e))
    }

    fn make_hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        name: &EntryName<'_>,
        file_name: &[u8],
        shown: &str,
    ) -> Result<(), RootfsError> {
        let raw_link =
            link_name(entry).map_err(|e| self.write_error(shown, "read its link target", e))?;
        let shown_link = display_name(&raw_link);
        let link = EntryName::parse(&raw_link).map_err(|reason| {
            self.context.refuse(
                shown,
                format!("its hard link target '{shown_link}' is refused: {reason}"),
            )
        })?;
        let Some(link_file_name) = link.file_name() else {
            return Err(self
                .context
                .refuse(shown, "its hard link target is the archive's root"));
        };
        if link.components == name.components {
            return Ok(()); // A link to itself: already there.
        }
        let link_parent =
            open_dir_beneath(self.root.as_fd(), link.parent(), false).map_err(|e| match e {
                BeneathError::ThroughSymlink(through) => self.context.refuse(
                    shown,
                    through_symlink_reason(
                        &format!("its hard link target '{shown_link}'"),
                        &through,
                    ),
                ),
                other => self.beneath_error(
                    other,
                    shown,
                    &format!("find its hard link target '{shown_link}'"),
                ),
            })?;
        create::hard_link(parent, file_name, link_parent.as_fd(), link_file_name).map_err(|e| {
            let action =
                format!("link it to '{shown_link}' (the target must come earlier in the archive)");
            self.write_error(shown, &action, e)
        })
    }

    fn make_node<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        name: &EntryName<'_>,
        file_name: &[u8],
        shown: &str,
        metadata: &Metadata,
    ) -> Result<(), RootfsError> {
        let header = entry.header();
        let (file_type, device) = match header.entry_type() {
            EntryType::Fifo => (FileType::Fifo, 0),
            kind => {
                let numbers = header
                    .device_major()
                    .and_then(|major| Ok((major, header.device_minor()?)));
                let (Some(major), Some(minor)) = numbers.map_err(|e| {
                    self.context
                        .read_error(format!("in the device numbers of entry '{shown}'"), e)
                })?
                else {
                    let missing = io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the header has no device numbers",
                    );
                    return Err(self
                        .context
                        .read_error(format!("in entry '{shown}'"), missing));
                };
                let file_type = if kind == EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                (file_type, makedev(major, minor))
            }
        };
        create::node(parent, file_name, file_type, metadata.mode, device)
            .map_err(|e| self.write_error(shown, "create the device node or FIFO", e))?;
        metadata
            .apply_by_name(
                parent,
                file_name,
                &self.context.full_path(name),
                false,
                &mut self.xattrs,
            )
            .map_err(|e| self.write_error(shown, "set its owner, mode and times", e))
    }

    /// Modes, owners and times of directories, deepest first, once nothing more is created
    /// inside them; later entries for the same directory win. A directory a later entry
    /// replaced (a file, a symlink, or a new directory after one of those) is no longer at
    /// its path: its entry's metadata has nothing left to apply to, as with GNU tar.
    fn finish_directories(&mut self) -> Result<(), RootfsError> {
        self.cached_parent = None;
        let mut deferred = std::mem::take(&mut self.deferred_dirs);
        deferred.sort_by_key(|dir| std::cmp::Reverse(dir.components.len()));
        for dir in &deferred {
            let Some(fd) = self.still_there(dir)? else {
                continue;
            };
            dir.metadata
                .apply_to_fd(fd.as_fd(), &mut self.xattrs)
                .map_err(|e| {
                    self.write_error(&dir.entry, "set its owner, mode, xattrs and times", e)
                })?;
        }
        Ok(())
    }

    /// The directory `dir`'s entry made, opened, if it is still at its path.
    fn still_there(&self, dir: &DeferredDir) -> Result<Option<OwnedFd>, RootfsError> {
        let components: Vec<&[u8]> = dir.components.iter().map(Vec::as_slice).collect();
        let opened = open_dir_beneath(self.root.as_fd(), &components, false);
        let fd = match (opened, dir.made) {
            (Ok(fd), _) => fd,
            // A symlink, a non-directory or nothing at the path (or above it) now: a later
            // entry replaced the directory. (The new root itself cannot be replaced.)
            (Err(BeneathError::ThroughSymlink(_) | BeneathError::NotADirectory(_)), Some(_)) => {
                return Ok(None);
            }
            (Err(BeneathError::Io(error)), Some(_))
                if error.raw_os_error() == Some(Errno::NOENT.raw_os_error()) =>
            {
                return Ok(None);
            }
            (Err(error), _) => {
                return Err(self.beneath_error(
                    error,
                    &dir.entry,
                    "open the directory to set its mode",
                ));
            }
        };
        let Some(made) = dir.made else {
            return Ok(Some(fd));
        };
        let now = rustix::fs::fstat(&fd)
            .map_err(|e| self.write_error(&dir.entry, "look at the directory", e.into()))?;
        Ok((Inode::of(&now) == made).then_some(fd))
    }

    fn report_skipped_xattrs(&self) {
        if let Some(first) = &self.xattrs.first_skipped {
            crate::warn!(
                "rootfs",
                "{} extended attributes (first: {first}) were skipped: {} does not support them",
                self.xattrs.skipped,
                self.context.target.display()
            );
        }
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> io::Result<Vec<u8>> {
    match entry.link_name_bytes() {
        Some(link) if !link.is_empty() && !link.contains(&0) => Ok(link.into_owned()),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the link target is empty or has a NUL byte",
        )),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the entry has no link target",
        )),
    }
}
