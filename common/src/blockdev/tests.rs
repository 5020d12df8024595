use super::fake::FakeSysfs;
use super::*;

fn tree() -> (tempfile::TempDir, FakeSysfs) {
    let dir = tempfile::tempdir().unwrap();
    let sysfs = FakeSysfs::new(dir.path().join("sys"));
    (dir, sysfs)
}

#[test]
fn hardware_leaves_out_virtual_devices_and_all_keeps_them() {
    let (_dir, fake) = tree();
    fake.disk("sda").sata().add();
    fake.disk("vda").virtio().add();
    fake.disk("loop0").add();
    fake.disk("zram0").add();
    fake.disk("dm-0").add();
    let sysfs = fake.sysfs();
    assert_eq!(
        sysfs.disk_names(DiskFilter::Hardware).unwrap(),
        ["sda", "vda"]
    );
    assert_eq!(
        sysfs.disk_names(DiskFilter::All).unwrap(),
        ["dm-0", "loop0", "sda", "vda", "zram0"]
    );
}

#[test]
fn a_disk_reads_identity_geometry_and_flags() {
    let (_dir, fake) = tree();
    fake.disk("sda")
        .sata()
        .size_gib(256)
        .sectors(512, 4096)
        .vendor("ATA     ")
        .model("Samsung SSD 860")
        .serial_vpd("S3Z9NB0K")
        .wwid("naa.5002538e40a1b2c3")
        .rotational(false)
        .removable()
        .read_only()
        .add();
    let disk = fake.sysfs().disk("sda").unwrap();
    assert_eq!((disk.major, disk.minor), (8, 0));
    assert_eq!(disk.size_bytes, 256 << 30);
    assert_eq!(
        (disk.logical_sector_size, disk.physical_sector_size),
        (512, 4096)
    );
    assert!(disk.removable && disk.read_only);
    assert_eq!(disk.rotational, Some(false));
    assert_eq!(disk.transport, Transport::Sata);
    assert_eq!(disk.vendor.as_deref(), Some("ATA"));
    assert_eq!(disk.model.as_deref(), Some("Samsung SSD 860"));
    assert_eq!(
        disk.serial.as_deref(),
        Some("S3Z9NB0K"),
        "from VPD page 0x80"
    );
    assert_eq!(disk.wwn.as_deref(), Some("naa.5002538e40a1b2c3"));
}

#[test]
fn size_counts_512_byte_units_whatever_the_sector_size() {
    let (_dir, fake) = tree();
    fake.disk("nvme0n1")
        .nvme()
        .size_gib(512)
        .sectors(4096, 4096)
        .add();
    let disk = fake.sysfs().disk("nvme0n1").unwrap();
    assert_eq!(disk.size_bytes, 512 << 30);
    assert_eq!(disk.logical_sector_size, 4096);
}

#[test]
fn the_driver_serial_wins_over_the_vpd_page_and_virtio_vendor_ids_are_dropped() {
    let (_dir, fake) = tree();
    fake.disk("vda")
        .virtio()
        .serial("disk-serial-1")
        .vendor("0x1af4")
        .add();
    fake.disk("sdb")
        .scsi()
        .serial("DRIVER-SERIAL")
        .serial_vpd("VPD-SERIAL")
        .add();
    let sysfs = fake.sysfs();
    let vda = sysfs.disk("vda").unwrap();
    assert_eq!(vda.serial.as_deref(), Some("disk-serial-1"));
    assert_eq!(vda.vendor, None);
    assert_eq!(vda.rotational, None, "no queue/rotational, no answer");
    assert_eq!(
        sysfs.disk("sdb").unwrap().serial.as_deref(),
        Some("DRIVER-SERIAL")
    );
}

