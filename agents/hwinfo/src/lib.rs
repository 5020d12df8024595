//! What a machine is made of, read from /sys and /proc (no dmidecode, no udev database): the
//! agent attributes of Tinkerbell's current protocol, kept as plain typed values (byte counts,
//! Mbit/s) so each consumer formats them its own way. Device discovery shares this crate.
//! [`in_band`] gives the same facts as Tinkerbell's Hardware `status.attributes.inBand`
//! document ([`inband`]: upstream's JSON names, exact bytes and Mbit/s).
//!
//! Collection is best effort by design: a file the kernel does not offer (no DMI on ARM, no
//! `speed` on a link that is down, serials that need root) leaves that value absent instead of
//! failing the whole report.

mod block;
mod cpu;
mod dmi;
pub mod inband;
mod memory;
mod network;
mod pci;
mod sysfs;
mod tpm;

use std::path::Path;

pub use block::{BlockDevice, ControllerType, DriveType};
pub use cpu::{Cpu, Processor};
pub use dmi::{Baseboard, Bios, Chassis, Product};
pub use inband::in_band;
pub use memory::Memory;
pub use network::{NetworkInterface, network_interfaces};
pub use pci::PciDevice;
pub use tpm::Tpm;

/// Everything the current protocol's `AgentAttributes` carries, plus the SMBIOS system UUID and
/// the TPMs (which the in-band document reports and the protocol has no field for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentAttributes {
    /// Processors and their core and thread counts.
    pub cpu: Cpu,
    /// Installed and usable memory.
    pub memory: Memory,
    /// The disks under /sys/block.
    pub block_devices: Vec<BlockDevice>,
    /// The hardware NICs, in ifindex order.
    pub network_interfaces: Vec<NetworkInterface>,
    /// All PCI functions.
    pub pci_devices: Vec<PciDevice>,
    /// The PCI devices whose class is a display controller (class 0x03).
    pub gpus: Vec<PciDevice>,
    /// SMBIOS chassis identity.
    pub chassis: Chassis,
    /// SMBIOS firmware vendor and version.
    pub bios: Bios,
    /// SMBIOS mainboard identity.
    pub baseboard: Baseboard,
    /// SMBIOS system identity (model, manufacturer, serial).
    pub product: Product,
    /// SMBIOS system UUID (`product_uuid`, readable by root only), placeholder values dropped.
    pub system_uuid: Option<String>,
    /// The TPMs under /sys/class/tpm.
    pub tpms: Vec<Tpm>,
}

/// The attributes of the machine this runs on.
pub fn collect() -> AgentAttributes {
    collect_from(Path::new("/"))
}

/// The attributes read from `root`/sys and `root`/proc: `/` for the live system, a prepared
/// directory tree in tests.
pub fn collect_from(root: &Path) -> AgentAttributes {
    let sys = root.join("sys");
    let proc = root.join("proc");
    let pci_devices = pci::devices(&sys);
    let gpus = pci_devices
        .iter()
        .filter(|device| device.is_display())
        .cloned()
        .collect();
    let dmi_dir = sys.join("class/dmi/id");
    AgentAttributes {
        cpu: cpu::read(&proc),
        memory: memory::read(&sys, &proc),
        block_devices: block::devices(&sys),
        network_interfaces: network_interfaces(&sys),
        pci_devices,
        gpus,
        chassis: dmi::chassis(&dmi_dir),
        bios: dmi::bios(&dmi_dir),
        baseboard: dmi::baseboard(&dmi_dir),
        product: dmi::product(&dmi_dir),
        system_uuid: dmi::system_uuid(&dmi_dir),
        tpms: tpm::devices(&sys),
    }
}
