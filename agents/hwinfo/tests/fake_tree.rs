//! collect_from over a prepared /sys + /proc tree holding each kind of entry, and collect() on
//! the machine running the tests.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use bootkit_common::blockdev::fake::FakeSysfs;
use bootkit_hwinfo::{ControllerType, DriveType, collect, collect_from, in_band};
use serde_json::json;

fn write(root: &Path, relative: &str, contents: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// A class entry (/sys/class/net/NAME) linked to its device directory, as
/// the kernel lays them out.
fn class_link(root: &Path, class_dir: &str, name: &str, device_path: &str) {
    fs::create_dir_all(root.join(device_path)).unwrap();
    fs::create_dir_all(root.join(class_dir)).unwrap();
    let depth = class_dir.split('/').count() - 1;
    let target = format!(
        "{}{}",
        "../".repeat(depth),
        device_path.trim_start_matches("sys/")
    );
    symlink(target, root.join(class_dir).join(name)).unwrap();
}

const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon Test\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu sse2 avx\n\n\
processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon Test\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu sse2 avx\n\n\
processor\t: 2\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon Test\nphysical id\t: 0\ncore id\t\t: 1\nflags\t\t: fpu sse2 avx\n\n\
processor\t: 3\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon Test\nphysical id\t: 1\ncore id\t\t: 0\nflags\t\t: fpu sse2 avx\n";

fn fake_machine(root: &Path) {
    write(root, "proc/cpuinfo", CPUINFO);
    write(
        root,
        "proc/meminfo",
        "MemTotal:        8039604 kB\nMemFree:  100 kB\n",
    );
    write(
        root,
        "sys/devices/system/memory/block_size_bytes",
        "8000000\n",
    );
    for (block, online) in [("memory0", "1"), ("memory1", "1"), ("memory2", "0")] {
        write(
            root,
            &format!("sys/devices/system/memory/{block}/online"),
            online,
        );
    }

    // Disks through the shared fake sysfs block tree, laid out as the kernel does.
    let disks = FakeSysfs::new(root.join("sys"));
    disks
        .disk("nvme0n1")
        .nvme()
        .size_bytes(2000409264 * 512)
        .rotational(false)
        .wwid("eui.0025388b91b3b2c4")
        .model("Samsung SSD 980   ")
        .serial("S64DNF0R123456")
        .add();
    disks
        .disk("sda")
        .sata()
        .size_bytes(1953525168 * 512)
        .rotational(true)
        .sectors(512, 4096)
        .vendor("ATA     ")
        .model("WDC WD10EZEX")
        .wwid("naa.50014ee2b5c1a2b3")
        .add();
    disks
        .disk("vda")
        .virtio()
        .size_bytes(1048576 * 512)
        .rotational(true)
        .serial("disk-serial-1")
        .vendor("0x1af4")
        .add();
    disks
        .disk("sdb")
        .usb()
        .size_bytes(60437492 * 512)
        .rotational(true)
        .add();
    disks.disk("loop0").add();
    disks.disk("zram0").add();

    let eth1 = "sys/devices/pci0000:00/0000:00:05.0/net/eth1";
    class_link(root, "sys/class/net", "eth1", eth1);
    write(root, &format!("{eth1}/address"), "52:54:00:AA:BB:02\n");
    write(root, &format!("{eth1}/ifindex"), "3\n");
    write(root, &format!("{eth1}/speed"), "-1\n");
    let eth0 = "sys/devices/pci0000:00/0000:00:03.0/net/eth0";
    class_link(root, "sys/class/net", "eth0", eth0);
    write(root, &format!("{eth0}/address"), "52:54:00:aa:bb:01\n");
    write(root, &format!("{eth0}/ifindex"), "2\n");
    write(root, &format!("{eth0}/speed"), "10000\n");
    write(root, &format!("{eth0}/mtu"), "9000\n");
    write(root, &format!("{eth0}/operstate"), "up\n");
    write(root, &format!("{eth1}/mtu"), "1500\n");
    write(root, &format!("{eth1}/operstate"), "down\n");
    class_link(root, "sys/class/net", "lo", "sys/devices/virtual/net/lo");
    write(
        root,
        "sys/devices/virtual/net/lo/address",
        "00:00:00:00:00:00\n",
    );
    class_link(root, "sys/class/net", "br0", "sys/devices/virtual/net/br0");

    let nic = "sys/devices/pci0000:00/0000:00:03.0";
    write(root, &format!("{nic}/vendor"), "0x8086\n");
    write(root, &format!("{nic}/device"), "0x10D3\n");
    write(root, &format!("{nic}/class"), "0x020000\n");
    fs::create_dir_all(root.join("sys/bus/pci/drivers/e1000e")).unwrap();
    symlink(
        "../../../bus/pci/drivers/e1000e",
        root.join(format!("{nic}/driver")),
    )
    .unwrap();
    let vga = "sys/devices/pci0000:00/0000:00:01.0";
    write(root, &format!("{vga}/vendor"), "0x1234\n");
    write(root, &format!("{vga}/device"), "0x1111\n");
    write(root, &format!("{vga}/class"), "0x030000\n");
    let sata = "sys/devices/pci0000:00/0000:00:1f.2";
    write(root, &format!("{sata}/vendor"), "0x8086\n");
    write(root, &format!("{sata}/device"), "0xa352\n");
    write(root, &format!("{sata}/class"), "0x010601\n");
    fs::create_dir_all(root.join("sys/bus/pci/drivers/ahci")).unwrap();
    symlink(
        "../../../bus/pci/drivers/ahci",
        root.join(format!("{sata}/driver")),
    )
    .unwrap();
    fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
    for address in ["0000:00:03.0", "0000:00:01.0", "0000:00:1f.2"] {
        symlink(
            format!("../../../devices/pci0000:00/{address}"),
            root.join("sys/bus/pci/devices").join(address),
        )
        .unwrap();
    }

    let dmi = [
        ("chassis_serial", "To Be Filled By O.E.M."),
        ("chassis_vendor", "Supermicro"),
        ("bios_vendor", "American Megatrends Inc."),
        ("bios_version", "3.4"),
        ("bios_date", "05/12/2023"),
        ("board_vendor", "Supermicro"),
        ("board_name", "X11SCL-F"),
        ("board_version", "1.01"),
        ("board_serial", "ZM19AS012345"),
        ("product_name", "SYS-5019C-M"),
        ("sys_vendor", "Supermicro"),
        ("product_serial", "Default string"),
        ("product_uuid", "00000000-0000-0000-0000-000000000000"),
    ];
    for (file, value) in dmi {
        write(
            root,
            &format!("sys/devices/virtual/dmi/id/{file}"),
            &format!("{value}\n"),
        );
    }
    // A TPM 2.0 on ACPI, as the kernel lays out /sys/class/tpm.
    let tpm = "sys/devices/platform/MSFT0101:00/tpm/tpm0";
    class_link(root, "sys/class/tpm", "tpm0", tpm);
    write(root, &format!("{tpm}/tpm_version_major"), "2\n");
    fs::create_dir_all(root.join("sys/class/dmi")).unwrap();
    symlink(
        "../../devices/virtual/dmi/id",
        root.join("sys/class/dmi/id"),
    )
    .unwrap();
}

#[test]
fn fake_tree_reports_each_kind_of_hardware() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    let attributes = collect_from(dir.path());

    let cpu = &attributes.cpu;
    assert_eq!(
        (cpu.total_cores, cpu.total_threads),
        (3, 4),
        "two packages: 2 cores/3 threads and 1/1"
    );
    assert_eq!(cpu.processors.len(), 2);
    assert_eq!(cpu.processors[0].vendor.as_deref(), Some("GenuineIntel"));
    assert_eq!(cpu.processors[0].model.as_deref(), Some("Xeon Test"));
    assert_eq!(cpu.processors[0].capabilities, ["fpu", "sse2", "avx"]);

    assert_eq!(
        attributes.memory.total_bytes,
        Some(2 * 0x8000000),
        "two online 128 MiB blocks"
    );
    assert_eq!(attributes.memory.usable_bytes, Some(8039604 * 1024));

    let names: Vec<&str> = attributes
        .block_devices
        .iter()
        .map(|disk| disk.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["nvme0n1", "sda", "sdb", "vda"],
        "loop and zram are not disks"
    );
    let disk = |name: &str| {
        attributes
            .block_devices
            .iter()
            .find(|disk| disk.name == name)
            .unwrap()
    };
    let nvme = disk("nvme0n1");
    assert_eq!(
        (nvme.controller, nvme.drive_type),
        (ControllerType::Nvme, DriveType::Ssd)
    );
    assert_eq!(nvme.size_bytes, Some(2000409264 * 512));
    assert_eq!(nvme.model.as_deref(), Some("Samsung SSD 980"));
    assert_eq!(nvme.serial.as_deref(), Some("S64DNF0R123456"));
    assert_eq!(nvme.wwn.as_deref(), Some("eui.0025388b91b3b2c4"));
    let sata = disk("sda");
    assert_eq!(
        (sata.controller, sata.drive_type),
        (ControllerType::Sata, DriveType::Hdd)
    );
    assert_eq!(sata.physical_block_size_bytes, Some(4096));
    assert_eq!(sata.vendor.as_deref(), Some("ATA"));
    assert_eq!(sata.wwn.as_deref(), Some("naa.50014ee2b5c1a2b3"));
    assert_eq!(disk("sdb").controller, ControllerType::Usb);
    let virtio = disk("vda");
    assert_eq!(virtio.controller, ControllerType::Virtio);
    assert_eq!(virtio.serial.as_deref(), Some("disk-serial-1"));
    assert_eq!(
        virtio.vendor, None,
        "a virtio vendor id is not a manufacturer name"
    );

    let nics: Vec<(&str, Option<&str>, Option<u32>)> = attributes
        .network_interfaces
        .iter()
        .map(|nic| (nic.name.as_str(), nic.mac.as_deref(), nic.speed_mbps))
        .collect();
    assert_eq!(
        nics,
        [
            ("eth0", Some("52:54:00:aa:bb:01"), Some(10000)),
            ("eth1", Some("52:54:00:aa:bb:02"), None)
        ],
        "hardware NICs in ifindex order, MACs lower case, unknown speed absent, lo and br0 left out"
    );

    assert_eq!(attributes.pci_devices.len(), 3);
    let nic = attributes
        .pci_devices
        .iter()
        .find(|device| device.address == "0000:00:03.0")
        .unwrap();
    assert_eq!(nic.vendor_id.as_deref(), Some("8086"));
    assert_eq!(nic.device_id.as_deref(), Some("10d3"));
    assert_eq!(nic.class.as_deref(), Some("020000"));
    assert_eq!(nic.driver.as_deref(), Some("e1000e"));
    assert_eq!(attributes.gpus.len(), 1);
    assert_eq!(attributes.gpus[0].address, "0000:00:01.0");
    assert_eq!(attributes.gpus[0].driver, None);

    assert_eq!(
        attributes.chassis.serial, None,
        "O.E.M. placeholder serial is absent"
    );
    assert_eq!(attributes.chassis.vendor.as_deref(), Some("Supermicro"));
    assert_eq!(attributes.bios.version.as_deref(), Some("3.4"));
    assert_eq!(attributes.bios.release_date.as_deref(), Some("05/12/2023"));
    assert_eq!(attributes.baseboard.serial.as_deref(), Some("ZM19AS012345"));
    assert_eq!(attributes.baseboard.product.as_deref(), Some("X11SCL-F"));
    assert_eq!(attributes.product.name.as_deref(), Some("SYS-5019C-M"));
    assert_eq!(
        attributes.product.serial, None,
        "\"Default string\" is absent"
    );
    assert_eq!(attributes.system_uuid, None, "an all-zero UUID is absent");
}

