//! `inspect`: list an initramfs like lsinitrd, and the rootfs archive inside it.
//!
//! An initramfs may be several cpio segments back to back (an uncompressed early-microcode
//! archive, then a compressed main one), each compressed or not; the kernel unpacks them in
//! turn and so does this. Compression is recognised by magic bytes.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::Path;

use bootkit_common::compress::{Compression, decode_all, decoder};
use bootkit_common::layout::is_rootfs_archive;
use cpio::newc;

use crate::error::{BuildError, Result};

/// One entry of an archive, as `inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full mode: file type and permission bits.
    pub mode: u32,
    /// Size in bytes (0 for directories and devices).
    pub size: u64,
    /// Owner's uid.
    pub uid: u64,
    /// Group's gid.
    pub gid: u64,
    /// Path in the archive.
    pub name: String,
    /// Symlink target, or `major,minor` of a device.
    pub detail: Option<String>,
}

/// What an initramfs holds: each cpio segment and the rootfs archive inside.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// One per cpio segment: its compression and entries.
    pub segments: Vec<(Compression, Vec<Entry>)>,
    /// The rootfs archive found in the initramfs: its name and entries.
    pub rootfs: Option<(String, Vec<Entry>)>,
}

/// Lists the initramfs at `path`: every segment and, when found, the rootfs archive.
pub fn inspect(path: &Path) -> Result<Listing> {
    let data = fs::read(path).map_err(BuildError::io(format!("read {}", path.display())))?;
    list_initramfs(&data).map_err(|reason| BuildError::Archive {
        archive: path.to_path_buf(),
        reason,
    })
}

/// List an initramfs held in memory: its cpio segments, compressed or not, and the rootfs
/// archive inside. The error says what is wrong with the data.
pub fn list_initramfs(data: &[u8]) -> std::result::Result<Listing, String> {
    let mut listing = Listing::default();
    let mut rest = data;
    loop {
        // Segments are padded with zeros (to 4 or 512 bytes) between them.
        let skip = rest.iter().take_while(|b| **b == 0).count();
        rest = &rest[skip..];
        if rest.is_empty() {
            break;
        }
        let compression = Compression::detect(rest);
        let (plain, after) = if compression == Compression::None {
            (None, rest)
        } else {
            let (plain, after) =
                decode_segment(compression, rest).map_err(|err| format!("{compression}: {err}"))?;
            (Some(plain), after)
        };
        match &plain {
            None => {
                let (entries, after) = read_cpio(rest, &mut listing.rootfs)?;
                listing.segments.push((compression, entries));
                rest = after;
            }
            Some(plain) => {
                // One compressed stream may hold several archives back to back.
                let mut inner = &plain[..];
                loop {
                    let skip = inner.iter().take_while(|b| **b == 0).count();
                    inner = &inner[skip..];
                    if inner.is_empty() {
                        break;
                    }
                    let (entries, next) = read_cpio(inner, &mut listing.rootfs)?;
                    listing.segments.push((compression, entries));
                    inner = next;
                }
                rest = after;
            }
        }
    }
    Ok(listing)
}

/// Decompress the compressed segment at the start of `data`; returns its content and what
/// follows it (more segments, compressed or not, may come after a compressed one). Like the
/// kernel, stop where the compressed stream ends: at the end of the zstd frames or gzip
/// members that follow each other. xz is decoded to the end of the file.
fn decode_segment(compression: Compression, data: &[u8]) -> std::io::Result<(Vec<u8>, &[u8])> {
    let mut plain = Vec::new();
    let mut rest = data;
    match compression {
        Compression::Zstd => {
            while Compression::detect(rest) == Compression::Zstd {
                let size = zstd::zstd_safe::find_frame_compressed_size(rest)
                    .map_err(|code| std::io::Error::other(zstd::zstd_safe::get_error_name(code)))?;
                let (frame, next) = rest.split_at(size);
                plain.extend(zstd::stream::decode_all(frame)?);
                rest = next;
            }
        }
        Compression::Gzip => {
            while Compression::detect(rest) == Compression::Gzip {
                // The bufread decoder reads no further than the member's end.
                let mut member = flate2::bufread::GzDecoder::new(rest);
                member.read_to_end(&mut plain)?;
                rest = member.into_inner();
            }
        }
        _ => {
            plain = decode_all(data)?;
            rest = &[];
        }
    }
    Ok((plain, rest))
}

