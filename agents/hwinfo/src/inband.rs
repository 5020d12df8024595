//! The attributes in the shape of Tinkerbell's Hardware `status.attributes.inBand`: upstream's
//! `Attributes` type (tinkerbell/tinkerbell `api/v1alpha1/tinkerbell/hardware.go`, shared by
//! the `outOfBand` subtree that exists there today and the `inBand` sibling it announces), with
//! its JSON names, units (bytes, Mbit/s, MHz) and nesting.
//!
//! Only what /sys and /proc tell is filled in: an absent value is left out of the document
//! (never a zero or an empty string), as upstream's `omitempty` fields are read: every `None`
//! and empty list is skipped (`skip_serializing_none`), and every field may be missing when a
//! document is read (`serde(default)`). Upstream fields this collector cannot read stay
//! absent: CPU slot and clock, memory modules, NIC vendor and firmware, SMART status, BMC and
//! PSUs (out-of-band only). Vendors and models of PCI devices are numeric ids (`8086`,
//! `10d3`): the bootkit carries no pci.ids name database.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::{AgentAttributes, PciDevice};

/// What produced the document, in upstream's `collectionMethod` ("agent" for in-band).
pub const COLLECTION_METHOD: &str = "agent";

/// Upstream's `Attributes`: one machine's hardware as observed in-band.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Attributes {
    /// When the subtree was last refreshed (RFC 3339); the receiving server sets it.
    pub last_updated: Option<String>,
    /// Always [`COLLECTION_METHOD`] here.
    pub collection_method: Option<String>,
    /// Totals and one entry per socket.
    pub cpu: Option<Cpu>,
    /// Installed and usable bytes.
    pub memory: Option<Memory>,
    /// The disks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub block_devices: Vec<BlockDevice>,
    /// The hardware NICs, one port each (upstream's in-band rule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Display controllers (PCI class 0x03).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpu_devices: Vec<GpuDevice>,
    /// Every PCI function.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pci_devices: Vec<PciFunction>,
    /// SMBIOS chassis.
    pub chassis: Option<Chassis>,
    /// SMBIOS mainboard.
    pub baseboard: Option<Baseboard>,
    /// SMBIOS firmware.
    pub bios: Option<Bios>,
    /// SMBIOS system identity.
    pub product: Option<Product>,
    /// The TPMs under /sys/class/tpm.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tpms: Vec<Tpm>,
    /// Mass storage controllers (PCI class 0x01).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_controllers: Vec<StorageController>,
}

/// Upstream's `CPU`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cpu {
    /// Physical cores over all sockets.
    pub total_cores: Option<u32>,
    /// Hardware threads over all sockets.
    pub total_threads: Option<u32>,
    /// One per physical package.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<CpuSocket>,
}

/// Upstream's `CPUSocket`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CpuSocket {
    /// `vendor_id` (x86) or `CPU implementer` (ARM).
    pub vendor: Option<String>,
    /// `model name`.
    pub model: Option<String>,
    /// Physical cores in the package.
    pub cores: Option<u32>,
    /// Logical CPUs in the package.
    pub threads: Option<u32>,
    /// CPU flags (`flags` / `Features`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// Upstream's `Memory`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Memory {
    /// Installed bytes (online memory blocks).
    pub total_bytes: Option<u64>,
    /// Bytes the kernel can hand out (MemTotal).
    pub usable_bytes: Option<u64>,
}

/// Upstream's `BlockDevice`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BlockDevice {
    /// Kernel name (`nvme0n1`).
    pub name: Option<String>,
    /// Transport, lower case (`nvme`, `sata`, `scsi`, `virtio`, `usb`, ...).
    pub controller_type: Option<String>,
    /// `HDD`, `SSD` or `ODD`; absent when the kernel does not say.
    pub drive_type: Option<String>,
    /// `device/vendor` when it is a name.
    pub vendor: Option<String>,
    /// `device/model`.
    pub model: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// World Wide Name as the kernel reports it.
    pub wwn: Option<String>,
    /// Capacity, exact bytes.
    pub size_bytes: Option<u64>,
    /// Bytes per physical sector.
    pub physical_block_size_bytes: Option<u64>,
}

