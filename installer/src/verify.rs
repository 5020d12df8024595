//! What the written image is checked against: the published sha256 of the source file, taken
//! while it streams, and the bmap's per-range checksums of the uncompressed image.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Why an expected sha256 cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// The text is not 64 hex digits.
    #[error("{value:?} is not a sha256: expected 64 hex digits")]
    NotSha256 {
        /// The text as given.
        value: String,
    },
    /// The checksum file cannot be read.
    #[error("cannot read the checksum file {path}: {source}")]
    Read {
        /// The checksum file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The checksum file lists several files but not the image.
    #[error(
        "the checksum file {path} has no line for {name}; it should hold `HEX  {name}` as \
         sha256sum writes it"
    )]
    NoEntry {
        /// The checksum file.
        path: PathBuf,
        /// The image's file name looked for.
        name: String,
    },
    /// The checksum file has no `HEX  name` line.
    #[error("the checksum file {path} holds no sha256 line (`HEX  filename`)")]
    Empty {
        /// The checksum file.
        path: PathBuf,
    },
}

/// A sha256 digest, parsed from hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses 64 hex digits (either case, surrounding whitespace ignored).
    pub fn parse(hex_text: &str) -> Result<Self, ChecksumError> {
        let not_sha256 = || ChecksumError::NotSha256 {
            value: hex_text.to_string(),
        };
        let bytes = hex::decode(hex_text.trim()).map_err(|_| not_sha256())?;
        Ok(Self(bytes.try_into().map_err(|_| not_sha256())?))
    }

    /// The digest for `image_name` in a sha256sum-format file (`HEX  name` or `HEX *name`
    /// per line); a file with a single line is taken whatever name it gives, since published
    /// `.sha256sum` files often carry the build machine's path.
    pub fn from_sha256sum_file(
        path: &Path,
        image_name: Option<&str>,
    ) -> Result<Self, ChecksumError> {
        let text = std::fs::read_to_string(path).map_err(|source| ChecksumError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let entries: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|line| {
                let (digest, name) = line.trim().split_once(char::is_whitespace)?;
                Some((digest, name.trim_start().trim_start_matches('*')))
            })
            .collect();
        let chosen = match (entries.as_slice(), image_name) {
            ([], _) => {
                return Err(ChecksumError::Empty {
                    path: path.to_path_buf(),
                });
            }
            ([only], _) => only.0,
            (_, None) => entries[0].0,
            (_, Some(wanted)) => entries
                .iter()
                .find(|(_, name)| Path::new(name).file_name() == Some(wanted.as_ref()))
                .map(|(digest, _)| *digest)
                .ok_or_else(|| ChecksumError::NoEntry {
                    path: path.to_path_buf(),
                    name: wanted.to_string(),
                })?,
        };
        Self::parse(chosen)
    }

    /// The digest as lower-case hex.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// Passes bytes through and hashes them: the sha256 of the source exactly as it arrives.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    /// Hashes everything read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The sha256 of every byte read.
    pub fn finish(self) -> Sha256Digest {
        Sha256Digest(self.hasher.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.hasher.update(&buf[..count]);
        Ok(count)
    }
}

/// Counts the bytes read into a shared counter that the progress display reads.
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    /// Counts bytes read from `inner` into `count`.
    pub fn new(inner: R, count: Arc<AtomicU64>) -> Self {
        Self { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.count.fetch_add(count as u64, Ordering::Relaxed);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hashing_reader_gives_the_sha256_of_what_passed() {
        let mut reader = HashingReader::new(&b"abc"[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(
            reader.finish().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha256sum_files_are_read_by_image_name_or_single_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("SHA256SUMS");
        let other = "1".repeat(64);
        std::fs::write(
            &path,
            format!("{other}  other.raw.gz\n{EMPTY_SHA256} *build/out/os.raw.gz\n"),
        )
        .unwrap();
        let digest = Sha256Digest::from_sha256sum_file(&path, Some("os.raw.gz")).unwrap();
        assert_eq!(digest.to_hex(), EMPTY_SHA256);
        let missing = Sha256Digest::from_sha256sum_file(&path, Some("absent.raw")).unwrap_err();
        assert!(missing.to_string().contains("absent.raw"), "{missing}");

        std::fs::write(&path, format!("{EMPTY_SHA256}  /home/builder/os.raw.gz\n")).unwrap();
        let single = Sha256Digest::from_sha256sum_file(&path, Some("renamed.raw.gz")).unwrap();
        assert_eq!(single.to_hex(), EMPTY_SHA256);
    }

    #[test]
    fn malformed_digests_are_refused() {
        assert!(Sha256Digest::parse("abc").is_err());
        assert!(Sha256Digest::parse(&"g".repeat(64)).is_err());
        assert!(Sha256Digest::parse(&EMPTY_SHA256.to_uppercase()).is_ok());
    }
}
