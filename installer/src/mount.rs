//! Mounting a partition of the installed disk or the USB stick for a while: the filesystem is
//! recognised from its superblock, mounted on a fresh directory, and unmounted again (lazily
//! when busy) with the directory removed when the guard goes away, even on an error path.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

/// Why a partition cannot be mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The superblock cannot be read.
    #[error("cannot read the filesystem superblock of {device}")]
    Probe {
        /// The partition's device node.
        device: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The partition holds no ext2/3/4 or FAT filesystem.
    #[error(
        "{device} holds no ext2/3/4 or FAT filesystem the installer can mount; \
         check that this is the partition you meant"
    )]
    UnknownFilesystem {
        /// The partition's device node.
        device: PathBuf,
    },
    /// The temporary mount point cannot be made.
    #[error("cannot create a mount point for {device}")]
    MountPoint {
        /// The partition's device node.
        device: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The kernel lacks the filesystem's driver.
    #[error(
        "cannot mount {device}: the kernel has no {fs} driver; load its module (modules-load=) \
         or use a kernel with it built in"
    )]
    NoDriver {
        /// The partition's device node.
        device: PathBuf,
        /// The filesystem type.
        fs: &'static str,
    },
    /// mount(2) failed.
    #[error("cannot mount {device} ({fs}) on {target}")]
    Mount {
        /// The partition's device node.
        device: PathBuf,
        /// The filesystem type passed to mount(2).
        fs: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Flushing or unmounting failed.
    #[error("cannot flush or unmount {target}; data written there may be incomplete")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The filesystems the installer writes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// ext2, ext3 or ext4: the kernel's ext4 driver mounts all three.
    Ext,
    /// FAT (12, 16 or 32), as on an ESP.
    Vfat,
}

impl FsKind {
    /// The type name mount(2) takes: `ext4` or `vfat`.
    pub fn kernel_name(self) -> &'static str {
        match self {
            FsKind::Ext => "ext4",
            FsKind::Vfat => "vfat",
        }
    }
}

/// What the superblock says: the filesystem and its label (empty when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// Which filesystem it is.
    pub kind: FsKind,
    /// The filesystem label; empty when it has none.
    pub label: String,
}

/// Recognises ext2/3/4 and FAT from the first 2 KiB of `device`; `None` for anything else.
///
/// Hand-written: there is no udev or blkid in the bootkit, and the two superblock layouts
/// needed here are a handful of fixed offsets.
pub fn probe(device: &Path) -> Result<Option<Filesystem>, MountError> {
    let mut head = Vec::with_capacity(2048);
    File::open(device)
        .and_then(|file| file.take(2048).read_to_end(&mut head))
        .map_err(|source| MountError::Probe {
            device: device.to_owned(),
            source,
        })?;
    Ok(probe_ext(&head).or_else(|| probe_vfat(&head)))
}

fn probe_ext(head: &[u8]) -> Option<Filesystem> {
    // The superblock starts at byte 1024: magic 0xEF53 at +56, volume name (16 bytes) at +120.
    let magic = head.get(1080..1082)?;
    if magic != [0x53, 0xEF] {
        return None;
    }
    Some(Filesystem {
        kind: FsKind::Ext,
        label: label_text(head.get(1144..1160)?, &[0]),
    })
}

fn probe_vfat(head: &[u8]) -> Option<Filesystem> {
    // A FAT boot sector ends with 55 AA and names its type in the extended BPB: FAT12/16 at
    // byte 54 with the label at 43, FAT32 at byte 82 with the label at 71.
    if head.get(510..512)? != [0x55, 0xAA] {
        return None;
    }
    let label_at = if head.get(82..87)? == b"FAT32" {
        71
    } else if head.get(54..57)? == b"FAT" {
        43
    } else {
        return None;
    };
    let label = label_text(head.get(label_at..label_at + 11)?, &[0, b' ']);
    Some(Filesystem {
        kind: FsKind::Vfat,
        // mkfs.vfat writes this placeholder when no label is given.
        label: if label == "NO NAME" {
            String::new()
        } else {
            label
        },
    })
}

