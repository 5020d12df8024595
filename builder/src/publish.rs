//! Publishing a disk image the way OS images are downloaded: compressed (gzip, zstd, xz),
//! each file with a `sha256sum`-format checksum file next to it (`HEX  NAME`, what
//! `sha256sum -c` reads), and a bmap of the uncompressed image.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bootkit_common::checksum::Sha256Digest;

use crate::compress::Encoder;
use crate::config::CompressionKind;
use crate::error::{BuildError, Result};
use crate::kernel::sha256_file;
use crate::progress::Progress;

/// A compression an image is published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// gzip, `.gz`.
    Gzip,
    /// zstd, `.zst`.
    Zstd,
    /// xz at its default preset, `.xz`.
    Xz,
}

impl Published {
    /// Every compression, in the order the files are published.
    pub const ALL: [Published; 3] = [Published::Gzip, Published::Zstd, Published::Xz];

    /// The suffix added to the image's file name.
    pub fn suffix(self) -> &'static str {
        match self {
            Published::Gzip => "gz",
            Published::Zstd => "zst",
            Published::Xz => "xz",
        }
    }
}

/// xz preset: xz's own default, what `xz IMAGE` makes.
const XZ_PRESET: u32 = 6;

/// Compress `raw` into `out`.
pub fn compress_file(raw: &Path, out: &Path, format: Published) -> Result<()> {
    let fail = BuildError::io(format!("compress {} into {}", raw.display(), out.display()));
    let result = (|| -> io::Result<()> {
        let mut input = File::open(raw)?;
        let output = BufWriter::new(File::create(out)?);
        let output = match format {
            Published::Gzip => {
                pump(&mut input, Encoder::new(CompressionKind::Gzip, output)?)?.finish()?
            }
            Published::Zstd => {
                pump(&mut input, Encoder::new(CompressionKind::Zstd, output)?)?.finish()?
            }
            Published::Xz => pump(
                &mut input,
                liblzma::write::XzEncoder::new(output, XZ_PRESET),
            )?
            .finish()?,
        };
        output
            .into_inner()
            .map_err(|err| err.into_error())?
            .sync_all()
    })();
    result.map_err(fail)
}

fn pump<W: Write>(input: &mut impl Read, mut output: W) -> io::Result<W> {
    io::copy(input, &mut output)?;
    Ok(output)
}

/// Write `<file>.sha256sum` (`HEX  NAME`, the name without directories, by the one
/// `sha256sum` line writer) and return its path.
pub fn write_sha256sum(file: &Path, progress: &Progress) -> Result<PathBuf> {
    let digest = Sha256Digest::parse(&sha256_file(file, progress)?)?;
    let name = file
        .file_name()
        .ok_or_else(|| BuildError::Config(format!("{} is not a file name", file.display())))?
        .to_string_lossy();
    let out = sibling(file, "sha256sum");
    std::fs::write(&out, digest.sha256sum_line(&name))
        .map_err(BuildError::io(format!("write {}", out.display())))?;
    Ok(out)
}

/// `file` with `.suffix` appended to its name (`os.raw` -> `os.raw.gz`).
pub fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::compress::decode_all;

    #[test]
    fn every_format_decompresses_to_the_input_and_is_checksummed() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("os.raw");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&raw, &data).unwrap();
        for format in Published::ALL {
            let out = sibling(&raw, format.suffix());
            compress_file(&raw, &out, format).unwrap();
            let packed = std::fs::read(&out).unwrap();
            assert_eq!(decode_all(&packed).unwrap(), data, "{format:?}");
            let sums = write_sha256sum(&out, &Progress::hidden()).unwrap();
            let line = std::fs::read_to_string(sums).unwrap();
            let name = format!("os.raw.{}", format.suffix());
            assert_eq!(line, format!("{}  {name}\n", hex::encode(sha2_of(&packed))));
        }
    }

    fn sha2_of(data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(data).to_vec()
    }
}
