//! The attributes in the shape of Tinkerbell's Hardware `status.attributes.inBand`: upstream's
//! `Attributes` type (tinkerbell/tinkerbell `api/v1alpha1/tinkerbell/hardware.go`, shared by
//! the `outOfBand` subtree that exists there today and the `inBand` sibling it announces), with
//! its JSON names, units (bytes, Mbit/s, MHz) and nesting.
//!
//! Only what /sys and /proc tell is filled in: an absent value is left out of the document
//! (never a zero or an empty string), as upstream's `omitempty` fields are read. Upstream fields
//! this collector cannot read stay absent: CPU slot and clock, memory modules, NIC vendor and
//! firmware, SMART status, BMC and PSUs (out-of-band only). Vendors and models of PCI devices
//! are numeric ids (`8086`, `10d3`): the bootkit carries no pci.ids name database.

use serde::{Deserialize, Serialize};

use crate::{AgentAttributes, PciDevice};

/// What produced the document, in upstream's `collectionMethod` ("agent" for in-band).
pub const COLLECTION_METHOD: &str = "agent";

/// Upstream's `Attributes`: one machine's hardware as observed in-band.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    /// When the subtree was last refreshed (RFC 3339); the receiving server sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// Always [`COLLECTION_METHOD`] here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_method: Option<String>,
    /// Totals and one entry per socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Installed and usable bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// The disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_devices: Vec<BlockDevice>,
    /// The hardware NICs, one port each (upstream's in-band rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Display controllers (PCI class 0x03).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_devices: Vec<GpuDevice>,
    /// Every PCI function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci_devices: Vec<PciFunction>,
    /// SMBIOS chassis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis: Option<Chassis>,
    /// SMBIOS mainboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseboard: Option<Baseboard>,
    /// SMBIOS firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios: Option<Bios>,
    /// SMBIOS system identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// The TPMs under /sys/class/tpm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tpms: Vec<Tpm>,
    /// Mass storage controllers (PCI class 0x01).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_controllers: Vec<StorageController>,
}

/// Upstream's `CPU`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    /// Physical cores over all sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cores: Option<u32>,
    /// Hardware threads over all sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_threads: Option<u32>,
    /// One per physical package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<CpuSocket>,
}

/// Upstream's `CPUSocket`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuSocket {
    /// `vendor_id` (x86) or `CPU implementer` (ARM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `model name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Physical cores in the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// Logical CPUs in the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// CPU flags (`flags` / `Features`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// Upstream's `Memory`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// Installed bytes (online memory blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Bytes the kernel can hand out (MemTotal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usable_bytes: Option<u64>,
}

/// Upstream's `BlockDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDevice {
    /// Kernel name (`nvme0n1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Transport, lower case (`nvme`, `sata`, `scsi`, `virtio`, `usb`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_type: Option<String>,
    /// `HDD`, `SSD` or `ODD`; absent when the kernel does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_type: Option<String>,
    /// `device/vendor` when it is a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `device/model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// World Wide Name as the kernel reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    /// Capacity, exact bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Bytes per physical sector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_block_size_bytes: Option<u64>,
}

/// Upstream's `NetworkInterface`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Kernel name (`eno1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One port: the interface itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPort>,
}

/// Upstream's `NetworkPort`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPort {
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Link speed, Mbit/s; absent while the link is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
    /// MTU in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The kernel's `operstate` (`up`, `down`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_status: Option<String>,
}

/// Upstream's `GPUDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuDevice {
    /// PCI vendor id (`1234`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// PCI device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The PCI subclass's name (`VGA compatible controller`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// PCI class code, six hex digits (`030000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Bound kernel driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// Upstream's `PCIDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PciFunction {
    /// PCI vendor id (`8086`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// PCI device id (`10d3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// PCI class code, six hex digits (`020000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Bound kernel driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// Upstream's `Chassis`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chassis {
    /// `chassis_vendor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `chassis_serial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// Upstream's `Baseboard`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseboard {
    /// `board_vendor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `board_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `board_serial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// Upstream's `BIOS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bios {
    /// `bios_vendor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `bios_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// `bios_date`, as the firmware writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
}

/// Upstream's `Product`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// `product_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `sys_vendor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `product_serial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// Upstream's `TPM`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tpm {
    /// TPM 1.2: the TCG vendor id's letters (`IFX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Redfish's names, as upstream's example: `TPM1_2`, `TPM2_0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_type: Option<String>,
    /// TPM 1.2: `Firmware version` from `caps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
}

/// Upstream's `StorageController`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageController {
    /// PCI vendor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// PCI device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The PCI subclass's name (`SATA controller`, `Non-Volatile memory controller`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
