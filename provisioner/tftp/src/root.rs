//! Opening a requested file confined to the served root.
//!
//! What a client asks for cannot climb out: a request with a `..` component is refused, and
//! the rest is resolved relative to the root's directory descriptor (a leading `/` means the
//! root). Symlinks inside the root are followed wherever they point, as dnsmasq and tftp-hpa
//! do: the root is the administrator's, and Debian's own ipxe package links
//! /usr/lib/ipxe/ipxe.efi to /boot/ipxe.efi. Only /proc-style magic links are refused
//! (`openat2` with `RESOLVE_NO_MAGICLINKS`).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

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

/// Opens `name` (a leading `/` means the root) under `root`, read-only, regular files only;
/// returns the file and its size.
pub fn open_beneath(root: &Path, name: &str) -> Result<(File, u64), Refusal> {
    let relative = name.trim_start_matches('/');
    if relative.is_empty() {
        return Err(Refusal::new(ErrorCode::FileNotFound, "no file name"));
    }
    if relative.split('/').any(|component| component == "..") {
        return Err(Refusal::new(
            ErrorCode::AccessViolation,
            "`..` is not allowed in a file name: the server serves its root only",
        ));
    }
    let root_dir = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| {
        Refusal::new(
            ErrorCode::NotDefined,
            format!("server root {} cannot be opened: {errno}", root.display()),
        )
    })?;
    // NONBLOCK: opening a FIFO planted in the root must not hang the transfer; the file type
    // is checked right after.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let resolve = ResolveFlags::NO_MAGICLINKS;
    let file = rustix::fs::openat2(&root_dir, relative, flags, Mode::empty(), resolve)
        .map_err(refusal_for)?;
    regular_file_size(file)
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
    fn files_and_the_administrators_symlinks_open_with_a_leading_slash_or_not() {
        let root = root_with_files();
        // Like Debian's /usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi.
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("ipxe.efi"), b"hello").unwrap();
        std::os::unix::fs::symlink(target.path().join("ipxe.efi"), root.path().join("linked"))
            .unwrap();
        for name in ["sub/file", "/sub/file", "//inside", "linked", "/linked"] {
            let (_, size) = open_beneath(root.path(), name).unwrap();
            assert_eq!(size, 5, "{name}");
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
