//! A fake sysfs block tree for tests (feature `test-support`), laid out like the kernel's:
//! `/sys/block/X` symlinked into the device tree, `/sys/dev/block/MAJOR:MINOR`, partitions
//! as subdirectories of their disk with `partition`, `start`, `size` and `uevent`.
//!
//! Test code: a file that cannot be written panics with its path.

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::{Sysfs, partition_name};

/// A sysfs tree being built in a directory (usually `<tempdir>/sys`).
pub struct FakeSysfs {
    root: PathBuf,
    next_minor: Cell<u32>,
}

impl FakeSysfs {
    /// An empty tree at `root` (created, with `block/` and `dev/block/`).
    pub fn new(root: impl Into<PathBuf>) -> FakeSysfs {
        let sysfs = FakeSysfs {
            root: root.into(),
            next_minor: Cell::new(0),
        };
        for dir in ["block", "dev/block"] {
            create_dir(&sysfs.path(dir));
        }
        sysfs
    }

    /// The tree, for the readers.
    pub fn sysfs(&self) -> Sysfs {
        Sysfs::at(&self.root)
    }

    /// `relative` inside the tree.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// A disk named `name` (a virtual device of 1 GiB until told otherwise), written by
    /// [`FakeDisk::add`].
    pub fn disk(&self, name: &str) -> FakeDisk<'_> {
        FakeDisk {
            sysfs: self,
            name: name.to_string(),
            attachment: Attachment::Virtual,
            size_bytes: 1 << 30,
            sectors: (512, 512),
            removable: false,
            read_only: false,
            rotational: None,
            vendor: None,
            model: None,
            serial: None,
            vpd_serial: None,
            wwid: None,
            partitions: 0,
            labels: Vec::new(),
            holders: Vec::new(),
        }
    }

    fn write(&self, relative: &str, content: impl AsRef<[u8]>) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            create_dir(parent);
        }
        fs::write(&path, content).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    }

    fn link(&self, target: &str, link: &str) {
        let (target, link) = (self.path(target), self.path(link));
        symlink(&target, &link).unwrap_or_else(|error| panic!("{}: {error}", link.display()));
    }
}

fn create_dir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attachment {
    Sata,
    Usb,
    Scsi,
    VirtioScsi,
    Nvme,
    Virtio,
    Virtual,
}

/// A disk to be added to a [`FakeSysfs`]; each method sets one attribute.
pub struct FakeDisk<'a> {
    sysfs: &'a FakeSysfs,
    name: String,
    attachment: Attachment,
    size_bytes: u64,
    sectors: (u32, u32),
    removable: bool,
    read_only: bool,
    rotational: Option<bool>,
    vendor: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    vpd_serial: Option<String>,
    wwid: Option<String>,
    partitions: u32,
    labels: Vec<(u32, String)>,
    holders: Vec<(Option<u32>, String)>,
}

