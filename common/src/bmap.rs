//! bmaptool's block map: which blocks of a sparse disk image hold data, with a checksum per
//! range, so a writer copies only those and can check each one (formats 1.x and 2.0, the
//! files `bmaptool create` makes and `bmaptool copy` reads).
//!
//! Hand-written: the bmap crates on crates.io either only read, or carry their own copy
//! engine and async runtime; the format itself is a dozen XML elements.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::Digest;
use sha2::digest::DynDigest;

/// The block size `create` maps with: bmaptool's default and the page size.
const CREATE_BLOCK_SIZE: u64 = 4096;

/// A parsed, checked block map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    /// The `version` attribute, `major.minor`.
    pub version: (u32, u32),
    /// Size of the uncompressed image in bytes.
    pub image_size: u64,
    /// Bytes per block (`<BlockSize>`); ranges count in these.
    pub block_size: u64,
    /// Blocks in the image (`<BlocksCount>`), the last one possibly partial.
    pub blocks_count: u64,
    /// Blocks in [`Bmap::ranges`] (`<MappedBlocksCount>`).
    pub mapped_blocks_count: u64,
    /// The hash of the range checksums; `None` for formats before 1.3, which had none.
    pub checksum_type: Option<ChecksumType>,
    /// Mapped block ranges, sorted and not overlapping.
    pub ranges: Vec<BlockRange>,
}

/// Blocks `first..=last` are mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRange {
    /// First mapped block, counted from 0.
    pub first: u64,
    /// Last mapped block, inclusive.
    pub last: u64,
    /// Lower-case hex digest of the range's bytes (the last block cut at the image's end).
    pub checksum: Option<String>,
}

/// A mapped range in bytes, as a writer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteRange {
    /// Where the range starts in the image, in bytes.
    pub offset: u64,
    /// How many bytes it covers (the last range cut at the image's end).
    pub length: u64,
    /// As [`BlockRange::checksum`].
    pub checksum: Option<String>,
}

/// The hash a block map's range checksums use (`<ChecksumType>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// SHA-1 (bmap format 1.3).
    Sha1,
    /// SHA-256 (format 1.4 and 2.x; what `create` writes).
    Sha256,
    /// SHA-512.
    Sha512,
}

/// Why a block map cannot be read, checked or made.
#[derive(Debug, thiserror::Error)]
pub enum BmapError {
    /// The file is not XML.
    #[error("the bmap is not valid XML")]
    Xml(#[from] roxmltree::Error),
    /// A required element or attribute is absent; carries its name.
    #[error("the bmap has no <{0}> element; is this a bmaptool block map?")]
    Missing(&'static str),
    /// An element's value does not parse or is out of range.
    #[error("the bmap's <{element}> is {value:?}, not {expected}")]
    Invalid {
        /// The element's name.
        element: &'static str,
        /// Its value as written.
        value: String,
        /// What it should be (`a number`, ...).
        expected: &'static str,
    },
    /// The `version` attribute names a major version other than 1 or 2; carries it.
    #[error("bmap format version {0} is not supported (versions 1.x and 2.x are)")]
    UnsupportedVersion(String),
    /// `<ChecksumType>` is none of sha1, sha256, sha512; carries it.
    #[error("bmap checksum type {0:?} is not supported (sha1, sha256 and sha512 are)")]
    UnsupportedChecksum(String),
    /// The file's own `<BmapFileChecksum>` (or 1.x's `<BmapFileSHA1>`) does not match its content.
    #[error(
        "the bmap file is damaged or edited: its checksum is {actual}, the file says {expected}"
    )]
    FileChecksumMismatch {
        /// The checksum the file states.
        expected: String,
        /// The checksum of its content.
        actual: String,
    },
    /// The numbers contradict each other (ranges out of order, past the end, counts that do not add
    /// up).
    #[error("the bmap is inconsistent: {0}")]
    Inconsistent(String),
    /// `create` cannot read the image.
    #[error("cannot read {path} to make its bmap")]
    Io {
        /// The image's path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

impl ChecksumType {
    fn from_name(name: &str) -> Result<Self, BmapError> {
        match name {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            other => Err(BmapError::UnsupportedChecksum(other.to_string())),
        }
    }

    /// The name the bmap format writes: `sha1`, `sha256`, `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// A fresh hasher of this type.
    pub fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            Self::Sha1 => Box::new(sha1::Sha1::new()),
            Self::Sha256 => Box::new(sha2::Sha256::new()),
            Self::Sha512 => Box::new(sha2::Sha512::new()),
        }
    }