#[test]
fn empty_tree_gives_empty_attributes_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let attributes = collect_from(dir.path());
    assert_eq!(attributes, Default::default());
}

#[test]
fn this_machine_has_a_cpu_and_memory() {
    let attributes = collect();
    assert!(attributes.cpu.total_threads >= 1, "{:?}", attributes.cpu);
    assert!(attributes.cpu.total_cores >= 1);
    assert!(attributes.cpu.total_cores <= attributes.cpu.total_threads);
    let usable = attributes.memory.usable_bytes.unwrap();
    assert!(usable > 0);
    assert!(attributes.memory.total_bytes.unwrap() >= usable / 2);
    assert!(
        attributes
            .network_interfaces
            .iter()
            .all(|nic| nic.name != "lo")
    );
}

/// Changed by issue 11: hwinfo used to call a SCSI disk on a virtio-scsi host adapter
/// "virtio" (from its device path) while the installer called it SCSI; both now read the
/// shared `bootkit_common::blockdev`, which says `scsi` (virtio means virtio-blk). The serial
/// in VPD page 0x80 is reported too, as the installer always read it.
#[test]
fn a_virtio_scsi_disk_is_scsi_with_its_vpd_serial() {
    let dir = tempfile::tempdir().unwrap();
    let disks = FakeSysfs::new(dir.path().join("sys"));
    disks
        .disk("sda")
        .virtio_scsi()
        .serial_vpd("drive-scsi0")
        .add();
    let attributes = collect_from(dir.path());
    let disk = &attributes.block_devices[0];
    assert_eq!(disk.controller, ControllerType::Scsi);
    assert_eq!(disk.controller.to_string(), "scsi");
    assert_eq!(disk.serial.as_deref(), Some("drive-scsi0"));
}

