//! The unpacker against real archives: everything a rootfs holds comes out right in every
//! compression, and every kind of escape is refused by name with nothing written outside.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use bootkit_common::compress::Compression;
use tar::EntryType;

use super::test_support::{ArchiveBuilder, MTIME, Scratch, TmpfsMount, compress};
use super::{RootfsError, unpack};

const FORMATS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Zstd,
    Compression::Xz,
    Compression::None,
];

fn full_rootfs() -> Vec<u8> {
    let long_name = format!("usr/share/{}/file", "d".repeat(120));
    ArchiveBuilder::new()
        .dir("./", 0o755)
        .dir("etc", 0o750)
        .owned_file("etc/hostname", b"edge-node\n", 0o640, 1000, 100)
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", b"#!/bin/true\n", 0o4755)
        .hard_link("usr/bin/su-again", "usr/bin/su")
        .symlink("bin", "usr/bin")
        .symlink("etc/mtab", "/proc/self/mounts")
        .dir("tmp", 0o1777)
        .dir("ro", 0o555)
        .file(
            "ro/inside",
            b"written before the directory became read-only",
            0o444,
        )
        .file(
            "implied/parents/file",
            b"no directory entries above me",
            0o600,
        )
        .file(&long_name, b"long", 0o644)
        .node("dev/null", EntryType::Char, 1, 3, 0o666)
        .node("dev/loop0", EntryType::Block, 7, 0, 0o660)
        .node("run/initctl", EntryType::Fifo, 0, 0, 0o600)
        .pax(&[
            ("SCHILY.xattr.trusted.bootkit", b"kept"),
            ("uid", b"4000000"),
        ])
        .file("etc/labelled", b"x", 0o644)
        .finish()
}

fn assert_full_rootfs(root: &Path) {
    let meta = |path: &str| std::fs::symlink_metadata(root.join(path)).unwrap();
    assert_eq!(meta("").mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read(root.join("etc/hostname")).unwrap(),
        b"edge-node\n"
    );
    let hostname = meta("etc/hostname");
    assert_eq!(
        (hostname.mode() & 0o7777, hostname.uid(), hostname.gid()),
        (0o640, 1000, 100)
    );
    assert_eq!(hostname.mtime(), MTIME as i64);
    // Directory modes and times are set after their contents were written.
    let etc = meta("etc");
    assert_eq!((etc.mode() & 0o7777, etc.mtime()), (0o750, MTIME as i64));
    assert_eq!(
        meta("usr/bin/su").mode() & 0o7777,
        0o4755,
        "setuid survives"
    );
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777, "sticky bit survives");
    assert_eq!(meta("ro").mode() & 0o7777, 0o555);
    assert_eq!(std::fs::read(root.join("ro/inside")).unwrap().len(), 45);
    assert_eq!(
        meta("usr/bin/su").ino(),
        meta("usr/bin/su-again").ino(),
        "hard link"
    );
    assert_eq!(meta("usr/bin/su").nlink(), 2);
    assert_eq!(
        std::fs::read_link(root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/mtab")).unwrap(),
        Path::new("/proc/self/mounts")
    );
    assert_eq!(meta("bin").mtime(), MTIME as i64, "symlink times");
    assert!(root.join("implied/parents/file").is_file());
    assert!(
        root.join(format!("usr/share/{}/file", "d".repeat(120)))
            .is_file()
    );
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (rustix::fs::makedev(1, 3), 0o666)
    );
    assert!(meta("dev/loop0").file_type().is_block_device());
    assert_eq!(meta("dev/loop0").rdev(), rustix::fs::makedev(7, 0));
    assert!(meta("run/initctl").file_type().is_fifo());
    assert_eq!(
        meta("etc/labelled").uid(),
        4_000_000,
        "pax uid wins over the header"
    );
    let mut value = [0u8; 16];
    match rustix::fs::lgetxattr(root.join("etc/labelled"), "trusted.bootkit", &mut value) {
        Ok(len) => assert_eq!(&value[..len], b"kept"),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            eprintln!("skipped the xattr check: the host fs has no trusted.* xattrs")
        }
        Err(other) => panic!("xattr not set: {other}"),
    }
}

