//! `bootkit-build` as a library: the QEMU tests build images with it directly.
//!
//! ```no_run
//! use bootkit_builder::{ImageConfig, Overlay, build};
//! let mut config = ImageConfig::load("imageconfigs/qemu-test.toml".as_ref())?;
//! config.overlay.push(Overlay::inline("/etc/motd", "hello\n"));
//! let out = build(&config, "out/qemu-test".as_ref())?;
//! println!("{}", out.initramfs.display());
//! # Ok::<(), bootkit_builder::BuildError>(())
//! ```
//!
//! - [`config`]: the image config (TOML schema in its docs).
//! - [`kernel`]: kernel directories and Debian packages (with the extraction cache).
//! - [`modules`]: `.modinfo` parsing, the module subset and its depmod files.
//! - [`elf`]: shared libraries of host programs.
//! - [`tree`], [`rootfs`], [`initramfs`], [`cpio`], [`compress`]: assembling the archives.
//! - [`uki`]: unified kernel images (systemd's EFI stub + kernel + initramfs + cmdline).
//! - [`usb`]: the USB installer stick ([`usb_customize`]: an install config and an OS
//!   image put into one already made); [`test_os`]: the EMT-like test OS image (with
//!   [`bios_boot`] code in its MBR); both built
//!   from [`fs_image`] filesystems placed by [`disk_image`], with host [`tools`], and
//!   [`publish`]ed compressed with checksums.
//! - [`oci`]: Tinkerbell action images (OCI layouts); [`registry`]: pushing them.
//! - [`secure_boot`]: Secure Boot key sets (PK, KEK, db) and Authenticode signing.
//! - [`reproducible`]: SOURCE_DATE_EPOCH and outputs written whole or not at all.
//! - [`manifest`], [`inspect`], [`check_kernel`], [`progress`].

pub mod bios_boot;
pub mod build;
pub mod check_kernel;
pub mod compress;
pub mod config;
pub mod cpio;
mod dirs;
pub mod disk_image;
pub mod elf;
pub mod error;
pub mod fs_image;
pub mod initramfs;
pub mod inspect;
mod install_check;
pub mod kernel;
pub mod manifest;
pub mod modules;
pub mod oci;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod reproducible;
pub mod rootfs;
pub mod secure_boot;
pub mod test_os;
pub mod tools;
pub mod tree;
pub mod uki;
pub mod usb;
pub mod usb_customize;

pub use build::{BuildOutput, build, build_with};
pub use config::{
    CompressionConfig, CompressionKind, Directory, ImageConfig, InitConfig, InitramfsConfig,
    KernelConfig, Overlay, Program, RootfsConfig, SecureBootConfig, UsbConfig,
};
pub use error::BuildError;
pub use manifest::Manifest;
pub use progress::Progress;
pub use usb::UsbOutput;
