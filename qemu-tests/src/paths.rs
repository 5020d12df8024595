//! Where the tests find their inputs, and which command makes each one.
//! A missing input is an error naming that command: the QEMU tests never skip.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a missing tool or package is installed, for messages.
pub const SETUP_CMD: &str = "scripts/setup.sh (as root)";
/// How a missing test image is built, for messages.
pub const BUILD_CMD: &str = "scripts/build-bootkit.sh";

/// The workspace root (this crate lives in `<root>/qemu-tests`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory, honouring CARGO_TARGET_DIR like cargo does.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}

/// The Debian kernel package fetched by scripts/setup.sh (a stable symlink to
/// the real `linux-image-<ver>-amd64_*.deb`).
pub fn kernel_deb() -> PathBuf {
    repo_root().join(".cache/kernel/linux-image-amd64.deb")
}

/// The static multicall init binary built by scripts/build-bootkit.sh.
pub fn init_binary() -> PathBuf {
    target_dir().join("x86_64-unknown-linux-gnu/release/bootkit")
}

/// The static `bootkit-install` binary built by scripts/build-bootkit.sh (the USB installer).
pub fn installer_binary() -> PathBuf {
    target_dir().join("x86_64-unknown-linux-gnu/release/bootkit-install")
}

/// The `bootkit-build` binary built by scripts/build-bootkit.sh.
pub fn builder_binary() -> PathBuf {
    target_dir().join("release/bootkit-build")
}

/// The output directory of `bootkit-build build imageconfigs/qemu-test.toml`.
pub fn test_image_dir() -> PathBuf {
    repo_root().join("out/qemu-test")
}

/// Fails with the command that creates `path` when it does not exist.
pub fn require(what: &'static str, path: PathBuf, how: &'static str) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Missing { what, path, how })
    }
}

/// `kernel_deb()`, or an error saying to run scripts/setup.sh.
pub fn require_kernel_deb() -> Result<PathBuf> {
    require("the Debian kernel package", kernel_deb(), SETUP_CMD)
}

/// `init_binary()`, or an error saying to run scripts/build-bootkit.sh.
pub fn require_init_binary() -> Result<PathBuf> {
    require("the static bootkit init binary", init_binary(), BUILD_CMD)
}

/// `installer_binary()`, or an error saying to run scripts/build-bootkit.sh.
pub fn require_installer_binary() -> Result<PathBuf> {
    require(
        "the static bootkit-install binary",
        installer_binary(),
        BUILD_CMD,
    )
}

/// The test image built from imageconfigs/qemu-test.toml: kernel, initramfs
/// and the kernel command line the builder wrote for it.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line the builder wrote.
    pub cmdline: String,
}

impl TestImage {
    /// Loads the image from `out/qemu-test`; says how to build it when a file is missing.
    pub fn load() -> Result<Self> {
        Self::load_from(&test_image_dir())
    }

    /// Loads the image from `dir`; says how to build it when a file is missing.
    pub fn load_from(dir: &Path) -> Result<Self> {
        let kernel = require("the test image's kernel", dir.join("vmlinuz"), BUILD_CMD)?;
        let initrd = require(
            "the test image's initramfs",
            dir.join("initramfs"),
            BUILD_CMD,
        )?;
        let cmdline_path = require("the test image's cmdline", dir.join("cmdline"), BUILD_CMD)?;
        let cmdline = std::fs::read_to_string(&cmdline_path)
            .map_err(Error::io(format!("reading {}", cmdline_path.display())))?
            .trim()
            .to_string();
        Ok(Self {
            kernel,
            initrd,
            cmdline,
        })
    }
}
