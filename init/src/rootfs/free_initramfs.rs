//! Giving the initramfs's RAM back: once the new root is in place, everything left in the
//! initramfs (the init binary, the rootfs archive, modules) is deleted. The initramfs is a
//! ramfs/tmpfs that cannot be unmounted, so deleting its files is the only way to free it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use bootkit_common::layout::INIT;
use rustix::fs::{
    AtFlags, Dir, FileType, Mode, OFlags, fstat, openat, stat, statat, statfs, unlinkat,
};
use rustix::io::Errno;

use super::RootfsError;

/// From the kernel's include/uapi/linux/magic.h: the initramfs is one of these.
const RAMFS_MAGIC: u64 = 0x8584_58f6;
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// What the deletion did; failures do not stop it (the boot must go on with what is freed).
#[derive(Debug, Default)]
pub struct DeleteStats {
    pub removed: u64,
    pub bytes: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
}

impl DeleteStats {
    fn failure(&mut self, path: &Path, error: impl std::fmt::Display) {
        self.failed += 1;
        self.first_failure
            .get_or_insert_with(|| format!("{}: {error}", path.display()));
    }
}

/// Refuse unless `root` is a ramfs/tmpfs with an `/init`: the initramfs the kernel started
/// us from. A bug or a wrong path must never delete a disk's contents.
pub fn verify_initramfs(root: &Path) -> Result<(), RootfsError> {
    let refuse = |reason: String| RootfsError::NotInitramfs {
        root: root.to_path_buf(),
        reason,
    };
    let fs = statfs(root)
        .map_err(|errno| refuse(format!("cannot read its filesystem type: {errno}")))?;
    // f_type is signed on some targets; the magic numbers are 32-bit.
    #[allow(clippy::unnecessary_cast)]
    let fs_type = (fs.f_type as u64) & 0xffff_ffff;
    if fs_type != RAMFS_MAGIC && fs_type != TMPFS_MAGIC {
        return Err(refuse(format!(
            "it is not a ramfs or tmpfs (filesystem type {fs_type:#x})"
        )));
    }
    if std::fs::symlink_metadata(root.join(INIT.trim_start_matches('/'))).is_err() {
        return Err(refuse(format!(
            "it has no {INIT}, so it is not the initramfs we booted from"
        )));
    }
    Ok(())
}

/// Delete everything in the initramfs at `root` except `keep` (the new root) and anything on
/// another filesystem (mounts are never entered).
pub fn free_initramfs(root: &Path, keep: &Path) -> Result<DeleteStats, RootfsError> {
    verify_initramfs(root)?;
    let fail = |action: &str, errno: Errno| RootfsError::FreeInitramfs {
        root: root.to_path_buf(),
        action: action.to_string(),
        source: errno.into(),
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root_fd =
        openat(rustix::fs::CWD, root, dir_flags, Mode::empty()).map_err(|e| fail("open it", e))?;
    let root_dev = fstat(&root_fd).map_err(|e| fail("stat it", e))?.st_dev;
    let keep_stat =
        stat(keep).map_err(|e| fail(&format!("stat the new root {}", keep.display()), e))?;
    let walk = Walk {
        root_dev,
        keep: (keep_stat.st_dev, keep_stat.st_ino),
    };
    let mut stats = DeleteStats::default();
    walk.delete_contents(root_fd.as_fd(), root, &mut stats);
    Ok(stats)
}

struct Walk {
    root_dev: u64,
    /// (st_dev, st_ino) of the new root.
    keep: (u64, u64),
}

impl Walk {
    fn delete_contents(&self, dir: BorrowedFd<'_>, path: &Path, stats: &mut DeleteStats) {
        let names = match list_names(dir) {
            Ok(names) => names,
            Err(error) => return stats.failure(path, error),
        };
        for name in names {
            let child_path = path.join(name.to_string_lossy().as_ref());
            match self.delete_entry(dir, &name, &child_path, stats) {
                Ok(()) => {}
                Err(error) => stats.failure(&child_path, error),
            }
        }
    }

    fn delete_entry(
        &self,
        dir: BorrowedFd<'_>,
        name: &CString,
        path: &Path,
        stats: &mut DeleteStats,
    ) -> io::Result<()> {
        let entry = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        // A mount point shows the mounted filesystem's device: leave it and all below it.
        if entry.st_dev != self.root_dev || (entry.st_dev, entry.st_ino) == self.keep {
            return Ok(());
        }
        if FileType::from_raw_mode(entry.st_mode) != FileType::Directory {
            unlinkat(dir, name, AtFlags::empty())?;
            stats.removed += 1;
            stats.bytes += u64::try_from(entry.st_size).unwrap_or(0);
            return Ok(());
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let child: OwnedFd = openat(dir, name, flags, Mode::empty())?;
        self.delete_contents(child.as_fd(), path, stats);
        match unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) => stats.removed += 1,
            // It still holds a mount or the new root: expected, not a failure.
            Err(Errno::NOTEMPTY | Errno::BUSY) => {}
            Err(errno) => return Err(errno.into()),
        }
        Ok(())
    }
}