/// Upstream's schema excerpt (tinkerbell/tinkerbell's Hardware CRD, `Attributes`), as
/// JSON: the reference the in-band document is checked against.
fn upstream_attributes_schema() -> serde_json::Value {
    let yaml = include_str!("fixtures/tinkerbell_attributes_schema.yaml");
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// Checks `value` against a Kubernetes structural schema as the API server applies it to a
/// status write: a field the schema does not declare would be pruned (so it is an error here),
/// each value must have the declared `type`, and `int32`/`int64` integers must fit. Returns
/// how many values were checked, so a caller can see that the walk reached the leaves.
fn check_structural(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    at: &str,
) -> Result<usize, String> {
    use serde_json::Value;
    let kind = schema["type"]
        .as_str()
        .ok_or(format!("{at}: schema has no type"))?;
    match (kind, value) {
        ("object", Value::Object(fields)) => {
            let declared = schema["properties"]
                .as_object()
                .ok_or(format!("{at}: schema has no properties"))?;
            let mut checked = 1;
            for (name, field) in fields {
                let field_schema = declared
                    .get(name)
                    .ok_or(format!("{at}.{name}: not in upstream's schema (pruned)"))?;
                checked += check_structural(field, field_schema, &format!("{at}.{name}"))?;
            }
            Ok(checked)
        }
        ("array", Value::Array(items)) => {
            let mut checked = 1;
            for (index, item) in items.iter().enumerate() {
                checked += check_structural(item, &schema["items"], &format!("{at}[{index}]"))?;
            }
            Ok(checked)
        }
        ("string", Value::String(_)) => Ok(1),
        ("integer", Value::Number(number)) => {
            let n = number
                .as_i64()
                .ok_or(format!("{at}: {number} is no int64"))?;
            if schema["format"] == "int32" && i32::try_from(n).is_err() {
                return Err(format!("{at}: {n} is no int32"));
            }
            Ok(1)
        }
        _ => Err(format!("{at}: {value} is not of upstream's type {kind}")),
    }
}

/// Every value as the fake tree wrote it, in upstream's names and units: exact byte counts
/// (sysfs `size` × 512, memory blocks × block size, MemTotal kB × 1024), Mbit/s, one port per
/// NIC, and nothing for what the tree does not say (placeholder serials, eth1's unknown
/// speed, the GPU's missing driver, the TPM 2.0's vendor).
#[test]
fn the_in_band_document_has_tinkerbells_names_and_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    let document = serde_json::to_value(in_band(&collect_from(dir.path()))).unwrap();
    let socket = |cores: u32, threads: u32| {
        json!({"vendor": "GenuineIntel", "model": "Xeon Test", "cores": cores, "threads": threads,
               "capabilities": ["fpu", "sse2", "avx"]})
    };
    let expected = json!({
        "collectionMethod": "agent",
        "cpu": {"totalCores": 3, "totalThreads": 4, "sockets": [socket(2, 3), socket(1, 1)]},
        "memory": {"totalBytes": 2u64 * 0x800_0000, "usableBytes": 8_039_604u64 * 1024},
        "blockDevices": [
            {"name": "nvme0n1", "controllerType": "nvme", "driveType": "SSD",
             "model": "Samsung SSD 980", "serialNumber": "S64DNF0R123456",
             "wwn": "eui.0025388b91b3b2c4", "sizeBytes": 2_000_409_264u64 * 512,
             "physicalBlockSizeBytes": 512},
            {"name": "sda", "controllerType": "sata", "driveType": "HDD", "vendor": "ATA",
             "model": "WDC WD10EZEX", "wwn": "naa.50014ee2b5c1a2b3",
             "sizeBytes": 1_953_525_168u64 * 512, "physicalBlockSizeBytes": 4096},
            {"name": "sdb", "controllerType": "usb", "driveType": "HDD",
             "sizeBytes": 60_437_492u64 * 512, "physicalBlockSizeBytes": 512},
            {"name": "vda", "controllerType": "virtio", "driveType": "HDD",
             "serialNumber": "disk-serial-1", "sizeBytes": 1_048_576u64 * 512,
             "physicalBlockSizeBytes": 512},
        ],
        "networkInterfaces": [
            {"name": "eth0", "ports": [{"mac": "52:54:00:aa:bb:01", "speedMbps": 10000,
                                         "mtu": 9000, "linkStatus": "up"}]},
            {"name": "eth1", "ports": [{"mac": "52:54:00:aa:bb:02", "mtu": 1500,
                                         "linkStatus": "down"}]},
        ],
        "gpuDevices": [{"vendor": "1234", "model": "1111", "class": "030000",
                        "description": "VGA compatible controller"}],
        "pciDevices": [
            {"vendor": "1234", "model": "1111", "class": "030000"},
            {"vendor": "8086", "model": "10d3", "class": "020000", "driver": "e1000e"},
            {"vendor": "8086", "model": "a352", "class": "010601", "driver": "ahci"},
        ],
        "storageControllers": [{"vendor": "8086", "model": "a352",
                                "description": "SATA controller"}],
        "chassis": {"vendor": "Supermicro"},
        "baseboard": {"vendor": "Supermicro", "model": "X11SCL-F", "serialNumber": "ZM19AS012345"},
        "bios": {"vendor": "American Megatrends Inc.", "firmwareVersion": "3.4",
                 "releaseDate": "05/12/2023"},
        "product": {"name": "SYS-5019C-M", "vendor": "Supermicro"},
        "tpms": [{"interfaceType": "TPM2_0"}],
    });
    assert_eq!(
        document,
        expected,
        "{}",
        serde_json::to_string_pretty(&document).unwrap()
    );
}