#[test]
#[ignore = "needs root: sets the entries' owners (chown)"]
fn a_full_rootfs_unpacks_right_in_every_compression() {
    let tar = full_rootfs();
    for format in FORMATS {
        let scratch = Scratch::new(&compress(&tar, format));
        let stats = unpack(&scratch.archive, &scratch.target).unwrap();
        assert_eq!(stats.format, format);
        assert_eq!(stats.entries, 17);
        assert_eq!(
            stats.archive_size,
            std::fs::metadata(&scratch.archive).unwrap().len()
        );
        assert_full_rootfs(&scratch.target);
    }
}

#[test]
#[ignore = "needs root: sets the entries' owners (chown)"]
fn later_entries_replace_earlier_ones_without_following_links() {
    let scratch_dir = tempfile::tempdir().unwrap();
    let victim = scratch_dir.path().join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    let tar = ArchiveBuilder::new()
        .symlink("f", victim.to_str().unwrap())
        .file("f", b"replaced", 0o644)
        .file("g", b"old", 0o644)
        .file("g", b"new", 0o644)
        .dir("d", 0o755)
        .dir("d", 0o700)
        .finish();
    let scratch = Scratch::new(&tar);
    unpack(&scratch.archive, &scratch.target).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    assert!(
        std::fs::symlink_metadata(scratch.target.join("f"))
            .unwrap()
            .is_file()
    );
    assert_eq!(
        std::fs::read(scratch.target.join("f")).unwrap(),
        b"replaced"
    );
    assert_eq!(std::fs::read(scratch.target.join("g")).unwrap(), b"new");
    assert_eq!(
        std::fs::metadata(scratch.target.join("d")).unwrap().mode() & 0o777,
        0o700
    );
}

/// Unpack `tar` and check it is refused naming `entry` and `reason`, with nothing outside.
fn assert_refused(tar: Vec<u8>, entry: &str, reason: &str) {
    for format in [Compression::None, Compression::Gzip] {
        let scratch = Scratch::new(&compress(&tar, format));
        let err = unpack(&scratch.archive, &scratch.target).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, RootfsError::UnsafeEntry { .. }), "{message}");
        assert!(
            message.contains(&format!("'{entry}'")),
            "entry not named: {message}"
        );
        assert!(message.contains(reason), "reason not given: {message}");
        assert!(
            scratch.outside_is_empty(),
            "something was written outside: {message}"
        );
        assert_eq!(scratch.siblings(), ["newroot", "outside", "rootfs.tar.gz"]);
    }
}

#[test]
fn dot_dot_names_are_refused() {
    let tar = ArchiveBuilder::new()
        .raw(b"../outside/escaped", EntryType::Regular, b"", b"evil")
        .finish();
    assert_refused(tar, "../outside/escaped", "'..'");
    let tar = ArchiveBuilder::new()
        .dir("a", 0o755)
        .raw(b"a/../../outside/escaped", EntryType::Regular, b"", b"evil")
        .finish();
    assert_refused(tar, "a/../../outside/escaped", "'..'");
}

#[test]
fn dot_dot_in_a_pax_path_is_refused() {
    let tar = ArchiveBuilder::new()
        .pax(&[("path", b"../outside/escaped")])
        .file("harmless", b"evil", 0o644)
        .finish();
    assert_refused(tar, "../outside/escaped", "'..'");
}

#[test]
fn absolute_names_are_refused() {
    let host_path = format!("/tmp/bootkit-absolute-escape-{}", std::process::id());
    let tar = ArchiveBuilder::new()
        .raw(host_path.as_bytes(), EntryType::Regular, b"", b"evil")
        .finish();
    assert_refused(tar, &host_path, "absolute");
    assert!(!Path::new(&host_path).exists());
}

