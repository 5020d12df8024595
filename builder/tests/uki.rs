//! The unified kernel image: systemd's stub with the kernel, initramfs, command line and
//! os-release as sections the stub finds, where the firmware loads them.

use std::fs;
use std::path::Path;

use bootkit_builder::uki::{DEFAULT_STUB, PeLayout, UkiInputs, build_uki, os_release, read_layout};

const CMDLINE: &str = "console=ttyS0 bootkit.mode=standalone quiet";

fn make_uki(dir: &Path, out: &str) -> (PeLayout, Vec<u8>, Vec<u8>) {
    let kernel: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let initrd: Vec<u8> = (0..777_777u32).map(|i| (i % 13) as u8).collect();
    fs::write(dir.join("vmlinuz"), &kernel).unwrap();
    fs::write(dir.join("initrd"), &initrd).unwrap();
    let layout = build_uki(
        &UkiInputs {
            stub: Path::new(DEFAULT_STUB),
            kernel: &dir.join("vmlinuz"),
            initrd: &dir.join("initrd"),
            cmdline: &format!("  {CMDLINE}\n"),
            os_release: &os_release("bootkit", "bootkit", "0.1.0"),
        },
        &dir.join(out),
    )
    .unwrap();
    (layout, kernel, initrd)
}

fn section_bytes(file: &[u8], layout: &PeLayout, name: &str) -> Vec<u8> {
    let section = layout.section(name).unwrap_or_else(|| panic!("no {name}"));
    let start = usize::try_from(section.file_offset).unwrap();
    file[start..start + usize::try_from(section.virtual_size).unwrap()].to_vec()
}

#[test]
fn sections_follow_the_stub_in_order_page_aligned_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, kernel, initrd) = make_uki(dir.path(), "bootkit.efi");
    let stub = read_layout(Path::new(DEFAULT_STUB)).unwrap();
    let stub_end = stub.sections.iter().map(|s| s.end()).max().unwrap();

    let added = [".osrel", ".cmdline", ".linux", ".initrd"];
    let mut previous_end = stub_end;
    for name in added {
        let section = layout.section(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(section.virtual_address % 4096, 0, "{name} not page aligned");
        assert!(
            section.virtual_address >= previous_end,
            "{name} at {:#x} overlaps what comes before it (ends {previous_end:#x})",
            section.virtual_address
        );
        previous_end = section.end();
    }
    assert!(
        layout.size_of_image >= previous_end,
        "SizeOfImage too small"
    );
    for kept in &stub.sections {
        assert_eq!(
            layout.section(&kept.name).map(|s| s.virtual_address),
            Some(kept.virtual_address),
            "stub section {} moved",
            kept.name
        );
    }

    let file = fs::read(dir.path().join("bootkit.efi")).unwrap();
    assert_eq!(
        section_bytes(&file, &layout, ".cmdline"),
        CMDLINE.as_bytes()
    );
    assert_eq!(section_bytes(&file, &layout, ".linux"), kernel);
    assert_eq!(section_bytes(&file, &layout, ".initrd"), initrd);
    let osrel = String::from_utf8(section_bytes(&file, &layout, ".osrel")).unwrap();
    assert!(osrel.contains("ID=bootkit\n"), "{osrel}");
    // objdump agrees that the file is a PE image with these sections.
    let headers = std::process::Command::new("objdump")
        .args(["-h", dir.path().join("bootkit.efi").to_str().unwrap()])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout);
    assert!(headers.contains("pei-x86-64"), "{headers}");
    for name in added {
        assert!(headers.contains(name), "objdump misses {name}: {headers}");
    }
}

#[test]
fn the_same_inputs_give_the_same_uki() {
    let dir = tempfile::tempdir().unwrap();
    make_uki(dir.path(), "one.efi");
    // objcopy stamps the current second into the header: let the second build fall in
    // another second, so a stamp left in would show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    make_uki(dir.path(), "two.efi");
    assert!(
        fs::read(dir.path().join("one.efi")).unwrap()
            == fs::read(dir.path().join("two.efi")).unwrap(),
        "two UKIs of the same inputs differ"
    );
}

#[test]
fn a_missing_stub_says_which_package_ships_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("k"), b"k").unwrap();
    let err = build_uki(
        &UkiInputs {
            stub: &dir.path().join("no-stub.efi"),
            kernel: &dir.path().join("k"),
            initrd: &dir.path().join("k"),
            cmdline: "x",
            os_release: "ID=x\n",
        },
        &dir.path().join("out.efi"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("systemd-boot-efi"), "{err}");
    assert!(!dir.path().join("out.efi").exists());
}
