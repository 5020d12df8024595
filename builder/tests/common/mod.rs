//! Helpers shared by the builder's image tests: run host tools, read partition tables.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run a host tool, fail the test with its stderr if it fails, return its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A partition as `sfdisk --json` reports it.
#[derive(Debug, Clone)]
pub struct Partition {
    pub name: String,
    pub type_guid: String,
    /// Byte offset and size.
    pub offset: u64,
    pub size: u64,
}

pub fn partitions(image: &Path) -> Vec<Partition> {
    let json = run("sfdisk", &["--json", image.to_str().unwrap()]);
    let table: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(table["partitiontable"]["label"], "gpt", "{json}");
    assert_eq!(table["partitiontable"]["sectorsize"], 512, "{json}");
    table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Partition {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            type_guid: p["type"].as_str().unwrap().to_string(),
            offset: p["start"].as_u64().unwrap() * 512,
            size: p["size"].as_u64().unwrap() * 512,
        })
        .collect()
}

/// Each partition's name and type GUID, in table order: what a layout test compares.
pub fn names_and_types(partitions: &[Partition]) -> Vec<(&str, &str)> {
    partitions
        .iter()
        .map(|p| (p.name.as_str(), p.type_guid.as_str()))
        .collect()
}

/// `image@@offset`, how mtools addresses a filesystem inside a disk image.
pub fn mtools_image(image: &Path, partition: &Partition) -> String {
    format!("{}@@{}", image.display(), partition.offset)
}

/// `image?offset=N`, how e2fsprogs addresses a filesystem inside a disk image.
pub fn e2fs_image(image: &Path, partition: &Partition) -> String {
    format!("{}?offset={}", image.display(), partition.offset)
}

/// A file read out of an ext4 filesystem inside a disk image.
pub fn ext4_cat(image: &Path, partition: &Partition, path: &str) -> String {
    run(
        "debugfs",
        &["-R", &format!("cat {path}"), &e2fs_image(image, partition)],
    )
}

/// The filesystem label blkid finds at a partition.
pub fn label(image: &Path, partition: &Partition) -> String {
    run(
        "blkid",
        &[
            "-p",
            "-O",
            &partition.offset.to_string(),
            "-s",
            "LABEL",
            "-o",
            "value",
            image.to_str().unwrap(),
        ],
    )
    .trim()
    .to_string()
}

pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const LINUX_DATA_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// Debian's kernel package, fetched by scripts/setup.sh.
pub fn kernel_deb() -> PathBuf {
    let deb = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/kernel/linux-image-amd64.deb");
    assert!(
        deb.is_file(),
        "{} is missing: run scripts/setup.sh to fetch Debian's kernel package",
        deb.display()
    );
    deb
}
