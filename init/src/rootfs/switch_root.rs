//! switch_root: the new root (a tmpfs mounted inside the initramfs) becomes `/`, with the
//! kernel filesystems moved into it and the initramfs's RAM given back.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use bootkit_common::size::human_size_exact;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, fstat, mkdirat, openat, stat, statat};
use rustix::io::Errno;
use rustix::mount::mount_move;
use rustix::process::{chdir, chroot};

use super::RootfsError;
use super::free_initramfs::{free_initramfs, verify_initramfs};
use super::modules_copy::copy_modules_if_missing;

/// Kernel filesystems the new root needs; mounts below them (devpts, /dev/shm, cgroup2,
/// efivarfs) move along.
const MOVED_MOUNTS: [&str; 4] = ["proc", "sys", "dev", "run"];

const INITRAMFS_MODULES: &str = "/lib/modules";

pub fn switch_root(newroot: &Path) -> Result<(), RootfsError> {
    let initramfs = Path::new("/");
    // Checked before anything changes: outside an initramfs, nothing is moved or deleted.
    verify_initramfs(initramfs)?;
    let fail = |action: &str, errno: Errno| RootfsError::SwitchRoot {
        newroot: newroot.to_path_buf(),
        action: action.to_string(),
        source: errno.into(),
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let newroot_fd = openat(rustix::fs::CWD, newroot, dir_flags, Mode::empty())
        .map_err(|e| fail("open it", e))?;
    let root_dev = stat(initramfs).map_err(|e| fail("stat /", e))?.st_dev;
    if fstat(&newroot_fd).map_err(|e| fail("stat it", e))?.st_dev == root_dev {
        return Err(fail(
            "use it as the root: it is not a mount point",
            Errno::INVAL,
        ));
    }

    let moved = move_kernel_mounts(newroot, newroot_fd.as_fd(), root_dev)?;
    crate::info!(
        "rootfs",
        "moved {} into {}",
        moved.join(" "),
        newroot.display()
    );

    copy_running_kernel_modules(newroot);

    let freed = free_initramfs(initramfs, newroot)?;
    crate::info!(
        "rootfs",
        "freed the initramfs: {} entries, {} of files",
        freed.removed,
        human_size_exact(freed.bytes)
    );
    if let Some(first) = &freed.first_failure {
        crate::warn!(
            "rootfs",
            "{} initramfs entries could not be deleted (first: {first})",
            freed.failed
        );
    }

    enter(newroot)?;
    crate::info!("rootfs", "switched root to {}", newroot.display());
    Ok(())
}

/// MS_MOVE each mounted one of [`MOVED_MOUNTS`] to the same place in the new root.
fn move_kernel_mounts(
    newroot: &Path,
    newroot_fd: BorrowedFd<'_>,
    root_dev: u64,
) -> Result<Vec<String>, RootfsError> {
    let mut moved = Vec::new();
    for name in MOVED_MOUNTS {
        let source = Path::new("/").join(name);
        // Not mounted (same device as the initramfs): nothing to move.
        if stat(&source).map_or(true, |s| s.st_dev == root_dev) {
            continue;
        }
        let target = newroot.join(name);
        let fail = |action: String, errno: Errno| RootfsError::SwitchRoot {
            newroot: newroot.to_path_buf(),
            action,
            source: errno.into(),
        };
        ensure_mount_point(newroot_fd, name)
            .map_err(|e| fail(format!("create the mount point {}", target.display()), e))?;
        mount_move(&source, &target).map_err(|e| {
            fail(
                format!("move {} to {}", source.display(), target.display()),
                e,
            )
        })?;
        moved.push(source.display().to_string());
    }
    Ok(moved)
}

/// A real directory `name` directly in the new root; a symlink there is refused (ENOTDIR),
/// since the mount would follow it, possibly out of the new root.
fn ensure_mount_point(newroot_fd: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    match mkdirat(newroot_fd, name, Mode::from_raw_mode(0o755)) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => {
            let existing = statat(newroot_fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
            match FileType::from_raw_mode(existing.st_mode) {
                FileType::Directory => Ok(()),
                _ => Err(Errno::NOTDIR),
            }
        }
        Err(errno) => Err(errno),
    }
}

/// Best effort: a rootfs without modules still boots; only modprobe would fail later.
fn copy_running_kernel_modules(newroot: &Path) {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    match copy_modules_if_missing(Path::new(INITRAMFS_MODULES), newroot, &release) {
        Ok(true) => crate::info!(
            "rootfs",
            "copied the kernel modules for {release} into the new root"
        ),
        Ok(false) => {}
        Err(error) => crate::warn!("rootfs", "{error}"),
    }
}

/// The classic sequence: the new root's mount replaces `/` for this process and its children.
fn enter(newroot: &Path) -> Result<(), RootfsError> {
    let fail = |action: &str, errno: Errno| RootfsError::SwitchRoot {
        newroot: newroot.to_path_buf(),
        action: action.to_string(),
        source: errno.into(),
    };
    chdir(newroot).map_err(|e| fail("chdir into it", e))?;
    mount_move(".", "/").map_err(|e| fail("move its mount onto /", e))?;
    chroot(".").map_err(|e| fail("chroot into it", e))?;
    chdir("/").map_err(|e| fail("chdir to the new /", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::test_support::TmpfsMount;
    use std::process::Command;

    const CHILD_ENV: &str = "BOOTKIT_TEST_SWITCH_ROOT_DIR";
    const CHILD_OK: &str = "switch_root child: all checks passed";

    #[test]
    fn the_host_root_is_refused_before_anything_changes() {
        if Path::new("/init").exists() {
            eprintln!("skipped: this host's / has an /init, it could pass for an initramfs");
            return;
        }
        let newroot = tempfile::tempdir().unwrap();
        let message = switch_root(newroot.path()).unwrap_err().to_string();
        assert!(message.contains("refusing to delete /"), "{message}");
        assert!(Path::new("/proc/self").exists(), "/proc was not moved");
    }

    /// The whole switch_root, for real, in a child process with its own mount namespace and
    /// a chroot into a tmpfs dressed up as an initramfs (the host is never touched).
    #[test]
    fn switch_root_works_in_a_private_mount_namespace() {
        let base = tempfile::tempdir().unwrap();
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "rootfs::switch_root::tests::switch_root_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, base.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains(CHILD_OK),
            "child failed:\n{stdout}\n{stderr}"
        );
    }

    /// Runs only as the child of the test above.
    #[test]
    fn switch_root_child() {
        let Some(base) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        // A private copy of the mount table; nothing done below propagates to the host.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        let private = rustix::mount::MountPropagationFlags::PRIVATE
            | rustix::mount::MountPropagationFlags::REC;
        rustix::mount::mount_change("/", private).unwrap();

        let initramfs = Path::new(&base).join("initramfs");
        let _mounts = dress_up_as_initramfs(&initramfs);
        chroot(&initramfs).unwrap();
        chdir("/").unwrap();

        switch_root(Path::new("/sysroot")).unwrap();

        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            std::fs::read("/etc/os-release").unwrap(),
            b"ID=bootkit-test\n"
        );
        for moved in ["proc", "sys", "dev", "run", "dev/shm"] {
            assert!(
                Path::new("/").join(moved).join("marker").exists(),
                "{moved} not moved"
            );
        }
        let modules = format!("/lib/modules/{release}/modules.dep");
        assert_eq!(std::fs::read(modules).unwrap(), b"deps");
        assert!(!Path::new("/init").exists());
        println!("{CHILD_OK}");
    }

    fn dress_up_as_initramfs(root: &Path) -> Vec<TmpfsMount> {
        let mut mounts = vec![TmpfsMount::new(root, "size=8m")];
        std::fs::write(root.join("init"), b"\x7fELF").unwrap();
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let modules = root.join("lib/modules").join(&release);
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(modules.join("modules.dep"), b"deps").unwrap();
        for kernel_fs in ["proc", "sys", "dev", "run", "dev/shm"] {
            let mount = TmpfsMount::new(&root.join(kernel_fs), "size=1m");
            std::fs::write(root.join(kernel_fs).join("marker"), b"").unwrap();
            mounts.push(mount);
        }
        mounts.push(TmpfsMount::new(&root.join("sysroot"), "size=1m"));
        std::fs::create_dir(root.join("sysroot/etc")).unwrap();
        std::fs::write(root.join("sysroot/etc/os-release"), b"ID=bootkit-test\n").unwrap();
        mounts
    }
}