impl FakeDisk<'_> {
    /// A SATA disk: a SCSI disk below an `ata1` port.
    pub fn sata(mut self) -> Self {
        self.attachment = Attachment::Sata;
        self
    }
    /// A USB disk: a SCSI disk below a USB host.
    pub fn usb(mut self) -> Self {
        self.attachment = Attachment::Usb;
        self
    }
    /// A SCSI disk on a plain host adapter.
    pub fn scsi(mut self) -> Self {
        self.attachment = Attachment::Scsi;
        self
    }
    /// A SCSI disk on a virtio-scsi host adapter (QEMU's `virtio-scsi-pci`).
    pub fn virtio_scsi(mut self) -> Self {
        self.attachment = Attachment::VirtioScsi;
        self
    }
    /// An NVMe namespace below its controller.
    pub fn nvme(mut self) -> Self {
        self.attachment = Attachment::Nvme;
        self
    }
    /// A virtio-blk disk.
    pub fn virtio(mut self) -> Self {
        self.attachment = Attachment::Virtio;
        self
    }
    /// Capacity in GiB.
    pub fn size_gib(mut self, gib: u64) -> Self {
        self.size_bytes = gib << 30;
        self
    }
    /// Capacity in bytes (a multiple of 512: sysfs counts 512-byte units).
    pub fn size_bytes(mut self, bytes: u64) -> Self {
        self.size_bytes = bytes;
        self
    }
    /// Logical and physical sector sizes in bytes.
    pub fn sectors(mut self, logical: u32, physical: u32) -> Self {
        self.sectors = (logical, physical);
        self
    }
    /// The kernel's `removable` flag set.
    pub fn removable(mut self) -> Self {
        self.removable = true;
        self
    }
    /// The kernel's `ro` flag set.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    /// `queue/rotational` written (absent otherwise).
    pub fn rotational(mut self, rotational: bool) -> Self {
        self.rotational = Some(rotational);
        self
    }
    /// `device/vendor`.
    pub fn vendor(mut self, vendor: &str) -> Self {
        self.vendor = Some(vendor.to_string());
        self
    }
    /// `device/model`.
    pub fn model(mut self, model: &str) -> Self {
        self.model = Some(model.to_string());
        self
    }
    /// A serial where the driver puts it: `serial` for virtio, `device/serial` otherwise.
    pub fn serial(mut self, serial: &str) -> Self {
        self.serial = Some(serial.to_string());
        self
    }
    /// A serial in VPD page 0x80 only (`device/vpd_pg80`), as SATA and SCSI disks have it.
    pub fn serial_vpd(mut self, serial: &str) -> Self {
        self.vpd_serial = Some(serial.to_string());
        self
    }
    /// A WWID where the driver puts it: `wwid` for NVMe, `device/wwid` otherwise.
    pub fn wwid(mut self, wwid: &str) -> Self {
        self.wwid = Some(wwid.to_string());
        self
    }
    /// `count` partitions, numbered from 1, 1 MiB each.
    pub fn partitions(mut self, count: u32) -> Self {
        self.partitions = count;
        self
    }
    /// Partition `number` has the GPT name `label` (uevent `PARTNAME`).
    pub fn partition_label(mut self, number: u32, label: &str) -> Self {
        self.labels.push((number, label.to_string()));
        self
    }
    /// `holder` (e.g. `dm-0`) holds partition `partition`, or the whole disk for `None`.
    pub fn holder(mut self, partition: Option<u32>, holder: &str) -> Self {
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

    /// Where the disk sits in the device tree, and its `device` directory with the bus its
    /// `subsystem` link names, if it has one.
    fn device_dirs(&self) -> (String, Option<(String, &'static str)>) {
        let name = &self.name;
        let scsi = |host: &str| {
            let device = format!("devices/pci0000:00/{host}/target_{name}/lun_{name}");
            (format!("{device}/block/{name}"), Some((device, "bus/scsi")))
        };
        match self.attachment {
            Attachment::Sata => scsi("0000:00:1f.2/ata1/host0"),
            Attachment::Usb => scsi("0000:00:14.0/usb2/2-1/2-1:1.0/host6"),
            Attachment::Scsi => scsi("0000:00:10.0/host2"),
            Attachment::VirtioScsi => scsi("0000:00:04.0/virtio1/host3"),
            Attachment::Nvme => {
                let device = format!("devices/pci0000:00/0000:00:1d.0/nvme/ctrl_{name}");
                (format!("{device}/{name}"), Some((device, "class/nvme")))
            }
            Attachment::Virtio => {
                let device = format!("devices/pci0000:00/0000:00:02.0/virtio_{name}");
                (
                    format!("{device}/block/{name}"),
                    Some((device, "bus/virtio")),
                )
            }
            Attachment::Virtual => (format!("devices/virtual/block/{name}"), None),
        }
    }

    /// Writes the disk, its partitions and holders into the tree.
    pub fn add(self) {
        let sysfs = self.sysfs;
        let major = self.major();
        let minor = sysfs.next_minor.get();
        sysfs.next_minor.set(minor + 16);
        let (dir, device) = self.device_dirs();
        let attribute = |relative: &str, content: &str| {
            sysfs.write(&format!("{dir}/{relative}"), format!("{content}\n"));
        };
        attribute("dev", &format!("{major}:{minor}"));
        attribute("size", &(self.size_bytes / 512).to_string());
        attribute("queue/logical_block_size", &self.sectors.0.to_string());
        attribute("queue/physical_block_size", &self.sectors.1.to_string());
        attribute("removable", if self.removable { "1" } else { "0" });
        attribute("ro", if self.read_only { "1" } else { "0" });
        let name = &self.name;
        sysfs.write(
            &format!("{dir}/uevent"),
            format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=disk\n"),
        );
        if let Some(rotational) = self.rotational {
            attribute("queue/rotational", if rotational { "1" } else { "0" });
        }
        create_dir(&sysfs.path(&format!("{dir}/holders")));
        if let Some((device_dir, subsystem)) = &device {
            create_dir(&sysfs.path(subsystem));
            sysfs.link(subsystem, &format!("{device_dir}/subsystem"));
            sysfs.link(device_dir, &format!("{dir}/device"));
        }
        if let Some(vendor) = &self.vendor {
            attribute("device/vendor", vendor);
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
            let length = u8::try_from(serial.len()).expect("a VPD serial fits in 255 bytes");
            let mut page = vec![0x00, 0x80, 0x00, length];
            page.extend_from_slice(serial.as_bytes());
            sysfs.write(&format!("{dir}/device/vpd_pg80"), page);
        }
        if let Some(wwid) = &self.wwid {
            let relative = match self.attachment {
                Attachment::Nvme => "wwid",
                _ => "device/wwid",
            };
            attribute(relative, wwid);
        }
        sysfs.link(&dir, &format!("block/{name}"));
        sysfs.link(&dir, &format!("dev/block/{major}:{minor}"));
        for number in 1..=self.partitions {
            let part_name = partition_name(name, number);
            let part_dir = format!("{dir}/{part_name}");
            let part_minor = minor + number;
            let part_attribute = |relative: &str, content: &str| {
                sysfs.write(&format!("{part_dir}/{relative}"), format!("{content}\n"));
            };
            part_attribute("partition", &number.to_string());
            part_attribute("dev", &format!("{major}:{part_minor}"));
            part_attribute("start", &(2048 * u64::from(number)).to_string());
            part_attribute("size", "2048");
            let mut uevent = format!(
                "MAJOR={major}\nMINOR={part_minor}\nDEVNAME={part_name}\nDEVTYPE=partition\nPARTN={number}\n"
            );
            if let Some((_, label)) = self.labels.iter().find(|(n, _)| *n == number) {
                uevent.push_str(&format!("PARTNAME={label}\n"));
            }
            sysfs.write(&format!("{part_dir}/uevent"), uevent);
            create_dir(&sysfs.path(&format!("{part_dir}/holders")));
            sysfs.link(&part_dir, &format!("dev/block/{major}:{part_minor}"));
        }
        for (partition, holder) in &self.holders {
            let holder_dir = format!("devices/virtual/block/{holder}");
            create_dir(&sysfs.path(&holder_dir));
            let holders = match partition {
                Some(number) => format!("{dir}/{}/holders", partition_name(name, *number)),
                None => format!("{dir}/holders"),
            };
            sysfs.link(&holder_dir, &format!("{holders}/{holder}"));
        }
    }
}
