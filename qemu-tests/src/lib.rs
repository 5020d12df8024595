//! QEMU test harness: boots a `vmlinuz` + `initramfs` pair in
//! `qemu-system-x86_64` with the serial console on a pipe, waits for console
//! markers with deadlines, types into the console, and always kills QEMU.
//!
//! ```no_run
//! use std::time::Duration;
//! use qemu_tests::{Vm, VmConfig};
//!
//! # fn main() -> qemu_tests::Result<()> {
//! // out/qemu-test from scripts/build-bootkit.sh, its cmdline, a virtio NIC.
//! let mut vm = Vm::boot(VmConfig::test_image("boot_to_ready")?.append_more("bootkit.on_error=poweroff"))?;
//! let ready = vm.wait_for("bootkit: ready in", Duration::from_secs(120))?;
//! assert!(ready.contains("ms (mounts"));
//! // Dropping `vm` kills QEMU, also when an assertion above panics.
//! # Ok(()) }
//! ```
//!
//! Environment: `BOOTKIT_QEMU_ACCEL=kvm` (default TCG), `BOOTKIT_QEMU`
//! (QEMU program), `BOOTKIT_QEMU_JOBS` (VMs at once), and
//! `BOOTKIT_TEST_TIMEOUT_SCALE` (multiplies every timeout).

mod child;
mod console;
pub mod error;
pub mod initramfs;
pub mod kernel;
pub mod netns;
pub mod paths;
pub mod pxe;
pub mod secure_boot;
mod slots;
pub mod stack;
pub mod vm;

pub use error::{Error, Result};
pub use initramfs::{CpioEntry, EntryKind, append_files, append_segment, read_newc, write_newc};
pub use kernel::debian_vmlinuz;
pub use netns::{Daemon, NetNs};
pub use paths::{
    TestImage, builder_binary, init_binary, installer_binary, kernel_deb, repo_root, require,
    require_init_binary, require_installer_binary, require_kernel_deb, target_dir, test_image_dir,
};
pub use secure_boot::SecureBootVars;
pub use vm::{
    Accel, Firmware, GUEST_FORWARD_ADDRESS, OVMF_CODE, OVMF_CODE_SECBOOT, OVMF_VARS_TEMPLATE, Vm,
    VmConfig, fresh_uefi_vars, log_path, scaled,
};