#[test]
#[ignore = "needs root: sets the entries' owners (chown)"]
fn writes_through_a_symlink_are_refused() {
    // Absolute and relative links to the sibling directory; files and directories below them.
    let scratch = Scratch::new(b"");
    for target in [scratch.outside.to_str().unwrap(), "../outside"] {
        let tar = ArchiveBuilder::new()
            .symlink("evil", target)
            .file("evil/passwd", b"root::0:0::/:/bin/sh", 0o644)
            .finish();
        assert_refused(tar, "evil/passwd", "symbolic link 'evil'");
        let tar = ArchiveBuilder::new()
            .dir("etc", 0o755)
            .symlink("etc/evil", target)
            .dir("etc/evil/sub", 0o755)
            .finish();
        assert_refused(tar, "etc/evil/sub", "symbolic link 'etc/evil'");
        let tar = ArchiveBuilder::new()
            .file("real", b"x", 0o644)
            .symlink("evil", target)
            .hard_link("evil/link", "real")
            .finish();
        assert_refused(tar, "evil/link", "symbolic link 'evil'");
    }
}

#[test]
#[ignore = "needs root: sets the entries' owners (chown)"]
fn hard_links_to_outside_are_refused() {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    let absolute = ArchiveBuilder::new()
        .hard_link("stolen", secret.to_str().unwrap())
        .finish();
    assert_refused(absolute, "stolen", "absolute");
    let relative = ArchiveBuilder::new()
        .hard_link("stolen", "../outside/x")
        .finish();
    assert_refused(relative, "stolen", "'..'");
    let through_symlink = ArchiveBuilder::new()
        .symlink("evil", secrets.path().to_str().unwrap())
        .hard_link("stolen", "evil/secret")
        .finish();
    assert_refused(
        through_symlink,
        "stolen",
        "goes through the symbolic link 'evil'",
    );
    assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
}