/// Every field the document carries is one upstream's CRD declares, with upstream's type: a
/// status write of it would keep every value (nothing pruned, nothing refused).
#[test]
fn the_in_band_document_fits_upstreams_crd_schema() {
    let schema = upstream_attributes_schema();
    let dir = tempfile::tempdir().unwrap();
    fake_machine(dir.path());
    let mut document = serde_json::to_value(in_band(&collect_from(dir.path()))).unwrap();
    // What the provisioner adds on receipt.
    document["lastUpdated"] = json!("2026-12-07T14:00:00.000Z");
    let checked = check_structural(&document, &schema, "inBand").unwrap();
    assert!(checked > 100, "only {checked} values were checked");
    // The machine running the tests: whatever it has, it fits too.
    let live = serde_json::to_value(in_band(&collect())).unwrap();
    check_structural(&live, &schema, "inBand (this machine)").unwrap();
}

/// The schema check itself refuses what the API server would prune or refuse, so that the
/// test above cannot pass by checking nothing.
#[test]
fn the_schema_check_refuses_undeclared_fields_and_wrong_types() {
    let schema = upstream_attributes_schema();
    for (bad, why) in [
        (
            json!({"memory": {"total": 1}}),
            "inBand.memory.total: not in upstream's schema",
        ),
        (
            json!({"memory": {"totalBytes": "8 GiB"}}),
            "is not of upstream's type integer",
        ),
        (
            json!({"networkInterfaces": [{"ports": [{"speedMbps": 1u64 << 40}]}]}),
            "is no int32",
        ),
        (
            json!({"blockDevices": [{"size": "1 TB"}]}),
            "inBand.blockDevices[0].size: not in",
        ),
    ] {
        let error = check_structural(&bad, &schema, "inBand").unwrap_err();
        assert!(error.contains(why), "{bad}: {error}");
    }
}

