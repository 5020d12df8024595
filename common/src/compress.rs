//! Compression formats recognised by their magic bytes, never by file name: an archive named
//! `rootfs.tar.gz` that is really zstd still unpacks.

use std::fmt;
use std::io::{self, BufRead, Read};

mod gzip;

/// A stream compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

impl Compression {
    /// Recognise a format from the first bytes of a stream (six are enough for all formats).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(XZ_MAGIC) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// Peek at a buffered stream without consuming anything.
    pub fn sniff<R: BufRead>(reader: &mut R) -> io::Result<Compression> {
        Ok(Compression::detect(reader.fill_buf()?))
    }

    /// The usual file-name suffix, without the dot (`""` for uncompressed).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
            Compression::Xz => "xz",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        })
    }
}

/// Wrap `reader` in the decoder its magic bytes call for; uncompressed data passes through.
pub fn decoder<'a, R: BufRead + 'a>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let format = Compression::sniff(&mut reader)?;
    let decoded: Box<dyn Read + 'a> = match format {
        Compression::None => Box::new(reader),
        // Every member (`cat a.gz b.gz` is a valid gzip stream and tools produce it), then
        // nothing or zero padding, as GNU gzip reads it.
        Compression::Gzip => Box::new(gzip::GzipMembers::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
    };
    Ok((format, decoded))
}

/// Like [`decoder`], but xz streams with several blocks (Debian's packages have them) are
/// decoded by `threads` threads: the builder reads a 400 MB kernel package this way in half
/// the time on two cores.
pub fn parallel_decoder<'a, R: BufRead + 'a>(
    mut reader: R,
    threads: u32,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    if threads <= 1 || Compression::sniff(&mut reader)? != Compression::Xz {
        return decoder(reader);
    }
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        // Threads only while the decoder stays under this much memory; beyond it liblzma
        // falls back to one thread rather than fail.
        .memlimit_threading(XZ_THREADING_MEMORY)
        // No hard limit: the input is the user's own kernel package.
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(io::Error::other)?;
    Ok((
        Compression::Xz,
        Box::new(liblzma::bufread::XzDecoder::new_stream(reader, stream)),
    ))
}

const XZ_THREADING_MEMORY: u64 = 1 << 30;

/// Decode a whole in-memory buffer (kernel modules are small and loaded whole).
pub fn decode_all(data: &[u8]) -> io::Result<Vec<u8>> {
    let (format, mut decoded) = decoder(data)?;
    if format == Compression::None {
        return Ok(data.to_vec());
    }
    let mut out = Vec::with_capacity(data.len() * 3);
    decoded.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"the bootkit unpacks this text whatever the compression\n";

    fn roundtrip(compressed: Vec<u8>, expected: Compression) {
        let (format, mut reader) = decoder(&compressed[..]).expect("decoder");
        assert_eq!(format, expected);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("decode");
        assert_eq!(out, TEXT);
        assert_eq!(decode_all(&compressed).expect("decode_all"), TEXT);
    }

    #[test]
    fn gzip_is_recognised_and_decoded() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(TEXT).unwrap();
        roundtrip(enc.finish().unwrap(), Compression::Gzip);
    }

    #[test]
    fn concatenated_gzip_members_decode_as_one_stream() {
        let half = TEXT.len() / 2;
        let mut data = Vec::new();
        for part in [&TEXT[..half], &TEXT[half..]] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap();
            data.extend(enc.finish().unwrap());
        }
        roundtrip(data, Compression::Gzip);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// GNU gzip's rule for what follows the last member: zero padding is fine, anything else
    /// is "trailing garbage" (the init's unpack tests hold it against `gzip -t` itself).
    #[test]
    fn gzip_zero_padding_is_accepted_and_trailing_garbage_refused() {
        let mut padded = gzip(TEXT);
        padded.extend_from_slice(&[0; 10_000]);
        roundtrip(padded, Compression::Gzip);
        for tail in [&b"garbage"[..], &[0, 0, 0, 7]] {
            let mut spoilt = gzip(TEXT);
            spoilt.extend_from_slice(tail);
            let error = decode_all(&spoilt).unwrap_err();
            assert_eq!(
                error.kind(),
                io::ErrorKind::InvalidData,
                "{tail:?}: {error}"
            );
            assert!(error.to_string().contains("trailing garbage"), "{error}");
        }
        // The start of a second member that breaks off is a cut stream.
        let mut broken_member = gzip(TEXT);
        broken_member.extend_from_slice(&[0x1f, 0x8b, 8]);
        assert!(decode_all(&broken_member).is_err());
        let mut cut = gzip(TEXT);
        cut.truncate(cut.len() - 1);
        assert!(decode_all(&cut).is_err(), "a cut size trailer is an error");
    }

    #[test]
    fn zstd_is_recognised_and_decoded() {
        roundtrip(zstd::encode_all(TEXT, 3).unwrap(), Compression::Zstd);
    }

    #[test]
    fn xz_is_recognised_and_decoded() {
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(TEXT).unwrap();
        roundtrip(enc.finish().unwrap(), Compression::Xz);
    }

    #[test]
    fn parallel_xz_decoding_gives_the_same_bytes() {
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(TEXT).unwrap();
        let compressed = enc.finish().unwrap();
        let (format, mut reader) = parallel_decoder(&compressed[..], 2).expect("decoder");
        assert_eq!(format, Compression::Xz);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("decode");
        assert_eq!(out, TEXT);
    }

    #[test]
    fn plain_data_passes_through() {
        roundtrip(TEXT.to_vec(), Compression::None);
    }

    #[test]
    fn short_and_empty_input_is_uncompressed() {
        assert_eq!(Compression::detect(&[]), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
    }
}
