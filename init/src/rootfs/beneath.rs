//! Opening (and creating) directories below a root directory fd so that no lookup can leave
//! it: every later write is relative to a directory fd obtained here.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, mkdirat, openat, openat2, statat};
use rustix::io::Errno;

use bootkit_common::archive_name::{display_name, join};

/// Why a directory below the root could not be opened.
#[derive(Debug)]
pub enum BeneathError {
    /// A component is a symbolic link: following it could lead outside the root, and a tar
    /// archive never stores entries below a symlink, so it is refused rather than followed.
    ThroughSymlink(String),
    /// A component exists but is not a directory.
    NotADirectory(String),
    /// Anything else (ENOENT when not creating, ENOSPC, EIO, ...).
    Io(io::Error),
}

impl From<Errno> for BeneathError {
    fn from(errno: Errno) -> Self {
        BeneathError::Io(errno.into())
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// Permissions of directories created only because an entry needs them; tar gives implied
/// parents the same.
const IMPLIED_DIR_MODE: u32 = 0o755;

/// Open `root/components...` as a directory, refusing symlinks anywhere on the way; with
/// `create`, missing directories are made. `components` must come from `EntryName` (no `..`).
pub fn open_dir_beneath(
    root: BorrowedFd<'_>,
    components: &[&[u8]],
    create: bool,
) -> Result<OwnedFd, BeneathError> {
    if components.is_empty() {
        return Ok(openat(root, c".", DIR_FLAGS, Mode::empty())?);
    }
    // Fast path, one syscall: the kernel refuses symlinks and anything resolving outside.
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match openat2(root, join(components), DIR_FLAGS, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        // Slow path: walk component by component to create what is missing and to say which
        // component is the problem. Also the path for kernels without openat2 (before 5.6).
        Err(_) => walk(root, components, create),
    }
}

/// One component at a time with O_NOFOLLOW: as safe as openat2 since no component is `..`.
fn walk(root: BorrowedFd<'_>, components: &[&[u8]], create: bool) -> Result<OwnedFd, BeneathError> {
    let mut current = openat(root, c".", DIR_FLAGS, Mode::empty())?;
    for (depth, component) in components.iter().enumerate() {
        let shown = || display_name(&join(&components[..=depth]));
        current = match openat(&current, *component, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => create_dir(current.as_fd(), component)?,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(classify_non_dir(current.as_fd(), component, shown()));
            }
            Err(errno) => return Err(errno.into()),
        };
    }
    Ok(current)
}

fn create_dir(parent: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, BeneathError> {
    match mkdirat(parent, name, Mode::from_raw_mode(IMPLIED_DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(errno) => return Err(errno.into()),
    }
    Ok(openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

fn classify_non_dir(parent: BorrowedFd<'_>, name: &[u8], shown: String) -> BeneathError {
    match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
            BeneathError::ThroughSymlink(shown)
        }
        Ok(_) => BeneathError::NotADirectory(shown),
        Err(errno) => errno.into(),
    }
}

/// Open `root/components...` the way a process chrooted into `root` would see it: symlinks
/// are followed but absolute ones and `..` stay inside `root` (RESOLVE_IN_ROOT). For paths we
/// choose ourselves (such as `lib/modules` in a usr-merged rootfs), not for archive names.
pub fn open_dir_in_root(
    root: BorrowedFd<'_>,
    components: &[&[u8]],
    create: bool,
) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut current = openat(root, c".", flags, Mode::empty())?;
    for depth in 1..=components.len() {
        let prefix = join(&components[..depth]);
        current = match openat2(root, &prefix, flags, Mode::empty(), resolve) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                mkdirat(
                    &current,
                    components[depth - 1],
                    Mode::from_raw_mode(IMPLIED_DIR_MODE),
                )?;
                openat2(root, &prefix, flags, Mode::empty(), resolve)?
            }
            Err(errno) => return Err(errno.into()),
        };
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &std::path::Path) -> OwnedFd {
        File::open(dir).unwrap().into()
    }

    #[test]
    fn missing_directories_are_created_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_fd(dir.path());
        open_dir_beneath(root.as_fd(), &[b"a", b"b", b"c"], true).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        let err = open_dir_beneath(root.as_fd(), &[b"x"], false).unwrap_err();
        assert!(matches!(err, BeneathError::Io(e) if e.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn symlinks_on_the_way_are_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        symlink(outside.path(), dir.path().join("a/evil")).unwrap();
        let root = root_fd(dir.path());
        for create in [false, true] {
            match open_dir_beneath(root.as_fd(), &[b"a", b"evil", b"sub"], create) {
                Err(BeneathError::ThroughSymlink(name)) => assert_eq!(name, "a/evil"),
                other => panic!("expected a symlink refusal, got {other:?}"),
            }
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_on_the_way_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let root = root_fd(dir.path());
        match open_dir_beneath(root.as_fd(), &[b"f", b"g"], true) {
            Err(BeneathError::NotADirectory(name)) => assert_eq!(name, "f"),
            other => panic!("expected not-a-directory, got {other:?}"),
        }
    }

    #[test]
    fn in_root_resolution_keeps_absolute_symlinks_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        // An absolute usr-merge link: outside the chroot it would point at the host's /usr/lib.
        symlink("/usr/lib", dir.path().join("lib")).unwrap();
        let root = root_fd(dir.path());
        open_dir_in_root(root.as_fd(), &[b"lib", b"modules", b"6.1.0"], true).unwrap();
        assert!(dir.path().join("usr/lib/modules/6.1.0").is_dir());
    }
}