    fn hex_len(self) -> usize {
        self.hasher().output_size() * 2
    }
}

impl Bmap {
    /// Parse and check a bmap: the file's own checksum (1.3 and later), the block counts and
    /// the ranges (in order, inside the image).
    pub fn parse(xml: &str) -> Result<Bmap, BmapError> {
        let doc = roxmltree::Document::parse(xml)?;
        let root = doc.root_element();
        if root.tag_name().name() != "bmap" {
            return Err(BmapError::Missing("bmap"));
        }
        let version_text = root
            .attribute("version")
            .ok_or(BmapError::Missing("bmap version"))?;
        let version = parse_version(version_text)?;

        // 1.3 named everything after sha1; 1.4 (a numbering slip) and 2.x name the hash.
        let (checksum_type, range_attribute, file_checksum_element) = match version {
            (1, 0..=2) => (None, "", ""),
            (1, 3) => (Some(ChecksumType::Sha1), "sha1", "BmapFileSHA1"),
            _ => {
                let name = element_text(&root, "ChecksumType")?;
                (
                    Some(ChecksumType::from_name(name)?),
                    "chksum",
                    "BmapFileChecksum",
                )
            }
        };
        if let Some(kind) = checksum_type {
            let expected = element_text(&root, file_checksum_element)?;
            check_file_checksum(xml, kind, expected)?;
        }

        let bmap = Bmap {
            version,
            image_size: element_number(&root, "ImageSize")?,
            block_size: element_number(&root, "BlockSize")?,
            blocks_count: element_number(&root, "BlocksCount")?,
            mapped_blocks_count: element_number(&root, "MappedBlocksCount")?,
            checksum_type,
            ranges: parse_ranges(&root, range_attribute)?,
        };
        bmap.check_consistency()?;
        Ok(bmap)
    }

    fn check_consistency(&self) -> Result<(), BmapError> {
        if self.block_size == 0 {
            return Err(BmapError::Inconsistent("the block size is 0".into()));
        }
        if self.blocks_count != self.image_size.div_ceil(self.block_size) {
            return Err(BmapError::Inconsistent(format!(
                "{} blocks of {} bytes do not make an image of {} bytes",
                self.blocks_count, self.block_size, self.image_size
            )));
        }
        let mut next_free = 0;
        let mut mapped = 0;
        for range in &self.ranges {
            if range.first < next_free || range.last < range.first {
                return Err(BmapError::Inconsistent(format!(
                    "range {}-{} is out of order or overlaps the one before",
                    range.first, range.last
                )));
            }
            if range.last >= self.blocks_count {
                return Err(BmapError::Inconsistent(format!(
                    "range {}-{} goes past the image's {} blocks",
                    range.first, range.last, self.blocks_count
                )));
            }
            next_free = range.last + 1;
            mapped += range.last - range.first + 1;
        }
        if mapped != self.mapped_blocks_count {
            return Err(BmapError::Inconsistent(format!(
                "the ranges map {mapped} blocks, MappedBlocksCount says {}",
                self.mapped_blocks_count
            )));
        }
        Ok(())
    }

    /// The mapped ranges in bytes; the last one ends at the image's end, not the block's.
    pub fn byte_ranges(&self) -> impl Iterator<Item = ByteRange> + '_ {
        self.ranges.iter().map(|range| {
            let offset = range.first * self.block_size;
            let end = ((range.last + 1) * self.block_size).min(self.image_size);
            ByteRange {
                offset,
                length: end - offset,
                checksum: range.checksum.clone(),
            }
        })
    }

    /// Bytes a bmap-guided write copies.
    pub fn mapped_bytes(&self) -> u64 {
        self.byte_ranges().map(|range| range.length).sum()
    }
}

