//! How a disk is attached: the one answer the installer, hwinfo and device discovery give.

use std::fmt;

/// How a disk is attached (its bus), or what kind of virtual device it is.
///
/// [`Display`](fmt::Display) gives the short lowercase name machines exchange (hwinfo's
/// `controller`, the Tinkerbell `controller_type`), in the spirit of lsblk's `TRAN` column;
/// [`Transport::label`] gives the name people read in the installer's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// An NVMe namespace.
    Nvme,
    /// A SCSI disk below an ATA port (`ataN` in the device path): SATA or PATA.
    Sata,
    /// A SCSI disk on any other host adapter: SAS, a RAID controller, iSCSI, virtio-scsi.
    Scsi,
    /// A virtio-blk disk (`vdX`).
    Virtio,
    /// A disk below a USB host: a stick, a card reader, an external drive.
    Usb,
    /// An SD card or eMMC (`mmcblkN`).
    Mmc,
    /// A loop device over a file.
    Loop,
    /// A RAM disk (`ramN`, brd).
    Ram,
    /// A compressed RAM disk (`zramN`).
    Zram,
    /// A device-mapper device (`dm-N`: LVM, dm-crypt, multipath).
    DeviceMapper,
    /// An md software RAID array.
    Md,
    /// An optical drive (`srN`), whatever its bus.
    Optical,
    /// A network block device (`nbdN`).
    Nbd,
    /// None of the above (an unknown bus or a virtual device of another kind).
    Other,
}

impl Transport {
    /// The name people read: `SATA`, `NVMe`, `virtio`, `md RAID`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Nvme => "NVMe",
            Transport::Sata => "SATA",
            Transport::Scsi => "SCSI",
            Transport::Virtio => "virtio",
            Transport::Usb => "USB",
            Transport::Mmc => "MMC",
            Transport::Loop => "loop",
            Transport::Ram => "ram",
            Transport::Zram => "zram",
            Transport::DeviceMapper => "device-mapper",
            Transport::Md => "md RAID",
            Transport::Optical => "optical",
            Transport::Nbd => "NBD",
            Transport::Other => "other",
        }
    }

    /// The short lowercase name machines exchange: `sata`, `nvme`, `virtio`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Scsi => "scsi",
            Transport::Virtio => "virtio",
            Transport::Usb => "usb",
            Transport::Mmc => "mmc",
            Transport::Loop => "loop",
            Transport::Ram => "ram",
            Transport::Zram => "zram",
            Transport::DeviceMapper => "dm",
            Transport::Md => "md",
            Transport::Optical => "optical",
            Transport::Nbd => "nbd",
            Transport::Other => "unknown",
        }
    }

    /// The transport of disk `name` whose device directory is `device_path` (below
    /// `/sys/devices`, symlinks resolved) and whose `device/subsystem` link names
    /// `subsystem` (`scsi`, `virtio`, `nvme`).
    ///
    /// The rule: virtual devices by their kernel name; then where the device sits in the
    /// device tree, as lsblk reasons (a USB disk is a SCSI disk below a USB host, a SATA disk
    /// a SCSI disk below an `ataN` port); then the bus the disk's own device is on.
    ///
    /// A virtio-scsi disk (`sdX` on a virtio SCSI host adapter) is [`Transport::Scsi`], not
    /// virtio: the disk is a SCSI device (its `device/subsystem` is `scsi`, it speaks SCSI
    /// commands, has VPD pages and a SCSI serial), and udev says the same (`ID_BUS=scsi`,
    /// `/dev/disk/by-id/scsi-…`) while lsblk keeps `virtio` for `vdX` names only. Virtio here
    /// means virtio-blk.
    pub fn of(name: &str, device_path: &str, subsystem: Option<&str>) -> Transport {
        const BY_NAME: [(&str, Transport); 8] = [
            ("loop", Transport::Loop),
            ("zram", Transport::Zram),
            ("ram", Transport::Ram),
            ("dm-", Transport::DeviceMapper),
            ("md", Transport::Md),
            ("sr", Transport::Optical),
            ("nbd", Transport::Nbd),
            ("mmcblk", Transport::Mmc),
        ];
        if let Some((_, transport)) = BY_NAME.iter().find(|(prefix, _)| name.starts_with(prefix)) {
            return *transport;
        }
        if device_path.contains("/usb") {
            Transport::Usb
        } else if name.starts_with("nvme") || device_path.contains("/nvme") {
            Transport::Nvme
        } else if device_path.contains("/ata") {
            Transport::Sata
        } else if name.starts_with("vd") || subsystem == Some("virtio") {
            Transport::Virtio
        } else if subsystem == Some("scsi") {
            Transport::Scsi
        } else {
            Transport::Other
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_device_paths_give_their_bus() {
        let cases = [
            (
                "sda",
                "/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda",
                Some("scsi"),
                Transport::Sata,
            ),
            (
                "sdb",
                "/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb",
                Some("scsi"),
                Transport::Usb,
            ),
            (
                "sdc",
                "/devices/pci0000:00/0000:00:04.0/virtio1/host0/target0:0:0/0:0:0:0/block/sdc",
                Some("scsi"),
                Transport::Scsi,
            ),
            (
                "vda",
                "/devices/pci0000:00/0000:00:02.0/virtio0/block/vda",
                Some("virtio"),
                Transport::Virtio,
            ),
            (
                "nvme0n1",
                "/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1",
                None,
                Transport::Nvme,
            ),
            (
                "sr0",
                "/devices/pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sr0",
                Some("scsi"),
                Transport::Optical,
            ),
            (
                "loop0",
                "/devices/virtual/block/loop0",
                None,
                Transport::Loop,
            ),
            (
                "xvda",
                "/devices/vbd-51712/block/xvda",
                None,
                Transport::Other,
            ),
        ];
        for (name, path, subsystem, expected) in cases {
            assert_eq!(Transport::of(name, path, subsystem), expected, "{name}");
        }
    }

    #[test]
    fn machines_and_people_get_their_own_spelling() {
        assert_eq!(Transport::Sata.to_string(), "sata");
        assert_eq!(Transport::Sata.label(), "SATA");
        assert_eq!(Transport::Other.to_string(), "unknown");
        assert_eq!(Transport::Md.label(), "md RAID");
    }
}
