//! One whole disk as sysfs describes it.

use std::fs;
use std::path::{Path, PathBuf};

use super::attribute::{device_number, flag, link_name, number, optional};
use super::{BlockDevError, Transport};

/// A whole disk from `/sys/block`: what identifies it, its geometry and how it is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDisk {
    /// Kernel name: `sda`, `nvme0n1`, `vda`, `loop3`.
    pub name: String,
    /// The disk's directory in sysfs, symlinks resolved (below `/sys/devices`).
    pub sys_path: PathBuf,
    /// Device number, major part (`8` for `sda`).
    pub major: u32,
    /// Device number, minor part.
    pub minor: u32,
    /// Capacity in bytes (sysfs `size` counts 512-byte units whatever the sector size).
    pub size_bytes: u64,
    /// Bytes per logical sector: the unit of LBAs and of a partition table on the disk.
    pub logical_sector_size: u32,
    /// Bytes per physical sector (4096 on Advanced Format drives that show 512 logically).
    pub physical_sector_size: u32,
    /// The kernel's `removable` flag: media that can be taken out (card readers, some sticks).
    pub removable: bool,
    /// The kernel's `ro` flag: writes are refused.
    pub read_only: bool,
    /// `queue/rotational`: spinning platters (`Some(true)`), flash (`Some(false)`).
    pub rotational: Option<bool>,
    /// How the disk is attached ([`Transport::of`]).
    pub transport: Transport,
    /// `device/vendor` when it is a name (`ATA`, `SEAGATE`); virtio's numeric vendor id
    /// (`0x1af4`) is left out.
    pub vendor: Option<String>,
    /// `device/model`, trimmed.
    pub model: Option<String>,
    /// The serial number: `serial` (virtio), `device/serial` (NVMe, some SCSI), else VPD page
    /// 0x80 (SATA, SCSI, USB).
    pub serial: Option<String>,
    /// World Wide Name / WWID as the kernel reports it (`naa.5000c500…`, `eui.0025…`).
    pub wwn: Option<String>,
}

/// Reads disk `name` whose `/sys/block` entry is `link`; `sys_root` (symlinks resolved) is
/// cut off the device path before the transport rule looks at it.
pub(super) fn read(sys_root: &Path, link: &Path, name: &str) -> Result<BlockDisk, BlockDevError> {
    let sys_path = fs::canonicalize(link).map_err(|source| BlockDevError::Read {
        path: link.to_path_buf(),
        source,
    })?;
    let (major, minor) = device_number(&sys_path)?;
    let size_path = sys_path.join("size");
    let sectors: u64 = number(&sys_path, "size")?;
    let size_bytes = sectors
        .checked_mul(512)
        .ok_or_else(|| BlockDevError::Parse {
            path: size_path,
            content: sectors.to_string(),
        })?;
    let device_path = sys_path.strip_prefix(sys_root).unwrap_or(&sys_path);
    let subsystem = link_name(&sys_path.join("device/subsystem"));
    Ok(BlockDisk {
        name: name.to_string(),
        major,
        minor,
        size_bytes,
        logical_sector_size: number(&sys_path, "queue/logical_block_size")?,
        physical_sector_size: number(&sys_path, "queue/physical_block_size")?,
        removable: flag(&sys_path, "removable")?,
        read_only: flag(&sys_path, "ro")?,
        rotational: optional(&sys_path, "queue/rotational").map(|value| value != "0"),
        transport: Transport::of(
            name,
            &format!("/{}", device_path.display()),
            subsystem.as_deref(),
        ),
        vendor: optional(&sys_path, "device/vendor").filter(|vendor| !vendor.starts_with("0x")),
        model: optional(&sys_path, "device/model"),
        serial: optional(&sys_path, "serial")
            .or_else(|| optional(&sys_path, "device/serial"))
            .or_else(|| {
                fs::read(sys_path.join("device/vpd_pg80"))
                    .ok()
                    .and_then(|page| vpd_serial(&page))
            }),
        wwn: optional(&sys_path, "wwid")
            .or_else(|| optional(&sys_path, "device/wwid"))
            .or_else(|| optional(&sys_path, "device/wwn")),
        sys_path,
    })
}

/// The serial number in VPD page 0x80 (Unit Serial Number) of a SCSI, SATA or USB disk: a
/// 4-byte header whose byte 3 is the length, then the serial in ASCII, space padded.
fn vpd_serial(page: &[u8]) -> Option<String> {
    let length = usize::from(*page.get(3)?);
    let serial = page.get(4..4 + length)?;
    let serial = String::from_utf8_lossy(serial).trim().to_string();
    (!serial.is_empty()).then_some(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpd_page_80_gives_the_serial_without_padding() {
        let mut page = vec![0x00, 0x80, 0x00, 12];
        page.extend_from_slice(b"  S3Z9NB0K  ");
        assert_eq!(vpd_serial(&page).as_deref(), Some("S3Z9NB0K"));
        assert_eq!(
            vpd_serial(&[0x00, 0x80, 0x00, 4, b' ', b' ', b' ', b' ']),
            None
        );
        assert_eq!(
            vpd_serial(&[0x00, 0x80, 0x00, 9, b'X']),
            None,
            "truncated page"
        );
        assert_eq!(vpd_serial(&[0x00, 0x80]), None);
    }
}