#[test]
fn a_non_directory_root_entry_is_refused() {
    let tar = ArchiveBuilder::new()
        .raw(b"./", EntryType::Symlink, b"/", b"")
        .finish();
    assert_refused(tar, "./", "must be a directory");
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn a_full_tmpfs_says_how_big_it_was_and_what_to_do() {
    // Incompressible-ish data so the archive size is close to the data size.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    let tar = ArchiveBuilder::new()
        .file("small", b"fits", 0o644)
        .file("usr/lib/firmware.bin", &data, 0o644)
        .finish();
    let scratch = Scratch::new(&compress(&tar, Compression::Zstd));
    let _mount = TmpfsMount::new(&scratch.target, "size=64k");
    let err = unpack(&scratch.archive, &scratch.target).unwrap_err();
    let message = err.to_string();
    let archive_size = std::fs::metadata(&scratch.archive).unwrap().len();
    assert!(matches!(err, RootfsError::NoSpace { .. }), "{message}");
    assert!(message.contains("'usr/lib/firmware.bin'"), "{message}");
    assert!(
        message.contains("64.0 KiB (65536 bytes)"),
        "tmpfs size: {message}"
    );
    assert!(
        message.contains(&format!("({archive_size} bytes) on disk")),
        "archive size: {message}"
    );
    assert!(message.contains("rootflags=size="), "{message}");
    assert!(message.contains("more RAM"), "{message}");
}

#[test]
fn a_truncated_archive_is_a_read_error() {
    let tar = ArchiveBuilder::new()
        .file("big", &vec![7u8; 100_000], 0o644)
        .finish();
    let gz = compress(&tar, Compression::Gzip);
    let scratch = Scratch::new(&gz[..gz.len() / 2]);
    let message = unpack(&scratch.archive, &scratch.target)
        .unwrap_err()
        .to_string();
    assert!(message.contains("corrupt or truncated"), "{message}");
    assert!(message.contains("gzip"), "{message}");
    assert!(message.contains("'big'"), "{message}");
}

#[test]
fn a_missing_target_is_named() {
    let scratch = Scratch::new(&ArchiveBuilder::new().finish());
    let missing = scratch.target.join("nope");
    let message = unpack(&scratch.archive, &missing).unwrap_err().to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[test]
fn an_unknown_entry_type_is_named() {
    let tar = ArchiveBuilder::new()
        .raw(b"odd", EntryType::new(b'Z'), b"", b"")
        .finish();
    let scratch = Scratch::new(&tar);
    let message = unpack(&scratch.archive, &scratch.target)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("'odd'") && message.contains("tar type 'Z'"),
        "{message}"
    );
}

/// The compressors' own test mode is the oracle: for each format, an archive compressed by
/// the real tool (GNU gzip, zstd, xz), intact and spoilt four ways, is unpacked exactly when
/// `gzip -t` / `zstd -t` / `xz -t` passes it (exit 0). Needs the three tools (scripts/setup.sh).
#[test]
fn an_archive_unpacks_exactly_when_its_compressors_test_mode_passes_it() {
    // Text-like data that compresses but not to nothing, so a flipped bit lands in data.
    let mut state = 0x2545_f491_u32;
    let data: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            b"etc/usr/bin/lib64 \n"[(state % 19) as usize]
        })
        .collect();
    let tar = ArchiveBuilder::new()
        .dir("etc", 0o755)
        .file("etc/data", &data, 0o644)
        .finish();
    let garbage: Vec<u8> = data.iter().take(4096).map(|byte| byte ^ 0x5a).collect();
    let spoilt: [(&str, Box<Spoil<'_>>); 5] = [
        ("intact", Box::new(|_| {})),
        (
            "one bit flipped in the middle",
            Box::new(|bytes| {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x10;
            }),
        ),
        (
            "its last 4 bytes cut",
            Box::new(|bytes| bytes.truncate(bytes.len() - 4)),
        ),
        (
            "4 KiB of garbage after it",
            Box::new(|bytes| bytes.extend_from_slice(&garbage)),
        ),
        (
            "512 zero bytes after it",
            Box::new(|bytes| bytes.extend_from_slice(&[0; 512])),
        ),
    ];
    let mut verdicts = Vec::new();
    for (tool, extension) in [("gzip", "gz"), ("zstd", "zst"), ("xz", "xz")] {
        let compressed = run_tool(tool, &["-c"], &tar);
        for (how, spoil) in &spoilt {
            let mut bytes = compressed.clone();
            spoil(&mut bytes);
            let scratch = Scratch::new(&bytes);
            let tested = scratch.dir.path().join(format!("tested.tar.{extension}"));
            std::fs::write(&tested, &bytes).unwrap();
            let tool_passes = std::process::Command::new(tool)
                .args(["-q", "-t"])
                .arg(&tested)
                .status()
                .unwrap_or_else(|e| panic!("cannot run {tool} (scripts/setup.sh installs it): {e}"))
                .success();
            let ours = unpack(&scratch.archive, &scratch.target);
            if let Err(error) = &ours {
                let message = error.to_string();
                assert!(message.contains("rebuild"), "{tool}, {how}: {message}");
            }
            verdicts.push(format!(
                "{tool}, {how}: {tool} -t {}, unpack {}",
                if tool_passes { "passes" } else { "refuses" },
                match &ours {
                    Ok(_) => "passes".to_string(),
                    Err(error) => format!("refuses ({error})"),
                }
            ));
            assert_eq!(
                ours.is_ok(),
                tool_passes,
                "{tool}, {how}: our verdict differs from `{tool} -t`:\n{}",
                verdicts.join("\n")
            );
        }
    }
}

/// A way to spoil a compressed archive in place.
type Spoil<'a> = dyn Fn(&mut Vec<u8>) + 'a;