fn parse_version(text: &str) -> Result<(u32, u32), BmapError> {
    let unsupported = || BmapError::UnsupportedVersion(text.to_string());
    let (major, minor) = text.trim().split_once('.').ok_or_else(unsupported)?;
    let major: u32 = major.parse().map_err(|_| unsupported())?;
    let minor: u32 = minor.parse().map_err(|_| unsupported())?;
    if !(1..=2).contains(&major) {
        return Err(unsupported());
    }
    Ok((major, minor))
}

fn element_text<'a>(
    root: &roxmltree::Node<'a, '_>,
    name: &'static str,
) -> Result<&'a str, BmapError> {
    root.children()
        .find(|node| node.has_tag_name(name))
        .and_then(|node| node.text())
        .map(str::trim)
        .ok_or(BmapError::Missing(name))
}

fn element_number(root: &roxmltree::Node, name: &'static str) -> Result<u64, BmapError> {
    let text = element_text(root, name)?;
    text.parse().map_err(|_| BmapError::Invalid {
        element: name,
        value: text.to_string(),
        expected: "a whole number",
    })
}

fn parse_ranges(
    root: &roxmltree::Node,
    checksum_attribute: &str,
) -> Result<Vec<BlockRange>, BmapError> {
    let block_map = root
        .children()
        .find(|node| node.has_tag_name("BlockMap"))
        .ok_or(BmapError::Missing("BlockMap"))?;
    block_map
        .children()
        .filter(|node| node.has_tag_name("Range"))
        .map(|node| {
            let text = node.text().unwrap_or("").trim();
            let invalid = || BmapError::Invalid {
                element: "Range",
                value: text.to_string(),
                expected: "a block number or `first-last`",
            };
            let (first, last) = match text.split_once('-') {
                Some((first, last)) => (first.trim().parse(), last.trim().parse()),
                None => (text.parse(), text.parse()),
            };
            let checksum = (!checksum_attribute.is_empty())
                .then(|| node.attribute(checksum_attribute))
                .flatten()
                .map(|sum| sum.trim().to_ascii_lowercase());
            Ok(BlockRange {
                first: first.map_err(|_| invalid())?,
                last: last.map_err(|_| invalid())?,
                checksum,
            })
        })
        .collect()
}

/// The file checksum is taken with its own value replaced by ASCII zeros.
fn check_file_checksum(xml: &str, kind: ChecksumType, expected: &str) -> Result<(), BmapError> {
    let expected = expected.to_ascii_lowercase();
    if expected.len() != kind.hex_len() || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BmapError::Invalid {
            element: "BmapFileChecksum",
            value: expected,
            expected: "a hex digest of the checksum type's length",
        });
    }
    let position = xml
        .to_ascii_lowercase()
        .find(&expected)
        .ok_or(BmapError::Missing("BmapFileChecksum"))?;
    let mut zeroed = xml.as_bytes().to_vec();
    zeroed[position..position + expected.len()].fill(b'0');
    let mut hasher = kind.hasher();
    hasher.update(&zeroed);
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(BmapError::FileChecksumMismatch { expected, actual });
    }
    Ok(())
}

/// Make a format 2.0 bmap (sha256) of a sparse image file: the data regions the filesystem
/// reports through `SEEK_DATA`/`SEEK_HOLE`, in 4 KiB blocks. On a filesystem without hole
/// reporting the whole file is one mapped range, which is still correct.
pub fn create(image: &Path) -> Result<String, BmapError> {
    let io_error = |source| BmapError::Io {
        path: image.to_path_buf(),
        source,
    };
    let mut file = File::open(image).map_err(io_error)?;
    let image_size = file.metadata().map_err(io_error)?.len();
    let blocks = mapped_blocks(&file, image_size, CREATE_BLOCK_SIZE).map_err(io_error)?;
    let mut ranges = Vec::with_capacity(blocks.len());
    for (first, last) in blocks {
        let offset = first * CREATE_BLOCK_SIZE;
        let end = ((last + 1) * CREATE_BLOCK_SIZE).min(image_size);
        let checksum = sha256_of_range(&mut file, offset, end - offset).map_err(io_error)?;
        ranges.push(BlockRange {
            first,
            last,
            checksum: Some(checksum),
        });
    }
    let bmap = Bmap {
        version: (2, 0),
        image_size,
        block_size: CREATE_BLOCK_SIZE,
        blocks_count: image_size.div_ceil(CREATE_BLOCK_SIZE),
        mapped_blocks_count: ranges.iter().map(|r| r.last - r.first + 1).sum(),
        checksum_type: Some(ChecksumType::Sha256),
        ranges,
    };
    Ok(render(&bmap))
}

