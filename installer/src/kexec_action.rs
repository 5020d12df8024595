//! The `kexec` Tinkerbell action (`bootkit-install` called as `kexec`): loads the provisioned
//! system's kernel for kexec, then asks the worker to reboot at the end of the workflow,
//! which the init turns into the kexec (init/src/power.rs). Its environment is upstream's
//! (tinkerbell/actions `kexec`):
//!
//! - `BLOCK_DEVICE` (required): the partition holding the kernel (`/dev/sda3`); or, without
//!   `KERNEL_PATH`, the EFI system partition or the whole disk (its ESP is found), read as
//!   `after = "kexec"` reads it ([`crate::kexec`]: the UKI at `\EFI\BOOT\BOOTX64.EFI`,
//!   systemd-boot's entries, the UKIs in `\EFI\Linux`).
//! - `FS_TYPE` (optional): accepted for compatibility; the filesystem is recognised from its
//!   superblock (ext2/3/4 or FAT), and a different value is only noted.
//! - `KERNEL_PATH`, `INITRD_PATH` (optional): the kernel and initrd inside that filesystem.
//! - `CMD_LINE`: the kernel command line; required with `KERNEL_PATH`.
//!
//! Upstream's action calls reboot(LINUX_REBOOT_CMD_KEXEC) itself, which needs `pid: host`
//! and cuts the workflow off before its last report. This one ends successfully instead and
//! leaves `/worker/reboot`, the request tink's workers (and the bootkit's) carry out once the
//! workflow's last report is acknowledged.

use std::path::{Path, PathBuf};

use bootkit_common::install_config::BootEntry;

use crate::kexec::{self, BootFiles, KexecError};
use crate::mount::{FsKind, Mounted};

/// The worker's reboot request: a file in the `/worker` mount it gives every action.
const WORKER_REBOOT_FILE: &str = "/worker/reboot";

/// What the action's environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexecRequest {
    /// `BLOCK_DEVICE`.
    pub block_device: PathBuf,
    /// `FS_TYPE`, if set.
    pub fs_type: Option<String>,
    /// Explicit files, or `None`: read the device as an ESP (or a disk with one).
    pub explicit: Option<ExplicitFiles>,
}

/// `KERNEL_PATH`, `INITRD_PATH` and `CMD_LINE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplicitFiles {
    /// The kernel inside the filesystem.
    pub kernel: String,
    /// The initrd inside the filesystem, if any.
    pub initrd: Option<String>,
    /// The command line.
    pub cmdline: String,
}

/// Why the kexec action fails.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A required variable is unset.
    #[error("{0} is not set: the kexec action needs it ({1})")]
    Missing(&'static str, &'static str),
    /// The device cannot be read or the kernel not loaded.
    #[error(transparent)]
    Kexec(#[from] KexecError),
    /// The device holds no filesystem the action can read.
    #[error("cannot read {device}")]
    Mount {
        /// `BLOCK_DEVICE`.
        device: PathBuf,
        /// Why.
        source: crate::mount::MountError,
    },
    /// The worker's reboot request cannot be written.
    #[error(
        "the kernel is loaded, but {WORKER_REBOOT_FILE} cannot be written to ask the worker \
         for the reboot; is /worker mounted into the action?"
    )]
    RequestReboot(#[source] std::io::Error),
}