/// A TPM 1.2 names its manufacturer (TCG vendor id) and firmware in `caps`; a kernel
/// older than 5.6 has no `tpm_version_major`, and the 1.2 `caps` still say which family.
#[test]
fn a_tpm_1_2_reports_its_vendor_and_firmware_from_caps() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = "sys/devices/pnp0/00:05/tpm/tpm0";
    class_link(dir.path(), "sys/class/tpm", "tpm0", tpm);
    write(
        dir.path(),
        &format!("{tpm}/device/caps"),
        "Manufacturer: 0x49465800\nTCG version: 1.2\nFirmware version: 3.17\n",
    );
    let document = serde_json::to_value(in_band(&collect_from(dir.path()))).unwrap();
    assert_eq!(
        document["tpms"],
        json!([{"vendor": "IFX", "interfaceType": "TPM1_2", "firmwareVersion": "3.17"}])
    );
}

/// A tree with nothing in it gives a document with nothing but its collection method: no
/// zero counts, no empty sections.
#[test]
fn an_empty_tree_gives_an_empty_in_band_document() {
    let dir = tempfile::tempdir().unwrap();
    let document = serde_json::to_value(in_band(&collect_from(dir.path()))).unwrap();
    assert_eq!(document, json!({"collectionMethod": "agent"}));
}
