//! The kernel the tests boot without the builder: `vmlinuz` taken out of the
//! Debian package scripts/setup.sh downloads, with dpkg-deb and tar, into
//! `target/qemu-kernel/` (never into the host's /boot).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::paths::{require_kernel_deb, target_dir};

/// Path of the Debian kernel's `vmlinuz`, extracted once and cached per
/// package version.
pub fn debian_vmlinuz() -> Result<PathBuf> {
    let deb = require_kernel_deb()?;
    // The cache key is the real package file behind the stable symlink, so a
    // newer kernel from setup.sh is picked up.
    let real =
        std::fs::canonicalize(&deb).map_err(Error::io(format!("resolving {}", deb.display())))?;
    let stem = real
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kernel".to_string());
    let dir = target_dir().join("qemu-kernel").join(stem);
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.exists() {
        return Ok(vmlinuz);
    }
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;

    // Tests run in parallel: extract to a private name, then rename atomically.
    let tmp = dir.join(format!(
        "vmlinuz.tmp.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let out =
        std::fs::File::create(&tmp).map_err(Error::io(format!("creating {}", tmp.display())))?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&real)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(Error::io("running dpkg-deb (install dpkg)"))?;
    let tar_in = dpkg
        .stdout
        .take()
        .ok_or_else(|| Error::Other("dpkg-deb: no stdout".into()))?;
    let tar = Command::new("tar")
        .args(["-xO", "--wildcards", "./boot/vmlinuz-*"])
        .stdin(tar_in)
        .stdout(out)
        .status()
        .map_err(Error::io("running tar"));
    let dpkg_status = dpkg.wait().map_err(Error::io("waiting for dpkg-deb"))?;
    let tar = tar?;
    let size = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    if !dpkg_status.success() || !tar.success() || size == 0 {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Other(format!(
            "could not extract ./boot/vmlinuz-* from {} (dpkg-deb: {dpkg_status}, tar: {tar}); rerun scripts/setup.sh to fetch it again",
            real.display()
        )));
    }
    std::fs::rename(&tmp, &vmlinuz)
        .map_err(Error::io(format!("renaming to {}", vmlinuz.display())))?;
    Ok(vmlinuz)
}