/// The request the environment describes, read through `lookup`.
pub fn request_from_env(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<KexecRequest, ActionError> {
    let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let block_device = set("BLOCK_DEVICE").ok_or(ActionError::Missing(
        "BLOCK_DEVICE",
        "the partition (or disk) holding the kernel, such as /dev/sda3",
    ))?;
    let explicit = match set("KERNEL_PATH") {
        None => None,
        Some(kernel) => Some(ExplicitFiles {
            kernel,
            initrd: set("INITRD_PATH"),
            cmdline: set("CMD_LINE").ok_or(ActionError::Missing(
                "CMD_LINE",
                "the kernel command line, with KERNEL_PATH",
            ))?,
        }),
    };
    Ok(KexecRequest {
        block_device: PathBuf::from(block_device.trim()),
        fs_type: set("FS_TYPE"),
        explicit,
    })
}

/// Loads the kernel the request names and asks the worker for the reboot; returns what was
/// loaded, for the action's log.
pub fn run(request: &KexecRequest) -> Result<BootFiles, ActionError> {
    let files = match crate::disk::resolve(&request.block_device.display().to_string()) {
        // A whole disk: its ESP, as the USB installer reads the disk it wrote.
        Ok(disk) => kexec::read_installed(
            &disk.dev_path,
            u64::from(disk.logical_sector_size),
            &BootEntry::default().loader,
        )?,
        Err(_) => read_partition(request)?,
    };
    kexec::load(&files)?;
    std::fs::write(WORKER_REBOOT_FILE, b"").map_err(ActionError::RequestReboot)?;
    Ok(files)
}

fn read_partition(request: &KexecRequest) -> Result<BootFiles, ActionError> {
    let device = &request.block_device;
    let mounted = Mounted::new(device).map_err(|source| ActionError::Mount {
        device: device.clone(),
        source,
    })?;
    if let Some(note) = fs_type_note(request.fs_type.as_deref(), mounted.filesystem().kind) {
        eprintln!("kexec: {note}");
    }
    let files = match &request.explicit {
        Some(explicit) => explicit_files(mounted.path(), explicit),
        None => kexec::find_boot_files(mounted.path(), &BootEntry::default().loader),
    };
    mounted.unmount().map_err(|source| ActionError::Mount {
        device: device.clone(),
        source,
    })?;
    files.map_err(ActionError::from)
}

fn explicit_files(root: &Path, explicit: &ExplicitFiles) -> Result<BootFiles, KexecError> {
    let inside = |path: &str| root.join(path.trim_start_matches('/'));
    Ok(BootFiles {
        origin: explicit.kernel.clone(),
        kernel: kexec::read(&inside(&explicit.kernel))?,
        initrd: match &explicit.initrd {
            Some(initrd) => kexec::read(&inside(initrd))?,
            None => Vec::new(),
        },
        cmdline: explicit.cmdline.clone(),
    })
}

/// A note when `FS_TYPE` names another filesystem than the superblock's.
fn fs_type_note(fs_type: Option<&str>, found: FsKind) -> Option<String> {
    let fs_type = fs_type?.trim().to_ascii_lowercase();
    let same = match found {
        FsKind::Ext => matches!(fs_type.as_str(), "ext2" | "ext3" | "ext4"),
        FsKind::Vfat => matches!(fs_type.as_str(), "vfat" | "fat" | "msdos"),
    };
    (!same).then(|| {
        format!(
            "FS_TYPE={fs_type}, but the partition holds {}; read as {}",
            found.kernel_name(),
            found.kernel_name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn upstreams_environment_names_the_files() {
        let request = request_from_env(env(&[
            ("BLOCK_DEVICE", "/dev/sda3"),
            ("FS_TYPE", "ext4"),
            ("KERNEL_PATH", "/boot/vmlinuz"),
            ("INITRD_PATH", "/boot/initrd"),
            ("CMD_LINE", "root=/dev/sda3 ro"),
        ]))
        .unwrap();
        assert_eq!(request.block_device, PathBuf::from("/dev/sda3"));
        assert_eq!(
            request.explicit,
            Some(ExplicitFiles {
                kernel: "/boot/vmlinuz".into(),
                initrd: Some("/boot/initrd".into()),
                cmdline: "root=/dev/sda3 ro".into(),
            })
        );
    }

    #[test]
    fn without_kernel_path_the_device_is_read_as_an_esp() {
        let request =
            request_from_env(env(&[("BLOCK_DEVICE", "/dev/vda"), ("KERNEL_PATH", " ")])).unwrap();
        assert_eq!(request.explicit, None);
    }

    #[test]
    fn missing_variables_are_named() {
        let message = request_from_env(env(&[])).unwrap_err().to_string();
        assert!(message.contains("BLOCK_DEVICE"), "{message}");
        let message = request_from_env(env(&[
            ("BLOCK_DEVICE", "/dev/sda3"),
            ("KERNEL_PATH", "/boot/vmlinuz"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(message.contains("CMD_LINE"), "{message}");
    }

    #[test]
    fn explicit_paths_are_read_inside_the_filesystem() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("boot")).unwrap();
        std::fs::write(root.path().join("boot/vmlinuz"), b"kernel").unwrap();
        let files = explicit_files(
            root.path(),
            &ExplicitFiles {
                kernel: "/boot/vmlinuz".into(),
                initrd: None,
                cmdline: "ro".into(),
            },
        )
        .unwrap();
        assert_eq!((files.kernel, files.initrd), (b"kernel".to_vec(), vec![]));
        let missing = ExplicitFiles {
            kernel: "/boot/vmlinuz".into(),
            initrd: Some("/boot/initrd".into()),
            cmdline: "ro".into(),
        };
        let error = explicit_files(root.path(), &missing).unwrap_err();
        assert!(error.to_string().contains("boot/initrd"), "{error}");
    }

    #[test]
    fn a_wrong_fs_type_is_only_noted() {
        assert_eq!(fs_type_note(Some("ext4"), FsKind::Ext), None);
        assert_eq!(fs_type_note(None, FsKind::Vfat), None);
        let note = fs_type_note(Some("xfs"), FsKind::Ext).unwrap();
        assert!(note.contains("xfs") && note.contains("ext4"), "{note}");
    }
}
