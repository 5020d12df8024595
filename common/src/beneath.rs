//! Opening a file confined to a directory: the one `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` rule of the provisioner's file servers (TFTP's root, the boot
//! service's artifact roots).
//!
//! The kernel resolves the name beneath the directory's descriptor, so a symlink that leads
//! out (absolute, or climbing with `..`) is refused at open time, on the file actually opened:
//! a check made on a path beforehand could be raced by swapping a link.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why [`open_beneath`] opened nothing.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// The name is empty (or only `/`).
    #[error("no file name")]
    Empty,
    /// The name has a `..` component: refused before the kernel sees it.
    #[error("`..` is not allowed in a file name: only files beneath the directory are served")]
    DotDot,
    /// The directory itself cannot be opened.
    #[error("the directory {dir} cannot be opened: {errno}")]
    Root {
        /// The directory.
        dir: String,
        /// Why.
        errno: Errno,
    },
    /// The name, or a symlink on its way, leads out of the directory (`EXDEV`).
    #[error("the file is a symlink leading out of the served directory")]
    LeadsOut,
    /// Any other failure of the open (`ENOENT`, `EACCES`, `ELOOP`, ...).
    #[error("cannot open the file: {0}")]
    Open(Errno),
}

/// Opens `name` under `dir` with `flags` (a leading `/` means `dir`), never leaving `dir`:
/// `..` components are refused and the kernel refuses links out and magic links.
pub fn open_beneath(dir: &Path, name: &str, flags: OFlags) -> Result<OwnedFd, BeneathError> {
    let relative = name.trim_start_matches('/');
    if relative.is_empty() {
        return Err(BeneathError::Empty);
    }
    if relative.split('/').any(|component| component == "..") {
        return Err(BeneathError::DotDot);
    }
    let root = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| BeneathError::Root {
        dir: dir.display().to_string(),
        errno,
    })?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&root, relative, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        // RESOLVE_BENEATH answers EXDEV for a path that would leave the directory.
        Err(Errno::XDEV) => Err(BeneathError::LeadsOut),
        Err(errno) => Err(BeneathError::Open(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_flags() -> OFlags {
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY
    }

    #[test]
    fn a_link_inside_opens_and_a_link_out_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"inside").unwrap();
        std::os::unix::fs::symlink("file", dir.path().join("in")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("../x", dir.path().join("up")).unwrap();
        let fd = open_beneath(dir.path(), "in", read_flags()).unwrap();
        assert_eq!(
            std::io::read_to_string(std::fs::File::from(fd)).unwrap(),
            "inside"
        );
        for name in ["out", "up"] {
            assert!(matches!(
                open_beneath(dir.path(), name, read_flags()),
                Err(BeneathError::LeadsOut)
            ));
        }
        assert!(matches!(
            open_beneath(dir.path(), "a/../file", read_flags()),
            Err(BeneathError::DotDot)
        ));
        assert!(matches!(
            open_beneath(dir.path(), "missing", read_flags()),
            Err(BeneathError::Open(Errno::NOENT))
        ));
    }
}