/// `tool ARGS` with `input` on stdin; its stdout.
fn run_tool(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {tool} (scripts/setup.sh installs it): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "{tool} {args:?} failed");
    output.stdout
}

#[test]
fn an_archive_without_entries_is_refused() {
    for bytes in [Vec::new(), ArchiveBuilder::new().finish()] {
        for format in FORMATS {
            let scratch = Scratch::new(&compress(&bytes, format));
            let message = unpack(&scratch.archive, &scratch.target)
                .unwrap_err()
                .to_string();
            assert!(message.contains("has no entries"), "{format}: {message}");
        }
    }
}

/// The tar reader quotes a broken header field's bytes in its error; none of them reaches
/// the console raw (an escape sequence in an archive must not clear the screen or ring).
#[test]
fn archive_bytes_in_a_read_error_are_escaped() {
    let mut tar = ArchiveBuilder::new().file("etc/x", b"x", 0o644).finish();
    // The size field (12 octal digits at offset 124) holds ESC [2J BEL instead.
    tar[124..136].copy_from_slice(b"\x1b[2J\x07\x1b[31m12");
    // A correct header checksum, so the reader gets as far as the size field: the sum of the
    // header's bytes with the checksum field as spaces, six octal digits, NUL, space.
    tar[148..156].fill(b' ');
    let sum: u32 = tar[..512].iter().map(|&byte| u32::from(byte)).sum();
    tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let scratch = Scratch::new(&tar);
    let message =
        bootkit_common::error_chain(&unpack(&scratch.archive, &scratch.target).unwrap_err());
    assert!(
        !message.chars().any(char::is_control),
        "a control character reached the message: {message:?}"
    );
    assert!(message.contains("\\u{1b}"), "{message}");
}

/// GNU tar is the oracle for an archive that names one path several times: the later entry
/// wins, and a directory's deferred mode goes to the directory its entry made, never to what
/// a later entry put at that path. Both extract the same archive; every path compares.
#[test]
#[ignore = "needs root: sets the entries' owners (chown), as `tar -xp --same-owner` does"]
fn a_path_named_twice_ends_as_gnu_tar_leaves_it() {
    let tar = ArchiveBuilder::new()
        // A directory, then a file of that name.
        .dir("d", 0o755)
        .file("d", b"now a file", 0o640)
        // A directory, then a symlink of that name.
        .dir("s", 0o750)
        .symlink("s", "d")
        // A directory, a file, then a directory again.
        .dir("back", 0o700)
        .file("back", b"x", 0o600)
        .dir("back", 0o751)
        // A directory listed twice with files inside: the later mode wins.
        .dir("twice", 0o700)
        .file("twice/inside", b"kept", 0o644)
        .dir("twice", 0o755)
        .finish();
    let scratch = Scratch::new(&tar);
    unpack(&scratch.archive, &scratch.target).unwrap();
    let gnu = scratch.dir.path().join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-x", "-p", "--same-owner", "-f"])
        .arg(&scratch.archive)
        .arg("-C")
        .arg(&gnu)
        .status()
        .unwrap();
    assert!(status.success(), "GNU tar could not extract the archive");
    let describe = |root: &Path| -> Vec<String> {
        ["d", "s", "back", "twice", "twice/inside"]
            .iter()
            .map(|name| {
                let path = root.join(name);
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let kind = if meta.file_type().is_symlink() {
                    format!(
                        "symlink to {}",
                        std::fs::read_link(&path).unwrap().display()
                    )
                } else if meta.is_dir() {
                    format!("directory {:o}", meta.mode() & 0o7777)
                } else {
                    format!("file {:o}", meta.mode() & 0o7777)
                };
                format!("{name}: {kind}")
            })
            .collect()
    };
    assert_eq!(describe(&scratch.target), describe(&gnu));
    assert_eq!(
        describe(&scratch.target),
        [
            "d: file 640",
            "s: symlink to d",
            "back: directory 751",
            "twice: directory 755",
            "twice/inside: file 644",
        ]
    );
}
