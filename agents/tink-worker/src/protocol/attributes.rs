//! hwinfo's attributes in the current protocol's shape: byte counts and link speeds become
//! the human strings Tinkerbell shows and matches rules on ("476.9 GiB", "10 Gbps").

use bootkit_hwinfo as hw;
use tink_proto::current as proto;

pub(super) fn to_proto(attributes: &hw::AgentAttributes) -> proto::AgentAttributes {
    proto::AgentAttributes {
        cpu: Some(cpu(&attributes.cpu)),
        memory: Some(proto::Memory {
            total: attributes.memory.total_bytes.map(bytes),
            usable: attributes.memory.usable_bytes.map(bytes),
        }),
        block: attributes.block_devices.iter().map(block).collect(),
        network: attributes.network_interfaces.iter().map(network).collect(),
        pci: attributes.pci_devices.iter().map(pci).collect(),
        gpu: attributes.gpus.iter().map(gpu).collect(),
        chassis: Some(proto::Chassis {
            serial: attributes.chassis.serial.clone(),
            vendor: attributes.chassis.vendor.clone(),
        }),
        bios: Some(proto::Bios {
            vendor: attributes.bios.vendor.clone(),
            version: attributes.bios.version.clone(),
            release_date: attributes.bios.release_date.clone(),
        }),
        baseboard: Some(proto::Baseboard {
            vendor: attributes.baseboard.vendor.clone(),
            product: attributes.baseboard.product.clone(),
            version: attributes.baseboard.version.clone(),
            serial_number: attributes.baseboard.serial.clone(),
        }),
        product: Some(proto::Product {
            name: attributes.product.name.clone(),
            vendor: attributes.product.vendor.clone(),
            serial_number: attributes.product.serial.clone(),
        }),
    }
}

fn cpu(cpu: &hw::Cpu) -> proto::Cpu {
    proto::Cpu {
        total_cores: Some(cpu.total_cores),
        total_threads: Some(cpu.total_threads),
        processors: cpu
            .processors
            .iter()
            .map(|processor| proto::Processor {
                id: Some(processor.id),
                cores: Some(processor.cores),
                threads: Some(processor.threads),
                vendor: processor.vendor.clone(),
                model: processor.model.clone(),
                capabilities: processor.capabilities.clone(),
            })
            .collect(),
    }
}

fn block(disk: &hw::BlockDevice) -> proto::Block {
    proto::Block {
        name: Some(disk.name.clone()),
        controller_type: Some(disk.controller.to_string()),
        drive_type: Some(disk.drive_type.to_string()),
        size: disk.size_bytes.map(bytes),
        physical_block_size: disk.physical_block_size_bytes.map(bytes),
        vendor: disk.vendor.clone(),
        model: disk.model.clone(),
        wwn: disk.wwn.clone(),
        serial_number: disk.serial.clone(),
    }
}

fn network(interface: &hw::NetworkInterface) -> proto::Network {
    proto::Network {
        name: Some(interface.name.clone()),
        mac: interface.mac.clone(),
        speed: interface.speed_mbps.map(speed),
        enabled_capabilities: Vec::new(),
    }
}

fn pci(device: &hw::PciDevice) -> proto::Pci {
    proto::Pci {
        vendor: device.vendor_id.clone(),
        product: device.device_id.clone(),
        class: device.class.clone(),
        driver: device.driver.clone(),
    }
}

fn gpu(device: &hw::PciDevice) -> proto::Gpu {
    proto::Gpu {
        vendor: device.vendor_id.clone(),
        product: device.device_id.clone(),
        class: device.class.clone(),
        driver: device.driver.clone(),
    }
}

/// Binary units with one decimal, trailing ".0" dropped: "512 B", "4 KiB", "476.9 GiB".
fn bytes(count: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    format!("{} {}", text.trim_end_matches(".0"), UNITS[unit])
}

fn speed(mbps: u32) -> String {
    if mbps < 1000 {
        return format!("{mbps} Mbps");
    }
    let gbps = format!("{:.3}", f64::from(mbps) / 1000.0);
    format!("{} Gbps", gbps.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_speeds_read_like_tinkerbell_shows_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(512_110_190_592), "476.9 GiB");
        assert_eq!(speed(100), "100 Mbps");
        assert_eq!(speed(10_000), "10 Gbps");
        assert_eq!(speed(2500), "2.5 Gbps");
        assert_eq!(speed(1234), "1.234 Gbps");
    }

    #[test]
    fn absent_values_stay_absent_on_the_wire() {
        let attributes = hw::AgentAttributes {
            block_devices: vec![hw::BlockDevice {
                name: "sda".into(),
                controller: hw::ControllerType::Sata,
                drive_type: hw::DriveType::Ssd,
                size_bytes: Some(1 << 30),
                physical_block_size_bytes: None,
                vendor: None,
                model: Some("X".into()),
                wwn: None,
                serial: None,
            }],
            ..Default::default()
        };
        let proto = to_proto(&attributes);
        let disk = &proto.block[0];
        assert_eq!(disk.controller_type.as_deref(), Some("sata"));
        assert_eq!(disk.drive_type.as_deref(), Some("SSD"));
        assert_eq!(disk.size.as_deref(), Some("1 GiB"));
        assert_eq!(disk.serial_number, None);
        assert_eq!(proto.product.unwrap().serial_number, None);
    }
}
