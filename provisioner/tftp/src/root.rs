//! Opening a requested file confined to the served root.
//!
//! What a client asks for cannot climb out: a request with a `..` component is refused, and
//! the rest is resolved by the kernel beneath the root's directory descriptor (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`; a leading `/` means the root). Symlinks are
//! followed while they stay inside the root; one that leads out (relative with `..`, or
//! absolute) is refused with an access violation, unless its target is one the operator named
//! as served from outside ([`Served::outside`]): Debian's own ipxe package links
//! /usr/lib/ipxe/ipxe.efi to /boot/ipxe.efi, and `provisioner serve` names the iPXE binaries
//! it requires that way, those files and nothing else around them.
//!
//! The check of a link that leads out is made on the file that was opened, not on a path
//! looked at before: the target is opened with `O_PATH` (no read, no side effect of opening a
//! device), its real path read back from `/proc/self/fd`, and only a regular file under a
//! named target is reopened for reading. A link swapped between the two steps cannot make the
//! server read something else than what was checked.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use bootkit_common::beneath::BeneathError;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::packet::ErrorCode;

/// Why a request is refused: the TFTP error code sent back and a reason for the client/log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// What a server serves: its root, and the files or directories outside it that symlinks in
/// the root may lead to.
#[derive(Debug)]
pub struct Served {
    /// The root as configured.
    pub root: PathBuf,
    /// The root's real path (symlinks resolved), to recognise links that lead back inside.
    pub real_root: PathBuf,
    /// Real paths outside the root: a file is served through a link to it, a directory
    /// through a link to anything beneath it.
    pub outside: Vec<PathBuf>,
}

impl Served {
    /// Resolves `root` and `outside` to their real paths; an `outside` entry that does not
    /// exist is left out (it cannot be a link's target).
    pub fn new(root: PathBuf, outside: &[PathBuf]) -> std::io::Result<Self> {
        let real_root = std::fs::canonicalize(&root)?;
        let outside = outside
            .iter()
            .filter_map(|path| std::fs::canonicalize(path).ok())
            .collect();
        Ok(Self {
            root,
            real_root,
            outside,
        })
    }

    /// Opens `name` as [`open_beneath`] does; a symlink that leads out of the root is
    /// followed only to a target in [`Served::outside`] (or back into the root).
    pub fn open(&self, name: &str) -> Result<(File, u64), Refusal> {
        match open_fd_beneath(&self.root, name) {
            Err(Confined::LeadsOut) => self.open_through_a_link_out(name),
            Err(Confined::Other(refusal)) => Err(refusal),
            Ok(fd) => regular_file_size(fd),
        }
    }

    fn open_through_a_link_out(&self, name: &str) -> Result<(File, u64), Refusal> {
        let relative = name.trim_start_matches('/');
        let root_dir = open_root(&self.root)?;
        let found = rustix::fs::openat2(
            &root_dir,
            relative,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_MAGICLINKS,
        )
        // Whatever went wrong out there, the answer is the same as for an existing file, so
        // that the answers tell nothing about the files outside the root.
        .map_err(|_| leads_out())?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", found.as_raw_fd())).map_err(
            |error| {
                Refusal::new(
                    ErrorCode::NotDefined,
                    format!("cannot check where the link {name} leads (/proc/self/fd): {error}"),
                )
            },
        )?;
        let allowed = real.starts_with(&self.real_root)
            || self.outside.iter().any(|target| real.starts_with(target));
        if !allowed {
            return Err(leads_out());
        }
        // Reopened for reading only now: the O_PATH descriptor read nothing, and the checked
        // file is the one reopened (through its own descriptor, not its path).
        let stat = rustix::fs::fstat(&found).map_err(|errno| {
            Refusal::new(ErrorCode::NotDefined, format!("cannot stat file: {errno}"))
        })?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Refusal::new(
                ErrorCode::AccessViolation,
                "not a regular file",
            ));
        }
        let file = rustix::fs::open(
            format!("/proc/self/fd/{}", found.as_raw_fd()),
            READ_FLAGS,
            Mode::empty(),
        )
        .map_err(refusal_for)?;
        regular_file_size(file)
    }
}

/// The real paths, outside `root`, of the files `names` in it lead to through symlinks: what
/// [`crate::Config::outside`] needs so that those files, and only they, are served through
/// their links (Debian's /usr/lib/ipxe/ipxe.efi is a link to /boot/ipxe.efi).
pub fn link_targets_outside(root: &Path, names: &[&str]) -> Vec<PathBuf> {
    let Ok(real_root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|name| std::fs::canonicalize(root.join(name)).ok())
        .filter(|real| !real.starts_with(&real_root))
        .collect()
}

/// NONBLOCK: opening a FIFO planted in the root must not hang the transfer; the file type is
/// checked right after.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

fn leads_out() -> Refusal {
    Refusal::new(
        ErrorCode::AccessViolation,
        "the file is a symlink leading out of the server's root",
    )
}

/// Why the confined open failed: a link out of the root (which [`Served`] may follow to a
/// named target), or anything else.
enum Confined {
    LeadsOut,
    Other(Refusal),
}

/// Opens `name` (a leading `/` means the root) under `root`, read-only, regular files only,
/// never leaving the root; returns the file and its size.
#[cfg(any(test, feature = "fuzzing"))]
pub fn open_beneath(root: &Path, name: &str) -> Result<(File, u64), Refusal> {
    match open_fd_beneath(root, name) {
        Ok(fd) => regular_file_size(fd),
        Err(Confined::LeadsOut) => Err(leads_out()),
        Err(Confined::Other(refusal)) => Err(refusal),
    }
}