/// Upstream's `NetworkInterface`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Kernel name (`eno1`).
    pub name: Option<String>,
    /// One port: the interface itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPort>,
}

/// Upstream's `NetworkPort`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NetworkPort {
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// Link speed, Mbit/s; absent while the link is down.
    pub speed_mbps: Option<u32>,
    /// MTU in bytes.
    pub mtu: Option<u32>,
    /// The kernel's `operstate` (`up`, `down`, ...).
    pub link_status: Option<String>,
}

/// Upstream's `GPUDevice`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GpuDevice {
    /// PCI vendor id (`1234`).
    pub vendor: Option<String>,
    /// PCI device id.
    pub model: Option<String>,
    /// The PCI subclass's name (`VGA compatible controller`).
    pub description: Option<String>,
    /// PCI class code, six hex digits (`030000`).
    pub class: Option<String>,
    /// Bound kernel driver.
    pub driver: Option<String>,
}

/// Upstream's `PCIDevice`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PciFunction {
    /// PCI vendor id (`8086`).
    pub vendor: Option<String>,
    /// PCI device id (`10d3`).
    pub model: Option<String>,
    /// PCI class code, six hex digits (`020000`).
    pub class: Option<String>,
    /// Bound kernel driver.
    pub driver: Option<String>,
}

/// Upstream's `Chassis`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Chassis {
    /// `chassis_vendor`.
    pub vendor: Option<String>,
    /// `chassis_serial`.
    pub serial_number: Option<String>,
}

/// Upstream's `Baseboard`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Baseboard {
    /// `board_vendor`.
    pub vendor: Option<String>,
    /// `board_name`.
    pub model: Option<String>,
    /// `board_serial`.
    pub serial_number: Option<String>,
}

/// Upstream's `BIOS`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Bios {
    /// `bios_vendor`.
    pub vendor: Option<String>,
    /// `bios_version`.
    pub firmware_version: Option<String>,
    /// `bios_date`, as the firmware writes it.
    pub release_date: Option<String>,
}

/// Upstream's `Product`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Product {
    /// `product_name`.
    pub name: Option<String>,
    /// `sys_vendor`.
    pub vendor: Option<String>,
    /// `product_serial`.
    pub serial_number: Option<String>,
}

/// Upstream's `TPM`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Tpm {
    /// TPM 1.2: the TCG vendor id's letters (`IFX`).
    pub vendor: Option<String>,
    /// Redfish's names, as upstream's example: `TPM1_2`, `TPM2_0`.
    pub interface_type: Option<String>,
    /// TPM 1.2: `Firmware version` from `caps`.
    pub firmware_version: Option<String>,
}

/// Upstream's `StorageController`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StorageController {
    /// PCI vendor id.
    pub vendor: Option<String>,
    /// PCI device id.
    pub model: Option<String>,
    /// The PCI subclass's name (`SATA controller`, `Non-Volatile memory controller`).
    pub description: Option<String>,
}

