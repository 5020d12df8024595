//! bootkit-hwinfo's attributes as the JSON sent in `hardware_json`: the provisioner stores it
//! with the node's hardware record. Written here with `json!` because bootkit-hwinfo keeps no
//! dependencies (not even serde); if it grows a serde feature, this module becomes a derive.

use bootkit_hwinfo::{AgentAttributes, BlockDevice, NetworkInterface, PciDevice, Processor};
use serde_json::{Value, json};

pub fn to_json(attributes: &AgentAttributes) -> Value {
    json!({
        "cpu": {
            "total_cores": attributes.cpu.total_cores,
            "total_threads": attributes.cpu.total_threads,
            "processors": attributes.cpu.processors.iter().map(processor).collect::<Vec<_>>(),
        },
        "memory": {
            "total_bytes": attributes.memory.total_bytes,
            "usable_bytes": attributes.memory.usable_bytes,
        },
        "block_devices": attributes.block_devices.iter().map(block_device).collect::<Vec<_>>(),
        "network_interfaces": attributes.network_interfaces.iter().map(network_interface).collect::<Vec<_>>(),
        "pci_devices": attributes.pci_devices.iter().map(pci_device).collect::<Vec<_>>(),
        "gpus": attributes.gpus.iter().map(pci_device).collect::<Vec<_>>(),
        "chassis": {
            "serial": attributes.chassis.serial,
            "vendor": attributes.chassis.vendor,
        },
        "bios": {
            "vendor": attributes.bios.vendor,
            "version": attributes.bios.version,
            "release_date": attributes.bios.release_date,
        },
        "baseboard": {
            "vendor": attributes.baseboard.vendor,
            "product": attributes.baseboard.product,
            "version": attributes.baseboard.version,
            "serial": attributes.baseboard.serial,
        },
        "product": {
            "name": attributes.product.name,
            "vendor": attributes.product.vendor,
            "serial": attributes.product.serial,
        },
        "system_uuid": attributes.system_uuid,
    })
}

fn processor(processor: &Processor) -> Value {
    json!({
        "id": processor.id,
        "cores": processor.cores,
        "threads": processor.threads,
        "vendor": processor.vendor,
        "model": processor.model,
        "capabilities": processor.capabilities,
    })
}

fn block_device(device: &BlockDevice) -> Value {
    json!({
        "name": device.name,
        "controller": device.controller.to_string(),
        "drive_type": device.drive_type.to_string(),
        "size_bytes": device.size_bytes,
        "physical_block_size_bytes": device.physical_block_size_bytes,
        "vendor": device.vendor,
        "model": device.model,
        "wwn": device.wwn,
        "serial": device.serial,
    })
}

fn network_interface(interface: &NetworkInterface) -> Value {
    json!({
        "name": interface.name,
        "mac": interface.mac,
        "speed_mbps": interface.speed_mbps,
    })
}

fn pci_device(device: &PciDevice) -> Value {
    json!({
        "address": device.address,
        "vendor_id": device.vendor_id,
        "device_id": device.device_id,
        "class": device.class,
        "driver": device.driver,
    })
}
