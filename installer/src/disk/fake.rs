//! A fake machine for unit tests: a sysfs, /dev and /proc tree in a temporary directory. The
//! sysfs block tree is the shared one (`bootkit_common::blockdev::fake`); /dev, /proc and
//! efivarfs are the installer's own.

use std::fs;
use std::path::PathBuf;

use bootkit_common::blockdev::fake::FakeSysfs;
use tempfile::TempDir;

use super::{Disk, SystemRoot};

pub(crate) use bootkit_common::blockdev::fake::FakeDisk;

pub(crate) struct FakeMachine {
    dir: TempDir,
    sysfs: FakeSysfs,
}

impl FakeMachine {
    pub(crate) fn new() -> FakeMachine {
        let dir = tempfile::tempdir().unwrap();
        let sysfs = FakeSysfs::new(dir.path().join("sys"));
        let machine = FakeMachine { dir, sysfs };
        for dir in ["dev", "proc/self"] {
            fs::create_dir_all(machine.path(dir)).unwrap();
        }
        machine.mounts("");
        machine.swaps("");
        machine
    }

    pub(crate) fn root(&self) -> SystemRoot {
        SystemRoot::under(self.dir.path())
    }

    /// The disk `name` as [`SystemRoot::list`] reads it.
    pub(crate) fn listed(&self, name: &str) -> Disk {
        let disks = self.root().list().unwrap();
        disks.into_iter().find(|disk| disk.name == name).unwrap()
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, content: impl AsRef<[u8]>) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// `/proc/self/mountinfo` lines after the usual first fields are filled in: each entry is
    /// (major:minor, mount point, source).
    pub(crate) fn mounts(&self, lines: &str) {
        self.write("proc/self/mountinfo", lines);
    }

    /// `/proc/swaps` rows (without the header).
    pub(crate) fn swaps(&self, rows: &str) {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        self.write("proc/swaps", format!("{header}{rows}"));
    }

    pub(crate) fn efi_variable(&self, name: &str, content: &[u8]) {
        self.write(&format!("sys/firmware/efi/efivars/{name}"), content);
    }

    /// A block device node in the fake /dev (needs root, like the installer).
    pub(crate) fn device_node(&self, name: &str, major: u32, minor: u32) -> PathBuf {
        let path = self.path(&format!("dev/{name}"));
        let device = rustix::fs::makedev(major, minor);
        nix::sys::stat::mknod(
            &path,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            device,
        )
        .unwrap();
        path
    }

    /// A file standing for the disk's device node, e.g. holding a GPT.
    pub(crate) fn device_file(&self, name: &str, content: &[u8]) -> PathBuf {
        self.write(&format!("dev/{name}"), content);
        self.path(&format!("dev/{name}"))
    }

    /// A disk in the fake sysfs, written by its `add()`.
    pub(crate) fn disk(&self, name: &str) -> FakeDisk<'_> {
        self.sysfs.disk(name)
    }
}
