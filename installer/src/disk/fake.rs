//! A fake machine for unit tests: a sysfs, /dev and /proc tree in a temporary directory, laid
//! out like the kernel's (symlinked `/sys/block/X` into the device tree, `/sys/dev/block`).

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{Disk, SystemRoot};

pub(crate) struct FakeMachine {
    dir: TempDir,
    next_minor: Cell<u32>,
}

impl FakeMachine {
    pub(crate) fn new() -> FakeMachine {
        let machine = FakeMachine {
            dir: tempfile::tempdir().unwrap(),
            next_minor: Cell::new(0),
        };
        for dir in ["sys/block", "sys/dev/block", "dev", "proc/self"] {
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

    pub(crate) fn disk(&self, name: &str) -> FakeDisk<'_> {
        FakeDisk {
            machine: self,
            name: name.to_string(),
            attachment: Attachment::Virtual,
            size_bytes: 1 << 30,
            sectors: (512, 512),
            removable: false,
            read_only: false,
            model: None,
            serial: None,
            vpd_serial: None,
            wwid: None,
            partitions: 0,
            holders: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attachment {
    Sata,
    Usb,
    Scsi,
    Nvme,
    Virtio,
    Virtual,
}

pub(crate) struct FakeDisk<'a> {
    machine: &'a FakeMachine,
    name: String,
    attachment: Attachment,
    size_bytes: u64,
    sectors: (u32, u32),
    removable: bool,
    read_only: bool,
    model: Option<String>,
    serial: Option<String>,
    vpd_serial: Option<String>,
    wwid: Option<String>,
    partitions: u32,
    holders: Vec<(Option<u32>, String)>,
}

impl FakeDisk<'_> {
    pub(crate) fn sata(mut self) -> Self {
        self.attachment = Attachment::Sata;
        self
    }
    pub(crate) fn usb(mut self) -> Self {
        self.attachment = Attachment::Usb;
        self
    }
    pub(crate) fn scsi(mut self) -> Self {
        self.attachment = Attachment::Scsi;
        self
    }
    pub(crate) fn nvme(mut self) -> Self {
        self.attachment = Attachment::Nvme;
        self
    }
    pub(crate) fn virtio(mut self) -> Self {
        self.attachment = Attachment::Virtio;
        self
    }
    pub(crate) fn size_gib(mut self, gib: u64) -> Self {
        self.size_bytes = gib << 30;
        self
    }
    pub(crate) fn size_bytes(mut self, bytes: u64) -> Self {
        self.size_bytes = bytes;
        self
    }
    pub(crate) fn sectors(mut self, logical: u32, physical: u32) -> Self {
        self.sectors = (logical, physical);
        self
    }
    pub(crate) fn removable(mut self) -> Self {
        self.removable = true;
        self
    }
    pub(crate) fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    pub(crate) fn model(mut self, model: &str) -> Self {
        self.model = Some(model.to_string());
        self
    }
    pub(crate) fn serial(mut self, serial: &str) -> Self {
        self.serial = Some(serial.to_string());
        self
    }
    pub(crate) fn serial_vpd(mut self, serial: &str) -> Self {
        self.vpd_serial = Some(serial.to_string());
        self
    }
    pub(crate) fn wwid(mut self, wwid: &str) -> Self {
        self.wwid = Some(wwid.to_string());
        self
    }
    pub(crate) fn partitions(mut self, count: u32) -> Self {
        self.partitions = count;
        self
    }
    /// `holder` (e.g. `dm-0`) holds partition `partition`, or the whole disk for `None`.
    pub(crate) fn holder(mut self, partition: Option<u32>, holder: &str) -> Self {
        self.holders.push((partition, holder.to_string()));
        self
    }

    fn major(&self) -> u32 {
        const MAJORS: [(&str, u32); 6] = [
            ("sd", 8),
            ("vd", 254),
            ("nvme", 259),
            ("loop", 7),
            ("zram", 252),
            ("sr", 11),
        ];
        MAJORS
            .iter()
            .find(|(prefix, _)| self.name.starts_with(prefix))
            .map_or(253, |(_, major)| *major)
    }

    /// Where the disk sits in the device tree, and its `device` directory if it has one.
    fn device_dirs(&self) -> (String, Option<(String, &'static str)>) {
        let name = &self.name;
        let scsi = |host: &str| {
            let device = format!("sys/devices/pci0000:00/{host}/target_{name}/lun_{name}");
            (format!("{device}/block/{name}"), Some((device, "bus/scsi")))
        };
        match self.attachment {
            Attachment::Sata => scsi("0000:00:1f.2/ata1/host0"),
            Attachment::Usb => scsi("0000:00:14.0/usb2/2-1/2-1:1.0/host6"),
            Attachment::Scsi => scsi("0000:00:10.0/host2"),
            Attachment::Nvme => {
                let device = format!("sys/devices/pci0000:00/0000:00:1d.0/nvme/ctrl_{name}");
                (format!("{device}/{name}"), Some((device, "class/nvme")))
            }
            Attachment::Virtio => {
                let device = format!("sys/devices/pci0000:00/0000:00:02.0/virtio_{name}");
                (
                    format!("{device}/block/{name}"),
                    Some((device, "bus/virtio")),
                )
            }
            Attachment::Virtual => (format!("sys/devices/virtual/block/{name}"), None),
        }
    }

    pub(crate) fn add(self) {
        let machine = self.machine;
        let major = self.major();
        let minor = machine.next_minor.get();
        machine.next_minor.set(minor + 16);
        let (dir, device) = self.device_dirs();
        let attribute = |relative: &str, content: &str| {
            machine.write(&format!("{dir}/{relative}"), format!("{content}\n"));
        };
        attribute("dev", &format!("{major}:{minor}"));
        attribute("size", &(self.size_bytes / 512).to_string());
        attribute("queue/logical_block_size", &self.sectors.0.to_string());
        attribute("queue/physical_block_size", &self.sectors.1.to_string());
        attribute("removable", if self.removable { "1" } else { "0" });
        attribute("ro", if self.read_only { "1" } else { "0" });
        fs::create_dir_all(machine.path(&format!("{dir}/holders"))).unwrap();
        if let Some((device_dir, subsystem)) = &device {
            fs::create_dir_all(machine.path(&format!("sys/{subsystem}"))).unwrap();
            symlink(
                machine.path(&format!("sys/{subsystem}")),
                machine.path(&format!("{device_dir}/subsystem")),
            )
            .unwrap();
            symlink(
                machine.path(device_dir),
                machine.path(&format!("{dir}/device")),
            )
            .unwrap();
        }
        if let Some(model) = &self.model {
            attribute("device/model", model);
        }
        if let Some(serial) = &self.serial {
            let relative = match self.attachment {
                Attachment::Virtio => "serial",
                _ => "device/serial",
            };
            attribute(relative, serial);
        }
        if let Some(serial) = &self.vpd_serial {
            let mut page = vec![0x00, 0x80, 0x00, u8::try_from(serial.len()).unwrap()];
            page.extend_from_slice(serial.as_bytes());
            machine.write(&format!("{dir}/device/vpd_pg80"), page);
        }
        if let Some(wwid) = &self.wwid {
            let relative = match self.attachment {
                Attachment::Nvme => "wwid",
                _ => "device/wwid",
            };
            attribute(relative, wwid);
        }
        symlink(
            machine.path(&dir),
            machine.path(&format!("sys/block/{}", self.name)),
        )
        .unwrap();
        symlink(
            machine.path(&dir),
            machine.path(&format!("sys/dev/block/{major}:{minor}")),
        )
        .unwrap();
        for number in 1..=self.partitions {
            let part_name = super::partition_path(Path::new(&self.name), number)
                .to_string_lossy()
                .into_owned();
            let part_dir = format!("{dir}/{part_name}");
            let part_minor = minor + number;
            machine.write(&format!("{part_dir}/partition"), format!("{number}\n"));
            machine.write(
                &format!("{part_dir}/dev"),
                format!("{major}:{part_minor}\n"),
            );
            fs::create_dir_all(machine.path(&format!("{part_dir}/holders"))).unwrap();
            symlink(
                machine.path(&part_dir),
                machine.path(&format!("sys/dev/block/{major}:{part_minor}")),
            )
            .unwrap();
        }
        for (partition, holder) in &self.holders {
            let holder_dir = machine.path(&format!("sys/devices/virtual/block/{holder}"));
            fs::create_dir_all(&holder_dir).unwrap();
            let holders = match partition {
                Some(number) => {
                    let part_name = super::partition_path(Path::new(&self.name), *number);
                    format!("{dir}/{}/holders", part_name.display())
                }
                None => format!("{dir}/holders"),
            };
            symlink(holder_dir, machine.path(&format!("{holders}/{holder}"))).unwrap();
        }
    }
}