/// Mapped block ranges (inclusive), merged where data regions share or touch a block.
fn mapped_blocks(file: &File, size: u64, block_size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut blocks: Vec<(u64, u64)> = Vec::new();
    let mut position = 0;
    // Each turn moves `position` forward past one data region, so the loop ends.
    while position < size {
        let data = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(position)) {
            Ok(offset) => offset,
            // ENXIO: no data after `position`, only a hole to the end.
            Err(rustix::io::Errno::NXIO) => break,
            Err(errno) => return Err(errno.into()),
        };
        let hole = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(data))?.min(size);
        let first = data / block_size;
        let last = (hole - 1) / block_size;
        match blocks.last_mut() {
            Some(previous) if previous.1 + 1 >= first => previous.1 = previous.1.max(last),
            _ => blocks.push((first, last)),
        }
        position = hole.max(data + 1);
    }
    Ok(blocks)
}

fn sha256_of_range(file: &mut File, offset: u64, length: u64) -> io::Result<String> {
    file.seek(SeekFrom::Start(offset))?;
    let mut hasher = sha2::Sha256::new();
    let copied = io::copy(&mut file.take(length), &mut hasher)?;
    if copied != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the file shrank while being read: {copied} of {length} bytes at {offset}"),
        ));
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The XML in bmaptool's layout, with the file checksum filled in last.
fn render(bmap: &Bmap) -> String {
    let kind = bmap.checksum_type.unwrap_or(ChecksumType::Sha256);
    let placeholder = "0".repeat(kind.hex_len());
    let mut xml = format!(
        "<?xml version=\"1.0\" ?>\n\
         <!-- Block map made by bootkit: the blocks of the image that hold data. -->\n\
         <bmap version=\"{}.{}\">\n    \
         <ImageSize> {} </ImageSize>\n    \
         <BlockSize> {} </BlockSize>\n    \
         <BlocksCount> {} </BlocksCount>\n    \
         <MappedBlocksCount> {} </MappedBlocksCount>\n    \
         <ChecksumType> {} </ChecksumType>\n    \
         <BmapFileChecksum> {placeholder} </BmapFileChecksum>\n    \
         <BlockMap>\n",
        bmap.version.0,
        bmap.version.1,
        bmap.image_size,
        bmap.block_size,
        bmap.blocks_count,
        bmap.mapped_blocks_count,
        kind.name(),
    );
    for range in &bmap.ranges {
        let blocks = if range.first == range.last {
            range.first.to_string()
        } else {
            format!("{}-{}", range.first, range.last)
        };
        let checksum = range.checksum.as_deref().unwrap_or_default();
        xml.push_str(&format!(
            "        <Range chksum=\"{checksum}\"> {blocks} </Range>\n"
        ));
    }
    xml.push_str("    </BlockMap>\n</bmap>\n");
    let mut hasher = kind.hasher();
    hasher.update(xml.as_bytes());
    let file_checksum = hex::encode(hasher.finalize());
    xml.replacen(
        &format!("<BmapFileChecksum> {placeholder} <"),
        &format!("<BmapFileChecksum> {file_checksum} <"),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    /// A 1 MiB sparse file with data at block 0 and blocks 5..=7 and a short tail block.
    fn sparse_image(dir: &Path) -> PathBuf {
        let path = dir.join("image.raw");
        let file = File::create(&path).unwrap();
        file.set_len(1024 * 1024 + 1000).unwrap();
        file.write_all_at(&[0x11; 4096], 0).unwrap();
        file.write_all_at(&[0x22; 3 * 4096], 5 * 4096).unwrap();
        file.write_all_at(&[0x33; 100], 1024 * 1024 + 900).unwrap();
        path
    }

    fn tool_available(name: &str) -> bool {
        Command::new(name).arg("--version").output().is_ok()
    }

    #[test]
    fn created_bmap_parses_back_with_the_data_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let image = sparse_image(dir.path());
        let bmap = Bmap::parse(&create(&image).unwrap()).unwrap();
        assert_eq!(bmap.image_size, 1024 * 1024 + 1000);
        assert_eq!(bmap.blocks_count, 257);
        let blocks: Vec<(u64, u64)> = bmap.ranges.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(blocks, vec![(0, 0), (5, 7), (256, 256)]);
        let tail = bmap.byte_ranges().last().unwrap();
        assert_eq!((tail.offset, tail.length), (1024 * 1024, 1000));
        // Each range checksum is the sha256 of exactly those bytes.
        let data = std::fs::read(&image).unwrap();
        for range in bmap.byte_ranges() {
            let start = usize::try_from(range.offset).unwrap();
            let bytes = &data[start..start + usize::try_from(range.length).unwrap()];
            assert_eq!(
                range.checksum.unwrap(),
                hex::encode(sha2::Sha256::digest(bytes))
            );
        }
    }

    #[test]
    fn an_edited_bmap_is_refused_by_its_file_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let xml = create(&sparse_image(dir.path())).unwrap();
        let edited = xml.replace("<Range chksum=", "<Range  chksum=");
        assert!(matches!(
            Bmap::parse(&edited),
            Err(BmapError::FileChecksumMismatch { .. })
        ));
    }

    #[test]
    fn version_1_3_with_sha1_is_read() {
        let body = "<bmap version=\"1.3\"><ImageSize> 8192 </ImageSize>\
            <BlockSize> 4096 </BlockSize><BlocksCount> 2 </BlocksCount>\
            <MappedBlocksCount> 1 </MappedBlocksCount>\
            <BmapFileSHA1> 0000000000000000000000000000000000000000 </BmapFileSHA1>\
            <BlockMap><Range sha1=\"da39a3ee5e6b4b0d3255bfef95601890afd80709\"> 1 </Range>\
            </BlockMap></bmap>";
        let sum = hex::encode(sha1::Sha1::digest(body.as_bytes()));
        let xml = body.replace("0000000000000000000000000000000000000000", &sum);
        let bmap = Bmap::parse(&xml).unwrap();
        assert_eq!(bmap.checksum_type, Some(ChecksumType::Sha1));
        assert_eq!(bmap.byte_ranges().next().unwrap().offset, 4096);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let body = "<bmap version=\"1.2\"><ImageSize> 16384 </ImageSize>\
            <BlockSize> 4096 </BlockSize><BlocksCount> 4 </BlocksCount>\
            <MappedBlocksCount> 4 </MappedBlocksCount>\
            <BlockMap><Range> 0-2 </Range><Range> 2 </Range></BlockMap></bmap>";
        let error = Bmap::parse(body).unwrap_err().to_string();
        assert!(error.contains("overlaps"), "{error}");
    }

    #[test]
    fn bmaptool_reads_our_bmap_and_we_read_its_bmap() {
        if !tool_available("bmaptool") {
            panic!(
                "bmaptool (Debian's bmap-tools) is needed for this test: apt-get install bmap-tools"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let image = sparse_image(dir.path());
        let ours = dir.path().join("ours.bmap");
        std::fs::File::create(&ours)
            .unwrap()
            .write_all(create(&image).unwrap().as_bytes())
            .unwrap();
        let copy = dir.path().join("copy.raw");
        let status = Command::new("bmaptool")
            .args(["copy", "--bmap"])
            .arg(&ours)
            .arg(&image)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success(), "bmaptool copy refused our bmap");
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            std::fs::read(&image).unwrap()
        );

        let theirs = Command::new("bmaptool")
            .arg("create")
            .arg(&image)
            .output()
            .unwrap();
        assert!(theirs.status.success());
        let parsed = Bmap::parse(std::str::from_utf8(&theirs.stdout).unwrap()).unwrap();
        let ours_parsed = Bmap::parse(&create(&image).unwrap()).unwrap();
        assert_eq!(parsed.ranges, ours_parsed.ranges);
        assert_eq!(parsed.image_size, ours_parsed.image_size);
    }
}
