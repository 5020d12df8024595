//! bootkit-hwinfo's attributes as the JSON sent in `hardware_json`: the provisioner stores it
//! with the node's hardware record. Two shapes side by side: the snake_case keys the
//! provisioner and its users have read since the first release (kept as they were), and
//! `inBand`, the same facts as Tinkerbell's Hardware `status.attributes.inBand`
//! (bootkit-hwinfo's [`bootkit_hwinfo::inband`], serialized by its serde derive), which the
//! provisioner stores per node, shows in its API and offers to templates.

use bootkit_hwinfo::{AgentAttributes, BlockDevice, NetworkInterface, PciDevice, Processor};
use serde_json::{Value, json};

/// The key of the in-band document in `hardware_json`.
pub const IN_BAND_KEY: &str = "inBand";

pub fn to_json(attributes: &AgentAttributes) -> Value {
    let mut document = legacy_json(attributes);
    // Serializing plain structs of strings and integers cannot fail; were it ever to, the
    // report goes without the document rather than without the machine.
    if let (Some(object), Ok(in_band)) = (
        document.as_object_mut(),
        serde_json::to_value(bootkit_hwinfo::in_band(attributes)),
    ) {
        object.insert(IN_BAND_KEY.to_string(), in_band);
    }
    document
}

fn legacy_json(attributes: &AgentAttributes) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The old keys stay where they were and `inBand` is the hwinfo document, byte counts exact.
    #[test]
    fn the_report_carries_the_old_keys_and_the_in_band_document() {
        let attributes = AgentAttributes {
            memory: bootkit_hwinfo::Memory {
                total_bytes: Some(17_179_869_184),
                usable_bytes: Some(16_663_109_632),
            },
            ..Default::default()
        };
        let json = to_json(&attributes);
        assert_eq!(json["memory"]["total_bytes"], 17_179_869_184u64);
        assert_eq!(
            json[IN_BAND_KEY],
            json!({
                "collectionMethod": "agent",
                "memory": {"totalBytes": 17_179_869_184u64, "usableBytes": 16_663_109_632u64},
            })
        );
    }
}