/// The in-band document for `attributes` (what [`crate::collect`] read), without
/// `lastUpdated`: the server that stores it knows when it arrived.
pub fn in_band(attributes: &AgentAttributes) -> Attributes {
    let cpu = &attributes.cpu;
    let memory = &attributes.memory;
    Attributes {
        last_updated: None,
        collection_method: Some(COLLECTION_METHOD.to_string()),
        // No /proc/cpuinfo gives no processors; totals of zero would claim a CPU-less machine.
        cpu: (!cpu.processors.is_empty()).then(|| Cpu {
            total_cores: Some(cpu.total_cores),
            total_threads: Some(cpu.total_threads),
            sockets: cpu
                .processors
                .iter()
                .map(|processor| CpuSocket {
                    vendor: processor.vendor.clone(),
                    model: processor.model.clone(),
                    cores: Some(processor.cores),
                    threads: Some(processor.threads),
                    capabilities: processor.capabilities.clone(),
                })
                .collect(),
        }),
        memory: some_if_any(Memory {
            total_bytes: memory.total_bytes,
            usable_bytes: memory.usable_bytes,
        }),
        block_devices: attributes
            .block_devices
            .iter()
            .map(|disk| BlockDevice {
                name: Some(disk.name.clone()),
                controller_type: Some(disk.controller.to_string()),
                drive_type: (disk.drive_type != crate::DriveType::Unknown)
                    .then(|| disk.drive_type.to_string()),
                vendor: disk.vendor.clone(),
                model: disk.model.clone(),
                serial_number: disk.serial.clone(),
                wwn: disk.wwn.clone(),
                size_bytes: disk.size_bytes,
                physical_block_size_bytes: disk.physical_block_size_bytes,
            })
            .collect(),
        network_interfaces: attributes
            .network_interfaces
            .iter()
            .map(|interface| NetworkInterface {
                name: Some(interface.name.clone()),
                ports: vec![NetworkPort {
                    mac: interface.mac.clone(),
                    speed_mbps: interface.speed_mbps,
                    mtu: interface.mtu,
                    link_status: interface.link_status.clone(),
                }],
            })
            .collect(),
        gpu_devices: attributes
            .gpus
            .iter()
            .map(|device| GpuDevice {
                vendor: device.vendor_id.clone(),
                model: device.device_id.clone(),
                description: class_name(device).map(str::to_string),
                class: device.class.clone(),
                driver: device.driver.clone(),
            })
            .collect(),
        pci_devices: attributes
            .pci_devices
            .iter()
            .map(|device| PciFunction {
                vendor: device.vendor_id.clone(),
                model: device.device_id.clone(),
                class: device.class.clone(),
                driver: device.driver.clone(),
            })
            .collect(),
        chassis: some_if_any(Chassis {
            vendor: attributes.chassis.vendor.clone(),
            serial_number: attributes.chassis.serial.clone(),
        }),
        baseboard: some_if_any(Baseboard {
            vendor: attributes.baseboard.vendor.clone(),
            model: attributes.baseboard.product.clone(),
            serial_number: attributes.baseboard.serial.clone(),
        }),
        bios: some_if_any(Bios {
            vendor: attributes.bios.vendor.clone(),
            firmware_version: attributes.bios.version.clone(),
            release_date: attributes.bios.release_date.clone(),
        }),
        product: some_if_any(Product {
            name: attributes.product.name.clone(),
            vendor: attributes.product.vendor.clone(),
            serial_number: attributes.product.serial.clone(),
        }),
        tpms: attributes
            .tpms
            .iter()
            .map(|tpm| Tpm {
                vendor: tpm.manufacturer.clone(),
                interface_type: match tpm.version_major {
                    Some(1) => Some("TPM1_2".to_string()),
                    Some(2) => Some("TPM2_0".to_string()),
                    _ => None,
                },
                firmware_version: tpm.firmware_version.clone(),
            })
            .collect(),
        storage_controllers: attributes
            .pci_devices
            .iter()
            .filter(|device| device.is_storage_controller())
            .map(|device| StorageController {
                vendor: device.vendor_id.clone(),
                model: device.device_id.clone(),
                description: class_name(device).map(str::to_string),
            })
            .collect(),
    }
}

/// `Some(value)` unless every field is absent (an SMBIOS table with only placeholders, no
/// meminfo).
fn some_if_any<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

/// The PCI subclass names of mass storage (0x01) and display (0x03) controllers, as the PCI
/// Code and ID Assignment specification and pci.ids name them.
const CLASS_NAMES: [(&str, &str); 15] = [
    ("0100", "SCSI storage controller"),
    ("0101", "IDE interface"),
    ("0102", "Floppy disk controller"),
    ("0103", "IPI bus controller"),
    ("0104", "RAID bus controller"),
    ("0105", "ATA controller"),
    ("0106", "SATA controller"),
    ("0107", "Serial Attached SCSI controller"),
    ("0108", "Non-Volatile memory controller"),
    ("0109", "Universal Flash Storage controller"),
    ("0180", "Mass storage controller"),
    ("0300", "VGA compatible controller"),
    ("0301", "XGA compatible controller"),
    ("0302", "3D controller"),
    ("0380", "Display controller"),
];

fn class_name(device: &PciDevice) -> Option<&'static str> {
    let class = device.class.as_deref()?;
    let subclass = class.get(..4)?;
    CLASS_NAMES
        .iter()
        .find(|(code, _)| *code == subclass)
        .map(|(_, name)| *name)
}