fn open_root(root: &Path) -> Result<OwnedFd, Refusal> {
    rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| {
        Refusal::new(
            ErrorCode::NotDefined,
            format!("server root {} cannot be opened: {errno}", root.display()),
        )
    })
}

fn open_fd_beneath(root: &Path, name: &str) -> Result<OwnedFd, Confined> {
    match bootkit_common::beneath::open_beneath(root, name, READ_FLAGS) {
        Ok(fd) => Ok(fd),
        Err(BeneathError::LeadsOut) => Err(Confined::LeadsOut),
        Err(BeneathError::Empty) => Err(Confined::Other(Refusal::new(
            ErrorCode::FileNotFound,
            "no file name",
        ))),
        Err(BeneathError::DotDot) => Err(Confined::Other(Refusal::new(
            ErrorCode::AccessViolation,
            "`..` is not allowed in a file name: the server serves its root only",
        ))),
        Err(BeneathError::Root { dir, errno }) => Err(Confined::Other(Refusal::new(
            ErrorCode::NotDefined,
            format!("server root {dir} cannot be opened: {errno}"),
        ))),
        Err(BeneathError::Open(errno)) => Err(Confined::Other(refusal_for(errno))),
    }
}

fn refusal_for(errno: Errno) -> Refusal {
    match errno {
        Errno::NOENT | Errno::NOTDIR => Refusal::new(ErrorCode::FileNotFound, "file not found"),
        Errno::ACCESS | Errno::PERM => {
            Refusal::new(ErrorCode::AccessViolation, "permission denied")
        }
        Errno::LOOP => Refusal::new(ErrorCode::AccessViolation, "too many symlinks"),
        other => Refusal::new(ErrorCode::NotDefined, format!("cannot open file: {other}")),
    }
}

fn regular_file_size(fd: OwnedFd) -> Result<(File, u64), Refusal> {
    let stat = rustix::fs::fstat(&fd).map_err(|errno| {
        Refusal::new(ErrorCode::NotDefined, format!("cannot stat file: {errno}"))
    })?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Refusal::new(
            ErrorCode::AccessViolation,
            "not a regular file",
        ));
    }
    // st_size of a regular file is never negative.
    let size = u64::try_from(stat.st_size).unwrap_or_default();
    Ok((File::from(fd), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), b"hello").unwrap();
        std::os::unix::fs::symlink("sub/file", dir.path().join("inside")).unwrap();
        std::os::unix::fs::symlink("../..", dir.path().join("sub/up")).unwrap();
        dir
    }

    #[test]
    fn files_and_links_inside_the_root_open_with_a_leading_slash_or_not() {
        let root = root_with_files();
        for name in ["sub/file", "/sub/file", "//inside"] {
            let (_, size) = open_beneath(root.path(), name).unwrap();
            assert_eq!(size, 5, "{name}");
        }
    }

    #[test]
    fn links_out_of_the_root_are_refused_unless_their_target_is_named() {
        let root = root_with_files();
        // Like Debian's /usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi.
        let boot = tempfile::tempdir().unwrap();
        std::fs::write(boot.path().join("ipxe.efi"), b"hello").unwrap();
        std::fs::write(boot.path().join("secret"), b"shadow").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.path().join(name)).unwrap();
        };
        link(&boot.path().join("ipxe.efi"), "ipxe.efi");
        link(&boot.path().join("secret"), "secret");
        link(Path::new("/etc/passwd"), "passwd");
        // An absolute link back into the root is a link out and in again.
        link(&root.path().join("sub/file"), "absolute-inside");

        for name in ["ipxe.efi", "secret", "passwd", "sub/up/etc/passwd"] {
            let refusal = open_beneath(root.path(), name).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::AccessViolation, "{name}");
            assert!(
                refusal.reason.contains("leading out"),
                "{name}: {refusal:?}"
            );
        }

        let served = Served::new(
            root.path().to_path_buf(),
            &link_targets_outside(root.path(), &["ipxe.efi", "missing.efi"]),
        )
        .unwrap();
        assert_eq!(
            served.outside,
            [std::fs::canonicalize(boot.path().join("ipxe.efi")).unwrap()]
        );
        for name in ["ipxe.efi", "/ipxe.efi", "absolute-inside", "sub/file"] {
            let (_, size) = served.open(name).unwrap();
            assert_eq!(size, 5, "{name}");
        }
        for name in ["secret", "passwd", "sub/up/etc/passwd"] {
            let refusal = served.open(name).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::AccessViolation, "{name}");
        }
    }

    #[test]
    fn climbing_requests_are_access_violations() {
        let root = root_with_files();
        for name in [
            "../etc/passwd",
            "sub/../sub/file",
            "sub/up/../etc/passwd",
            "/../../etc/passwd",
        ] {
            let refusal = open_beneath(root.path(), name).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::AccessViolation, "{name}");
        }
    }

    #[test]
    fn directories_are_refused_and_missing_files_not_found() {
        let root = root_with_files();
        assert_eq!(
            open_beneath(root.path(), "sub").unwrap_err().code,
            ErrorCode::AccessViolation
        );
        assert_eq!(
            open_beneath(root.path(), "missing").unwrap_err().code,
            ErrorCode::FileNotFound
        );
        assert_eq!(
            open_beneath(root.path(), "/").unwrap_err().code,
            ErrorCode::FileNotFound
        );
    }
}
