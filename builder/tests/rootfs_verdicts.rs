//! The build refuses a base rootfs archive exactly when the init would refuse it at boot:
//! for each archive, `bootkit-build`'s rootfs step and the init's real unpacker (the oracle)
//! give the same verdict, so a broken archive fails the build, not the node.

use bootkit_builder::config::CompressionKind;
use bootkit_builder::rootfs::write_archive;
use bootkit_builder::tree::Tree;
use tar::EntryType;

/// One archive entry: its name, its kind and its link target (empty if none).
type Entry<'a> = (&'a str, EntryType, &'a str);

/// A tar archive of `(name, kind, link target)` entries, built byte by byte as a hostile
/// tool could (the tar crate's high-level builder refuses some of these names).
fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        let raw = header.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        builder.append(&header, &[][..]).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
#[ignore = "needs root: the init's unpacker sets the entries' owners (chown)"]
fn the_build_refuses_a_base_archive_exactly_when_the_init_would() {
    use EntryType::{Directory, Link, Regular, Symlink};
    let cases: [(&str, Vec<Entry<'_>>); 8] = [
        (
            "a plain rootfs",
            vec![
                ("./", Directory, ""),
                ("etc/", Directory, ""),
                ("etc/x", Regular, ""),
            ],
        ),
        (
            "a file below a symlink to /",
            vec![("a", Symlink, "/"), ("a/etc/x", Regular, "")],
        ),
        (
            "a directory below a symlink",
            vec![
                ("lib", Symlink, "usr/lib"),
                ("lib/firmware/", Directory, ""),
            ],
        ),
        (
            "a hard link through a symlink",
            vec![("a", Symlink, "/etc"), ("b", Link, "a/passwd")],
        ),
        (
            "a symlink replaced by a directory",
            vec![
                ("a", Symlink, "/"),
                ("a/", Directory, ""),
                ("a/x", Regular, ""),
            ],
        ),
        ("an absolute name", vec![("/etc/x", Regular, "")]),
        ("a '..' name", vec![("etc/../../x", Regular, "")]),
        ("no entries at all", vec![]),
    ];
    let mut verdicts = Vec::new();
    for (what, entries) in &cases {
        let tar = archive(entries);
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.tar");
        std::fs::write(&base, &tar).unwrap();
        let built = write_archive(&Tree::new(), Some(&base), CompressionKind::None, 0);
        let target = dir.path().join("newroot");
        std::fs::create_dir(&target).unwrap();
        let booted = bootkit_init::rootfs::unpack(&base, &target);
        verdicts.push(format!(
            "{what}: build {}, boot {}",
            if built.is_ok() { "accepts" } else { "refuses" },
            if booted.is_ok() { "accepts" } else { "refuses" }
        ));
        assert_eq!(
            built.is_ok(),
            booted.is_ok(),
            "{what}: the build and the init disagree:\n{}\nbuild: {:?}\nboot: {:?}",
            verdicts.join("\n"),
            built.err().map(|e| e.to_string()),
            booted.err().map(|e| e.to_string()),
        );
    }
    // Both sides accept the plain rootfs and the replaced symlink, and refuse the rest.
    assert_eq!(
        verdicts,
        [
            "a plain rootfs: build accepts, boot accepts",
            "a file below a symlink to /: build refuses, boot refuses",
            "a directory below a symlink: build refuses, boot refuses",
            "a hard link through a symlink: build refuses, boot refuses",
            "a symlink replaced by a directory: build accepts, boot accepts",
            "an absolute name: build refuses, boot refuses",
            "a '..' name: build refuses, boot refuses",
            "no entries at all: build refuses, boot refuses",
        ]
    );
}
