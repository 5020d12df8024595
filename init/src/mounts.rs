//! Early filesystem setup as a table, u-root's and kata-agent's way: what to mount is data,
//! one loop mounts it, and every mount says whether the boot can go on without it.

use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use rustix::mount::{MountFlags, mount};

/// When a table entry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    /// Only when this path exists (efivarfs only on UEFI machines).
    PathExists(&'static str),
}

/// One early mount.
#[derive(Debug, Clone, Copy)]
pub struct MountSpec {
    fstype: &'static str,
    target: &'static str,
    flags: MountFlags,
    data: &'static CStr,
    /// Without it the boot cannot continue.
    required: bool,
    condition: Condition,
}

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);

/// The early mounts, in order (each target lives on a filesystem mounted above it).
const EARLY_MOUNTS: &[MountSpec] = &[
    MountSpec {
        fstype: "proc",
        target: "/proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: c"",
        required: true,
        condition: Condition::Always,
    },
    MountSpec {
        fstype: "sysfs",
        target: "/sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: c"",
        required: true,
        condition: Condition::Always,
    },
    MountSpec {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MountFlags::NOSUID,
        data: c"mode=0755",
        required: true,
        condition: Condition::Always,
    },
    // A private devpts instance: ptys of the bootkit are not shared with whatever mounted the
    // initial instance.
    MountSpec {
        fstype: "devpts",
        target: "/dev/pts",
        flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
        data: c"newinstance,ptmxmode=0666,mode=0620,gid=5",
        required: false,
        condition: Condition::Always,
    },
    MountSpec {
        fstype: "tmpfs",
        target: "/dev/shm",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: c"mode=1777",
        required: false,
        condition: Condition::Always,
    },
    MountSpec {
        fstype: "tmpfs",
        target: "/run",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: c"mode=0755",
        required: true,
        condition: Condition::Always,
    },
    MountSpec {
        fstype: "cgroup2",
        target: "/sys/fs/cgroup",
        flags: NOSUID_NODEV_NOEXEC,
        data: c"nsdelegate",
        required: false,
        condition: Condition::Always,
    },
    MountSpec {
        fstype: "efivarfs",
        target: "/sys/firmware/efi/efivars",
        flags: NOSUID_NODEV_NOEXEC,
        data: c"",
        required: false,
        condition: Condition::PathExists("/sys/firmware/efi"),
    },
];

#[derive(Debug, thiserror::Error)]
#[error("cannot mount {fstype} on {target}")]
pub struct MountError {
    pub fstype: &'static str,
    pub target: &'static str,
    #[source]
    pub source: io::Error,
}

/// What the early setup did, for the log.
#[derive(Debug, Default)]
pub struct MountReport {
    pub mounted: Vec<&'static str>,
    /// Optional mounts that failed, with the reason.
    pub skipped: Vec<String>,
    /// Optional mounts whose filesystem the kernel did not know yet (ENODEV): their module
    /// (efivarfs is one in Debian's kernels) may be in the image; [`mount_after_modules`]
    /// tries them again once the modules are loaded.
    pub waiting_for_modules: Vec<&'static MountSpec>,
}

/// Mount the early filesystems. Fails only when a required one cannot be mounted.
pub fn setup_early() -> Result<MountReport, MountError> {
    let mut report = MountReport::default();
    for spec in EARLY_MOUNTS {
        if let Condition::PathExists(path) = spec.condition
            && !Path::new(path).exists()
        {
            continue;
        }
        match mount_one(spec) {
            Ok(()) => report.mounted.push(spec.target),
            Err(source) if spec.required => {
                return Err(MountError {
                    fstype: spec.fstype,
                    target: spec.target,
                    source,
                });
            }
            Err(source) if source.raw_os_error() == Some(libc::ENODEV) => {
                report.waiting_for_modules.push(spec)
            }
            Err(source) => report.skipped.push(describe_failure(spec, &source)),
        }
    }
    if report.mounted.contains(&"/dev/pts") {
        point_ptmx_at_private_devpts();
    }
    Ok(report)
}

/// Mount what [`setup_early`] could not for want of a filesystem module; returns the mounts
/// that still failed, with the reason.
pub fn mount_after_modules(specs: &[&'static MountSpec]) -> Vec<String> {
    specs
        .iter()
        .filter_map(|spec| {
            mount_one(spec)
                .err()
                .map(|source| describe_failure(spec, &source))
        })
        .collect()
}

fn describe_failure(spec: &MountSpec, source: &io::Error) -> String {
    format!("{} on {}: {source}", spec.fstype, spec.target)
}

fn mount_one(spec: &MountSpec) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(spec.target)?;
    match mount(spec.fstype, spec.target, spec.fstype, spec.flags, spec.data) {
        Ok(()) => Ok(()),
        // The kernel (CONFIG_DEVTMPFS_MOUNT) or a previous stage mounted it already.
        Err(rustix::io::Errno::BUSY) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// With a `newinstance` devpts, /dev/ptmx must lead to that instance's ptmx, not to the
/// initial one devtmpfs created.
fn point_ptmx_at_private_devpts() {
    let _ = fs::remove_file("/dev/ptmx");
    if let Err(err) = std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx") {
        crate::warn!(
            "mounts",
            "cannot link /dev/ptmx to pts/ptmx: {err}; ptys may not work"
        );
    }
}

/// Put stdin, stdout and stderr on /dev/console, so that every line reaches the console
/// whatever the kernel handed us.
pub fn attach_console() -> io::Result<()> {
    let console = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")?;
    rustix::stdio::dup2_stdin(&console)?;
    rustix::stdio::dup2_stdout(&console)?;
    rustix::stdio::dup2_stderr(&console)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_mounts_parents_before_children() {
        for (index, spec) in EARLY_MOUNTS.iter().enumerate() {
            for later in &EARLY_MOUNTS[index + 1..] {
                assert!(
                    !spec.target.starts_with(&format!("{}/", later.target)),
                    "{} is mounted before its parent {}",
                    spec.target,
                    later.target
                );
            }
        }
    }

    #[test]
    fn the_table_has_what_the_bootkit_needs() {
        let required: Vec<_> = EARLY_MOUNTS
            .iter()
            .filter(|spec| spec.required)
            .map(|spec| spec.target)
            .collect();
        assert_eq!(required, ["/proc", "/sys", "/dev", "/run"]);
        let devpts = EARLY_MOUNTS.iter().find(|s| s.fstype == "devpts").unwrap();
        let data = devpts.data.to_string_lossy();
        assert!(data.contains("newinstance") && data.contains("ptmxmode"));
        assert!(EARLY_MOUNTS.iter().any(|s| s.fstype == "cgroup2"));
        let efivarfs = EARLY_MOUNTS
            .iter()
            .find(|s| s.fstype == "efivarfs")
            .unwrap();
        assert_eq!(
            efivarfs.condition,
            Condition::PathExists("/sys/firmware/efi")
        );
    }
}
