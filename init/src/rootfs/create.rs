//! Creating one filesystem object by name in an already opened directory, replacing what is
//! there the way tar does (the archive's later entry wins). Never follows a symlink at the
//! final component: files are created O_EXCL|O_NOFOLLOW after removing the old name.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{
    AtFlags, Dev, FileType, Mode, OFlags, linkat, mkdirat, mknodat, openat, statat, symlinkat,
    unlinkat,
};
use rustix::io::Errno;

/// Mode of files while their data is written; the entry's mode is set once the owner is.
const CREATE_MODE: u32 = 0o600;

/// Directories get their real mode after their contents, so a read-only one can be filled.
const CREATE_DIR_MODE: u32 = 0o700;

/// A new, empty regular file open for writing: a new inode every time, so nothing already
/// there (a symlink, a hard link to something else) is ever written through.
pub fn file(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    replacing(parent, name, || {
        openat(parent, name, flags, Mode::from_raw_mode(CREATE_MODE))
    })
}

/// A directory; one already there is kept (listed twice, or implied by an earlier entry).
pub fn dir(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let mode = Mode::from_raw_mode(CREATE_DIR_MODE);
    match mkdirat(parent, name, mode) {
        Err(Errno::EXIST) if is_directory(parent, name) => Ok(()),
        Err(Errno::EXIST) => replacing(parent, name, || mkdirat(parent, name, mode)),
        other => Ok(other?),
    }
}

pub fn symlink(parent: BorrowedFd<'_>, name: &[u8], link: &[u8]) -> io::Result<()> {
    replacing(parent, name, || symlinkat(link, parent, name))
}

/// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, as tar does.
pub fn hard_link(
    parent: BorrowedFd<'_>,
    name: &[u8],
    target_parent: BorrowedFd<'_>,
    target_name: &[u8],
) -> io::Result<()> {
    replacing(parent, name, || {
        linkat(target_parent, target_name, parent, name, AtFlags::empty())
    })
}

/// A device node or FIFO.
pub fn node(
    parent: BorrowedFd<'_>,
    name: &[u8],
    kind: FileType,
    mode: u32,
    device: Dev,
) -> io::Result<()> {
    let mode = Mode::from_raw_mode(mode);
    replacing(parent, name, || mknodat(parent, name, kind, mode, device))
}

/// Run `create`; if the name is taken, remove what is there and run it again. A non-empty
/// directory is not removed.
fn replacing<T>(
    parent: BorrowedFd<'_>,
    name: &[u8],
    create: impl Fn() -> rustix::io::Result<T>,
) -> io::Result<T> {
    match create() {
        Err(Errno::EXIST) => {
            remove_existing(parent, name)?;
            Ok(create()?)
        }
        other => Ok(other?),
    }
}

fn remove_existing(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match unlinkat(parent, name, AtFlags::empty()) {
        Err(Errno::ISDIR) => {
            unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|errno| match errno {
                Errno::NOTEMPTY => {
                    io::Error::other("a non-empty directory of that name is already there")
                }
                errno => errno.into(),
            })
        }
        other => Ok(other?),
    }
}

fn is_directory(parent: BorrowedFd<'_>, name: &[u8]) -> bool {
    statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn existing_names_are_replaced_but_full_directories_are_not() {
        let dir_path = tempfile::tempdir().unwrap();
        let root: OwnedFd = File::open(dir_path.path()).unwrap().into();
        let root = root.as_fd();
        symlink(root, b"name", b"/etc/passwd").unwrap();
        drop(file(root, b"name").unwrap());
        assert!(
            std::fs::symlink_metadata(dir_path.path().join("name"))
                .unwrap()
                .is_file()
        );
        dir(root, b"name").unwrap();
        dir(root, b"name").unwrap();
        std::fs::write(dir_path.path().join("name/inside"), b"").unwrap();
        let err = file(root, b"name").unwrap_err().to_string();
        assert!(err.contains("non-empty directory"), "{err}");
    }
}