fn list_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    // Names are read first and deleted after, so the directory does not change under getdents.
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::test_support::TmpfsMount;
    use std::os::unix::fs::symlink;

    /// A fake initramfs on a tmpfs: /init, some files, a new root and /dev as separate mounts.
    fn fake_initramfs(base: &Path) -> (TmpfsMount, TmpfsMount, TmpfsMount) {
        let root = base.join("initramfs");
        let initramfs = TmpfsMount::new(&root, "size=4m");
        std::fs::write(root.join("init"), b"\x7fELF").unwrap();
        std::fs::write(root.join("rootfs.tar.gz"), vec![0u8; 10_000]).unwrap();
        std::fs::create_dir_all(root.join("lib/modules/6.12/kernel")).unwrap();
        std::fs::write(root.join("lib/modules/6.12/kernel/nbd.ko"), b"ko").unwrap();
        symlink("/lib", root.join("lib64")).unwrap();
        std::fs::create_dir_all(root.join("empty/dirs/below")).unwrap();
        let newroot = TmpfsMount::new(&root.join("sysroot"), "size=1m");
        std::fs::write(root.join("sysroot/keep-me"), b"new root").unwrap();
        let dev = TmpfsMount::new(&root.join("sysroot/../dev"), "size=1m");
        std::fs::write(root.join("dev/console-stand-in"), b"dev").unwrap();
        (initramfs, newroot, dev)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn everything_but_the_new_root_and_other_mounts_is_deleted() {
        let base = tempfile::tempdir().unwrap();
        let (_initramfs, _newroot, _dev) = fake_initramfs(base.path());
        let root = base.path().join("initramfs");
        let stats = free_initramfs(&root, &root.join("sysroot")).unwrap();
        assert_eq!(names(&root), ["dev", "sysroot"]);
        assert_eq!(
            std::fs::read(root.join("sysroot/keep-me")).unwrap(),
            b"new root"
        );
        assert_eq!(
            std::fs::read(root.join("dev/console-stand-in")).unwrap(),
            b"dev"
        );
        assert_eq!(stats.failed, 0, "{:?}", stats.first_failure);
        assert!(stats.bytes >= 10_000);
        // init, rootfs.tar.gz, nbd.ko, lib64, and the directories lib, modules, 6.12, kernel,
        // empty, dirs, below.
        assert_eq!(stats.removed, 11);
    }

    #[test]
    fn a_disk_is_never_taken_for_the_initramfs() {
        // The temp dir is on the host's disk filesystem (or at least has no /init).
        let disk = tempfile::tempdir().unwrap();
        std::fs::write(disk.path().join("init"), b"").unwrap();
        std::fs::write(disk.path().join("precious"), b"data").unwrap();
        if let Err(error) = verify_initramfs(disk.path()) {
            let message = error.to_string();
            assert!(message.contains("not a ramfs or tmpfs"), "{message}");
            assert!(free_initramfs(disk.path(), disk.path()).is_err());
            assert!(disk.path().join("precious").exists());
        } else {
            eprintln!("skipped the disk check: the temp dir is itself on a tmpfs");
        }
    }

    #[test]
    fn a_tmpfs_without_init_is_not_the_initramfs() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("tmpfs");
        let _mount = TmpfsMount::new(&root, "size=1m");
        std::fs::write(root.join("precious"), b"data").unwrap();
        let message = free_initramfs(&root, &root).unwrap_err().to_string();
        assert!(message.contains("no /init"), "{message}");
        assert!(root.join("precious").exists());
    }
}