type Rootfs = Option<(String, Vec<Entry>)>;

/// Read one cpio segment up to its trailer; returns its entries and what follows it.
fn read_cpio<'a>(
    mut data: &'a [u8],
    rootfs: &mut Rootfs,
) -> Result<(Vec<Entry>, &'a [u8]), String> {
    let mut entries = Vec::new();
    loop {
        let mut reader =
            newc::Reader::new(data).map_err(|err| format!("not a newc cpio archive: {err}"))?;
        let meta = reader.entry().clone();
        if meta.is_trailer() {
            data = reader.finish().map_err(|err| err.to_string())?;
            return Ok((entries, data));
        }
        let kind = meta.mode() & 0o170000;
        let mut body = Vec::new();
        if kind == 0o120000 || is_rootfs_archive(meta.name()) {
            reader
                .read_to_end(&mut body)
                .map_err(|err| format!("{}: {err}", meta.name()))?;
        }
        let detail = match kind {
            0o120000 => Some(String::from_utf8_lossy(&body).into_owned()),
            0o020000 | 0o060000 => Some(format!("{},{}", meta.rdev_major(), meta.rdev_minor())),
            _ => None,
        };
        if is_rootfs_archive(meta.name()) {
            let listed = list_tar(&body).map_err(|err| format!("{}: {err}", meta.name()))?;
            *rootfs = Some((meta.name().to_string(), listed));
        }
        entries.push(Entry {
            mode: meta.mode(),
            size: u64::from(meta.file_size()),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            name: meta.name().to_string(),
            detail,
        });
        data = reader.finish().map_err(|err| err.to_string())?;
    }
}

/// List a (possibly compressed) tar archive.
pub fn list_tar(data: &[u8]) -> std::io::Result<Vec<Entry>> {
    let (_, reader) = decoder(data)?;
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let header = entry.header();
        let kind = header.entry_type();
        let type_bits = match kind {
            tar::EntryType::Directory => 0o040000,
            tar::EntryType::Symlink => 0o120000,
            tar::EntryType::Char => 0o020000,
            tar::EntryType::Block => 0o060000,
            tar::EntryType::Fifo => 0o010000,
            _ => 0o100000,
        };
        let detail = if kind.is_symlink() || kind.is_hard_link() {
            entry
                .link_name()?
                .map(|link| link.to_string_lossy().into_owned())
        } else if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            Some(format!(
                "{},{}",
                header.device_major()?.unwrap_or(0),
                header.device_minor()?.unwrap_or(0)
            ))
        } else {
            None
        };
        out.push(Entry {
            mode: type_bits | (header.mode()? & 0o7777),
            size: entry.size(),
            uid: header.uid()?,
            gid: header.gid()?,
            name: entry.path()?.to_string_lossy().into_owned(),
            detail,
        });
    }
    Ok(out)
}