fn label_text(bytes: &[u8], padding: &[u8]) -> String {
    let end = bytes
        .iter()
        .rposition(|b| !padding.contains(b))
        .map_or(0, |last| last + 1);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A filesystem mounted read-write on a temporary directory; unmounted on drop.
#[derive(Debug)]
pub struct Mounted {
    device: PathBuf,
    target: PathBuf,
    filesystem: Filesystem,
    mounted: bool,
}

impl Mounted {
    /// Mounts `device` read-write on a new directory under the temporary directory.
    pub fn new(device: &Path) -> Result<Self, MountError> {
        let filesystem = probe(device)?.ok_or_else(|| MountError::UnknownFilesystem {
            device: device.to_owned(),
        })?;
        // Kept, not a TempDir: TempDir deletes recursively on drop, which would wipe the
        // mounted filesystem's contents if unmounting failed.
        let target = tempfile::Builder::new()
            .prefix("bootkit-mnt-")
            .tempdir()
            .map_err(|source| MountError::MountPoint {
                device: device.to_owned(),
                source,
            })?
            .keep();
        let fs = filesystem.kind.kernel_name();
        if let Err(error) = rustix::mount::mount(device, &target, fs, MountFlags::empty(), None) {
            let _ = std::fs::remove_dir(&target);
            let device = device.to_owned();
            return Err(match error {
                rustix::io::Errno::NODEV => MountError::NoDriver { device, fs },
                _ => MountError::Mount {
                    device,
                    fs,
                    target,
                    source: error.into(),
                },
            });
        }
        Ok(Self {
            device: device.to_owned(),
            target,
            filesystem,
            mounted: true,
        })
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// The partition's device node.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// What the superblock said.
    pub fn filesystem(&self) -> &Filesystem {
        &self.filesystem
    }

    /// Flushes the filesystem and unmounts it, reporting what the drop would only try.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.mounted = false;
        let result = sync_and_unmount(&self.target);
        if result.is_ok() {
            let _ = std::fs::remove_dir(&self.target);
        }
        result.map_err(|source| MountError::Unmount {
            target: self.target.clone(),
            source,
        })
    }
}

/// Unmount attempts while the kernel answers busy: a descriptor can be held for a moment
/// by something else (a prober, a child process between fork and exec), 50 ms apart.
const UNMOUNT_ATTEMPTS: u32 = 20;
const UNMOUNT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

fn sync_and_unmount(target: &Path) -> std::io::Result<()> {
    rustix::fs::syncfs(File::open(target)?)?;
    let mut attempt = 1;
    loop {
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Err(rustix::io::Errno::BUSY) if attempt < UNMOUNT_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(UNMOUNT_RETRY_DELAY);
            }
            result => return Ok(result?),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        if sync_and_unmount(&self.target).is_err() {
            // Busy (a file still open): detach now, the kernel finishes when it is closed.
            let _ = rustix::mount::unmount(&self.target, UnmountFlags::DETACH);
        }
        // Not remove_dir_all: if the unmount failed, the directory is the filesystem's root.
        let _ = std::fs::remove_dir(&self.target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A filesystem image made by the real mkfs tool in a temporary file.
    fn made_by(mkfs: &str, args: &[&str], size_mib: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        File::create(&image)
            .unwrap()
            .set_len(size_mib << 20)
            .unwrap();
        let status = Command::new(mkfs).args(args).arg(&image).output().unwrap();
        assert!(status.status.success(), "{mkfs} failed: {status:?}");
        (dir, image)
    }

    #[test]
    fn ext4_made_by_mkfs_is_recognised_with_its_label() {
        let (_dir, image) = made_by("mkfs.ext4", &["-q", "-F", "-L", "BOOTKIT-DATA"], 8);
        let fs = probe(&image).unwrap().unwrap();
        assert_eq!(
            fs,
            Filesystem {
                kind: FsKind::Ext,
                label: "BOOTKIT-DATA".into()
            }
        );
    }

    #[test]
    fn fat32_and_fat16_made_by_mkfs_are_recognised_with_their_labels() {
        let (_dir, fat32) = made_by("mkfs.vfat", &["-F", "32", "-n", "BOOTKITDATA"], 64);
        assert_eq!(
            probe(&fat32).unwrap().unwrap(),
            Filesystem {
                kind: FsKind::Vfat,
                label: "BOOTKITDATA".into()
            }
        );
        let (_dir, fat16) = made_by("mkfs.vfat", &["-F", "16"], 16);
        assert_eq!(
            probe(&fat16).unwrap().unwrap(),
            Filesystem {
                kind: FsKind::Vfat,
                label: String::new()
            }
        );
    }

    #[test]
    fn zeros_and_short_devices_are_no_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = dir.path().join("zeros");
        std::fs::write(&zeros, [0u8; 4096]).unwrap();
        assert_eq!(probe(&zeros).unwrap(), None);
        let short = dir.path().join("short");
        std::fs::write(&short, [0u8; 100]).unwrap();
        assert_eq!(probe(&short).unwrap(), None);
        assert!(matches!(
            Mounted::new(&zeros).unwrap_err(),
            MountError::UnknownFilesystem { .. }
        ));
    }
}