#[test]
fn the_transport_comes_from_the_device_tree_and_the_name() {
    let (_dir, fake) = tree();
    fake.disk("sda").sata().add();
    fake.disk("sdb").usb().add();
    fake.disk("sdc").scsi().add();
    fake.disk("sdd").virtio_scsi().add();
    fake.disk("nvme0n1").nvme().add();
    fake.disk("vda").virtio().add();
    for name in ["loop0", "zram0", "dm-0", "md127", "sr0", "mmcblk0"] {
        fake.disk(name).add();
    }
    let sysfs = fake.sysfs();
    let found: Vec<(String, Transport)> = sysfs
        .disk_names(DiskFilter::All)
        .unwrap()
        .into_iter()
        .map(|name| {
            let transport = sysfs.disk(&name).unwrap().transport;
            (name, transport)
        })
        .collect();
    let expected = [
        ("dm-0", Transport::DeviceMapper),
        ("loop0", Transport::Loop),
        ("md127", Transport::Md),
        ("mmcblk0", Transport::Mmc),
        ("nvme0n1", Transport::Nvme),
        ("sda", Transport::Sata),
        ("sdb", Transport::Usb),
        ("sdc", Transport::Scsi),
        // virtio-scsi is SCSI to every user (the installer, hwinfo, the provisioner).
        ("sdd", Transport::Scsi),
        ("sr0", Transport::Optical),
        ("vda", Transport::Virtio),
        ("zram0", Transport::Zram),
    ]
    .map(|(name, transport)| (name.to_string(), transport));
    assert_eq!(found, expected);
}

#[test]
fn a_missing_attribute_names_its_file() {
    let (_dir, fake) = tree();
    fake.disk("sda").sata().add();
    std::fs::remove_file(fake.path("block/sda/queue/logical_block_size")).unwrap();
    let error = fake.sysfs().disk("sda").unwrap_err().to_string();
    assert!(
        error.starts_with("cannot read ") && error.contains("queue/logical_block_size"),
        "{error}"
    );
}

#[test]
fn partitions_come_with_number_extent_node_and_gpt_name() {
    let (_dir, fake) = tree();
    fake.disk("nvme0n1")
        .nvme()
        .partitions(2)
        .partition_label(2, "BOOTKIT-DATA")
        .add();
    let sysfs = fake.sysfs();
    let disk = sysfs.disk("nvme0n1").unwrap();
    let partitions = sysfs.partitions(&disk).unwrap();
    let summary: Vec<_> = partitions
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.number,
                p.start_512,
                p.size_bytes,
                p.dev_name.as_str(),
                p.part_label.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("nvme0n1p1", 1, 2048, 1 << 20, "nvme0n1p1", None),
            (
                "nvme0n1p2",
                2,
                4096,
                1 << 20,
                "nvme0n1p2",
                Some("BOOTKIT-DATA")
            ),
        ]
    );
    assert_eq!((partitions[1].major, partitions[1].minor), (259, 2));
}

#[test]
fn all_partitions_span_every_disk_and_skip_whole_disks() {
    let (_dir, fake) = tree();
    fake.disk("sdb").usb().partitions(1).add();
    fake.disk("loop0")
        .partitions(2)
        .partition_label(2, "BOOTKIT-DATA")
        .add();
    fake.disk("sda").sata().add();
    let names: Vec<(String, Option<String>)> = fake
        .sysfs()
        .all_partitions()
        .unwrap()
        .into_iter()
        .map(|p| (p.dev_name, p.part_label))
        .collect();
    assert_eq!(
        names,
        [
            ("loop0p1".to_string(), None),
            ("loop0p2".to_string(), Some("BOOTKIT-DATA".to_string())),
            ("sdb1".to_string(), None),
        ]
    );
}

#[test]
fn a_device_number_leads_to_its_disk() {
    let (_dir, fake) = tree();
    fake.disk("sda").sata().partitions(2).add();
    let sysfs = fake.sysfs();
    assert_eq!(sysfs.partition_parent(8, 2).as_deref(), Some("sda"));
    assert_eq!(sysfs.partition_parent(8, 0), None, "a whole disk");
    assert_eq!(sysfs.partition_parent(9, 9), None, "no such device");
    assert!(sysfs.device_dir(8, 0).unwrap().ends_with("block/sda"));
}

#[test]
fn partition_names_follow_the_kernel_rule() {
    assert_eq!(partition_name("sda", 2), "sda2");
    assert_eq!(partition_name("nvme0n1", 1), "nvme0n1p1");
    assert_eq!(partition_name("loop3", 4), "loop3p4");
}