/// `drwxr-xr-x` from a full mode.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut out = String::from(kind);
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        out.push(match (mode & special != 0, exec) {
            (true, true) => special_char,
            (true, false) => special_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

fn render_entry(out: &mut String, entry: &Entry) {
    let _ = write!(
        out,
        "{} {:>5} {:>5} {:>10} {}",
        mode_string(entry.mode),
        entry.uid,
        entry.gid,
        entry.size,
        entry.name
    );
    match (&entry.detail, entry.mode & 0o170000) {
        (Some(target), 0o120000) => {
            let _ = write!(out, " -> {target}");
        }
        (Some(detail), _) => {
            let _ = write!(out, " ({detail})");
        }
        _ => {}
    }
    out.push('\n');
}

/// The listing as text, segment by segment, then the rootfs archive.
pub fn render(listing: &Listing) -> String {
    let mut out = String::new();
    for (index, (compression, entries)) in listing.segments.iter().enumerate() {
        let _ = writeln!(
            out,
            "# initramfs segment {} ({compression}, {} entries)",
            index + 1,
            entries.len()
        );
        for entry in entries {
            render_entry(&mut out, entry);
        }
    }
    if let Some((name, entries)) = &listing.rootfs {
        let _ = writeln!(out, "# rootfs archive /{name} ({} entries)", entries.len());
        for entry in entries {
            render_entry(&mut out, entry);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Source, Tree};

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
    }

    #[test]
    fn concatenated_plain_and_compressed_segments_are_all_listed() {
        let mut early = Tree::new();
        early
            .add_file(
                "/kernel/x86/microcode/GenuineIntel.bin",
                Source::Bytes(vec![1; 10]),
                0o644,
            )
            .unwrap();
        let mut main = Tree::new();
        main.add_file("/init", Source::Bytes(b"init".to_vec()), 0o755)
            .unwrap();
        let mut data = crate::cpio::write_newc(&early, Vec::new(), 0).unwrap();
        data.resize(data.len().div_ceil(512) * 512, 0);
        let main_cpio = crate::cpio::write_newc(&main, Vec::new(), 0).unwrap();
        data.extend(zstd::encode_all(&main_cpio[..], 3).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initramfs");
        fs::write(&path, data).unwrap();
        let listing = inspect(&path).unwrap();
        assert_eq!(listing.segments.len(), 2);
        assert_eq!(listing.segments[0].0, Compression::None);
        assert_eq!(listing.segments[1].0, Compression::Zstd);
        assert!(listing.segments[1].1.iter().any(|e| e.name == "init"));
        let text = render(&listing);
        assert!(
            text.contains("-rwxr-xr-x     0     0          4 init"),
            "{text}"
        );
    }

    /// The builder's own layout: a compressed segment, zero padding to 4 bytes, then an
    /// uncompressed one holding the rootfs archive; with zstd (two frames) and gzip.
    #[test]
    fn a_plain_segment_after_a_compressed_one_is_listed() {
        let mut main = Tree::new();
        main.add_file("/init", Source::Bytes(b"init".to_vec()), 0o755)
            .unwrap();
        main.add_file("/etc/a", Source::Bytes(vec![b'a'; 5000]), 0o644)
            .unwrap();
        let main_cpio = crate::cpio::write_newc(&main, Vec::new(), 0).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        tar.append_data(&mut header, "etc/hostname", &b"vm\n"[..])
            .unwrap();
        let rootfs = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
        let mut second = Tree::new();
        second
            .add_file("/rootfs.tar.zst", Source::Bytes(rootfs), 0o644)
            .unwrap();
        let (head, tail) = main_cpio.split_at(1000);
        let zstd_two_frames = [
            zstd::encode_all(head, 3).unwrap(),
            zstd::encode_all(tail, 3).unwrap(),
        ]
        .concat();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, &main_cpio).unwrap();
        for (first, compression) in [
            (zstd_two_frames, Compression::Zstd),
            (gzip.finish().unwrap(), Compression::Gzip),
        ] {
            let mut data = first;
            data.push(0); // at least one byte of padding, whatever the length
            data.resize(data.len().next_multiple_of(4), 0);
            let data = crate::cpio::write_newc_from(&second, data, 0, 3).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("initramfs");
            fs::write(&path, data).unwrap();
            let listing = inspect(&path).unwrap();
            let kinds: Vec<Compression> = listing.segments.iter().map(|s| s.0).collect();
            assert_eq!(kinds, [compression, Compression::None]);
            let names = |i: usize| -> Vec<String> {
                listing.segments[i]
                    .1
                    .iter()
                    .map(|e| e.name.clone())
                    .collect()
            };
            assert_eq!(names(0), ["etc", "etc/a", "init"]);
            assert_eq!(names(1), ["rootfs.tar.zst"]);
            let (name, entries) = listing.rootfs.as_ref().expect("rootfs listed");
            assert_eq!(name, "rootfs.tar.zst");
            assert_eq!(entries[0].name, "etc/hostname");
        }
    }
}
