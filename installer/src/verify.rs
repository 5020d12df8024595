//! What the written image is checked against: the published sha256 of the source file, taken
//! while it streams, and the bmap's per-range checksums of the uncompressed image.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The digest type and the `sha256sum` file rule are shared with the builder and the tests.
pub use bootkit_common::checksum::{ChecksumError, Sha256Digest};

/// What a finished write established about the image, said the same way in the notes, the
/// summary and every error after the write: verified against a published sha256 (and where
/// it came from), or only written, with its sha256 computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Where the published sha256 the image matched came from (`--sha256`, a checksum
    /// file's path or URL); None: there was none to check against.
    pub checksum_origin: Option<String>,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.checksum_origin {
            Some(origin) => write!(
                f,
                "written and verified against the published sha256 ({origin})"
            ),
            None => write!(f, "written but not verified against a published checksum"),
        }
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

    #[test]
    fn what_was_verified_is_said_with_the_checksum_origin_or_its_absence() {
        let verified = Written {
            checksum_origin: Some("/media/os.raw.gz.sha256sum".into()),
        };
        assert_eq!(
            verified.to_string(),
            "written and verified against the published sha256 (/media/os.raw.gz.sha256sum)"
        );
        let unverified = Written {
            checksum_origin: None,
        };
        assert_eq!(
            unverified.to_string(),
            "written but not verified against a published checksum"
        );
    }

    #[test]
    fn hashing_reader_gives_the_sha256_of_what_passed() {
        let mut reader = HashingReader::new(&b"abc"[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(
            reader.finish().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
