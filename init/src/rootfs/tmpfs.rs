//! The tmpfs that becomes the root filesystem, sized and moded by the kernel's `rootflags=`.

use std::path::Path;

use rustix::mount::{MountFlags, mount};

use super::RootfsError;

/// tmpfs's own default root mode is 1777, which a root directory must not have.
const DEFAULT_MODE: &str = "mode=0755";

/// The mount data for the tmpfs: `rootflags` as given, with `mode=0755` unless it sets a mode.
pub fn mount_options(rootflags: Option<&str>) -> String {
    let flags = rootflags.map(str::trim).unwrap_or("");
    let sets_mode = flags.split(',').any(|option| option.starts_with("mode="));
    match (flags.is_empty(), sets_mode) {
        (true, _) => DEFAULT_MODE.to_string(),
        (false, true) => flags.to_string(),
        (false, false) => format!("{DEFAULT_MODE},{flags}"),
    }
}

pub fn mount_tmpfs(target: &Path, rootflags: Option<&str>) -> Result<(), RootfsError> {
    std::fs::create_dir_all(target).map_err(|source| RootfsError::CreateMountPoint {
        path: target.to_path_buf(),
        source,
    })?;
    let options = mount_options(rootflags);
    mount_with_options(target, &options).map_err(|source| RootfsError::MountTmpfs {
        target: target.to_path_buf(),
        options: options.clone(),
        source,
    })?;
    crate::info!(
        "rootfs",
        "tmpfs mounted at {} ({options})",
        target.display()
    );
    Ok(())
}

fn mount_with_options(target: &Path, options: &str) -> std::io::Result<()> {
    let data = std::ffi::CString::new(options)
        .map_err(|_| std::io::Error::other("the options contain a NUL byte"))?;
    mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::empty(),
        data.as_c_str(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mode_is_added_unless_given() {
        assert_eq!(mount_options(None), "mode=0755");
        assert_eq!(mount_options(Some("")), "mode=0755");
        assert_eq!(mount_options(Some("size=1G")), "mode=0755,size=1G");
        assert_eq!(
            mount_options(Some("mode=0700,size=1G")),
            "mode=0700,size=1G"
        );
        assert_eq!(
            mount_options(Some("size=1G,mode=0711")),
            "size=1G,mode=0711"
        );
    }

    #[test]
    #[ignore = "needs root: mounts a tmpfs"]
    fn mounts_a_sized_tmpfs_and_creates_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("new/root");
        mount_tmpfs(&target, Some("size=1m")).unwrap();
        let vfs = rustix::fs::statvfs(&target).unwrap();
        let mode = std::fs::metadata(&target).unwrap();
        rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH).unwrap();
        assert_eq!(vfs.f_blocks * vfs.f_frsize, 1 << 20);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o7777, 0o755);
    }

    #[test]
    fn bad_options_name_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let err = mount_tmpfs(dir.path(), Some("size=lots"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("size=lots"), "{err}");
        assert!(err.contains("rootflags="), "{err}");
    }
}
