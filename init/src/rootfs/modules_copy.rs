//! Kernel modules for the new root: the builder puts them in the initramfs at
//! `/lib/modules/<version>/`, which is about to be deleted; a rootfs without modules for the
//! running kernel gets a copy so that later services can still modprobe.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, mkdirat, openat, statat, symlinkat};
use rustix::io::Errno;

use super::RootfsError;
use super::beneath::open_dir_in_root;

/// Copy `source` (the initramfs's /lib/modules) into `newroot`/lib/modules unless the new
/// root already has modules for `release`. Returns whether anything was copied. Files the
/// rootfs already has are kept: the rootfs wins.
pub fn copy_modules_if_missing(
    source: &Path,
    newroot: &Path,
    release: &str,
) -> Result<bool, RootfsError> {
    if !source.is_dir() {
        return Ok(false);
    }
    let fail = |source_error: io::Error| RootfsError::CopyModules {
        from: source.to_path_buf(),
        to: newroot.join("lib/modules"),
        source: source_error,
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let newroot_fd =
        openat(rustix::fs::CWD, newroot, flags, Mode::empty()).map_err(|e| fail(e.into()))?;
    // Resolved as inside the new root: /lib is often a symlink to usr/lib (or /usr/lib).
    let release_dir: [&[u8]; 3] = [b"lib", b"modules", release.as_bytes()];
    if open_dir_in_root(newroot_fd.as_fd(), &release_dir, false).is_ok() {
        return Ok(false);
    }
    let destination =
        open_dir_in_root(newroot_fd.as_fd(), &release_dir[..2], true).map_err(fail)?;
    copy_tree(source, destination.as_fd()).map_err(fail)?;
    Ok(true)
}

/// Copy the contents of `source` into the directory `destination`, recreating directories,
/// files (with their modes) and symlinks; existing names are left alone.
fn copy_tree(source: &Path, destination: BorrowedFd<'_>) -> io::Result<()> {
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let name = entry.file_name();
        let result = if kind.is_dir() {
            copy_dir(&path, destination, &name)
        } else if kind.is_symlink() {
            copy_symlink(&path, destination, &name)
        } else if kind.is_file() {
            copy_file(&path, destination, &name)
        } else {
            Ok(()) // Nothing else belongs in a modules tree.
        };
        result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

fn copy_dir(path: &Path, destination: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match mkdirat(destination, name.as_bytes(), Mode::from_raw_mode(0o755)) {
        Ok(()) => {}
        Err(Errno::EXIST) if is_directory(destination, name) => {}
        Err(errno) => return Err(errno.into()),
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let child = openat(destination, name.as_bytes(), flags, Mode::empty())?;
    copy_tree(path, child.as_fd())
}

fn copy_symlink(path: &Path, destination: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let target = std::fs::read_link(path)?;
    match symlinkat(target.as_os_str().as_bytes(), destination, name.as_bytes()) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

fn copy_file(path: &Path, destination: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut source = File::open(path)?;
    let mode = source.metadata()?.permissions().mode() & 0o7777;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let created = match openat(
        destination,
        name.as_bytes(),
        flags,
        Mode::from_raw_mode(mode),
    ) {
        Ok(fd) => fd,
        Err(Errno::EXIST) => return Ok(()),
        Err(errno) => return Err(errno.into()),
    };
    // File to file: std uses copy_file_range/sendfile, no copy through userspace.
    io::copy(&mut source, &mut File::from(created))?;
    Ok(())
}

fn is_directory(parent: BorrowedFd<'_>, name: &OsStr) -> bool {
    statat(parent, name.as_bytes(), AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn initramfs_modules(base: &Path) -> std::path::PathBuf {
        let modules = base.join("lib/modules");
        let kernel = modules.join("6.12.0-test/kernel/drivers/net");
        std::fs::create_dir_all(&kernel).unwrap();
        std::fs::write(kernel.join("virtio_net.ko"), b"module").unwrap();
        std::fs::write(modules.join("6.12.0-test/modules.dep"), b"deps").unwrap();
        symlink("/usr/src/linux", modules.join("6.12.0-test/build")).unwrap();
        modules
    }

    #[test]
    fn modules_are_copied_into_a_rootfs_without_them() {
        let initramfs = tempfile::tempdir().unwrap();
        let newroot = tempfile::tempdir().unwrap();
        let source = initramfs_modules(initramfs.path());
        // A usr-merged rootfs whose /lib is an absolute symlink.
        std::fs::create_dir_all(newroot.path().join("usr/lib")).unwrap();
        symlink("/usr/lib", newroot.path().join("lib")).unwrap();

        assert!(copy_modules_if_missing(&source, newroot.path(), "6.12.0-test").unwrap());
        let copied = newroot.path().join("usr/lib/modules/6.12.0-test");
        assert_eq!(
            std::fs::read(copied.join("kernel/drivers/net/virtio_net.ko")).unwrap(),
            b"module"
        );
        assert_eq!(std::fs::read(copied.join("modules.dep")).unwrap(), b"deps");
        assert_eq!(
            std::fs::read_link(copied.join("build")).unwrap(),
            Path::new("/usr/src/linux")
        );
    }

    #[test]
    fn a_rootfs_with_modules_for_the_kernel_keeps_its_own() {
        let initramfs = tempfile::tempdir().unwrap();
        let newroot = tempfile::tempdir().unwrap();
        let source = initramfs_modules(initramfs.path());
        std::fs::create_dir_all(newroot.path().join("lib/modules/6.12.0-test")).unwrap();
        assert!(!copy_modules_if_missing(&source, newroot.path(), "6.12.0-test").unwrap());
        assert!(
            !newroot
                .path()
                .join("lib/modules/6.12.0-test/modules.dep")
                .exists()
        );
    }

    #[test]
    fn no_modules_in_the_initramfs_is_not_an_error() {
        let initramfs = tempfile::tempdir().unwrap();
        let newroot = tempfile::tempdir().unwrap();
        let source = initramfs.path().join("lib/modules");
        assert!(!copy_modules_if_missing(&source, newroot.path(), "6.12.0-test").unwrap());
    }
}
