//! Deterministic compressing writers for the rootfs archive and the initramfs.
//!
//! zstd runs with fixed parameters (level, window, worker count): the output must not depend
//! on the machine's core count (reproducible builds). libzstd's multithreaded mode gives the
//! same bytes for any worker count >= 1 (checked with 1, 2 and 4 workers on 4 MB and 990 MB
//! inputs cut in 1 MiB jobs; a test below keeps checking it), and its job size derives from
//! the window (4 x 8 MiB = 32 MiB), so the output only depends on the parameters below. The window is pinned at 8 MiB (`window_log` 23): the
//! kernel's initramfs decoder (RD_ZSTD, lib/decompress_unzstd.c) refuses frames whose
//! window is larger than ZSTD_WINDOWSIZE_MAX (8 MiB), and it decodes exactly one frame per
//! segment, which the multithreaded encoder writes (one frame, several blocks).
//! gzip headers carry mtime 0 and no file name.

use std::io::{self, Write};

use crate::config::CompressionKind;

/// zstd level. Measured on the qemu-test image with libzstd 1.5.7, window 8 MiB, each
/// stream alone on one core: the rootfs tar (4.4 MB) and the initramfs's first segment
/// (5.0 MB) are two streams; size is both together, time is per stream.
///
/// | level    | size    | ms per stream |
/// |----------|---------|---------------|
/// | 3        | 4.47 MB | 22-26         |
/// | 4        | 4.06 MB | 29-32         |
/// | 7        | 3.97 MB | 60-68         |
/// | 9        | 3.69 MB | 73-84         |
/// | 10       | 3.68 MB | 91-107        |
/// | 19 (CLI) | 3.36 MB | 1500-1800     |
///
/// Level 9 is where the ratio jumps: its larger match-finder hash table (hashLog 21) finds
/// the code that the two statically linked binaries, busybox and the init, share with glibc.
/// Above it, time grows much faster than the size shrinks. For comparison, the shell
/// pipeline (gzip -6) makes 4.47 MB of the same content, and level 9 over the whole image in
/// one stream (the rootfs archive compressed a second time) 3.66 MB.
///
/// In the build both streams run at once and contend for memory bandwidth and the vmlinuz
/// copy: each takes 95-120 ms, and `bootkit-build build imageconfigs/qemu-test.toml` takes
/// 120-140 ms in all (bench/build.sh, 2 cores, warm kernel cache; the shell pipeline takes
/// about 560 ms). A hand-tuned set (lazy strategy, hashLog 21, searchLog 3, minMatch 4)
/// was measured at 3.686 MB and ~14% less CPU than level 9 on this image, and greedy with
/// hashLog 21 at 3.81 MB and ~37% less; plain level 9 is kept: it is the documented,
/// general-purpose setting, and the gain is within run-to-run noise of the whole build.
pub const ZSTD_LEVEL: i32 = 9;
/// log2 of the zstd window: 8 MiB, the largest the kernel's initramfs decoder accepts.
/// Level 9 would pick 4 MiB on its own (same size on the qemu-test image); 8 MiB lets a large
/// rootfs archive find matches further back, and pinning it keeps the frames decodable by the
/// kernel whatever level is chosen here.
pub const ZSTD_WINDOW_LOG: u32 = 23;
/// Worker threads per zstd stream; fixed so that the output is the same on every machine.
/// A stream smaller than one job (32 MiB of input) is compressed by one worker, so the job
/// split costs nothing on the qemu-test image; on a 200 MB tar of shared libraries, 2 workers
/// took half the time of 1 for the same bytes, 0.5% smaller than single-threaded mode.
/// (1 MiB jobs would cost 3.6% on the rootfs tar: the default job size is kept.)
pub const ZSTD_WORKERS: u32 = 2;

/// A writer that compresses as the image config says; [`Encoder::finish`] ends the stream.
pub enum Encoder<W: Write> {
    /// zstd, with [`ZSTD_WORKERS`] workers.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// No compression.
    Plain(W),
}

impl<W: Write> Encoder<W> {
    /// An encoder of `kind` writing into `inner`.
    pub fn new(kind: CompressionKind, inner: W) -> io::Result<Encoder<W>> {
        Ok(match kind {
            CompressionKind::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?;
                encoder.multithread(ZSTD_WORKERS)?;
                encoder.window_log(ZSTD_WINDOW_LOG)?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
            CompressionKind::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(3)
                    .write(inner, flate2::Compression::new(9)),
            ),
            CompressionKind::None => Encoder::Plain(inner),
        })
    }

    /// Writes the stream's end and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(encoder) => encoder.finish(),
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::Plain(mut inner) => {
                inner.flush()?;
                Ok(inner)
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(encoder) => encoder.write(buf),
            Encoder::Gzip(encoder) => encoder.write(buf),
            Encoder::Plain(inner) => inner.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(encoder) => encoder.flush(),
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Plain(inner) => inner.flush(),
        }
    }
}

/// Passes writes through and ignores `flush`: the cpio crate flushes after every entry,
/// and each flush makes zstd end a block (and, multithreaded, a job), which cost a third
/// of the compression ratio on a real initramfs (3.2 MB instead of 2.1 MB).
pub struct NoFlush<W: Write>(pub W);

impl<W: Write> Write for NoFlush<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::compress::{Compression, decode_all};

    #[test]
    fn every_kind_round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for (kind, magic) in [
            (CompressionKind::Zstd, Compression::Zstd),
            (CompressionKind::Gzip, Compression::Gzip),
            (CompressionKind::None, Compression::None),
        ] {
            let run = || {
                let mut encoder = Encoder::new(kind, Vec::new()).unwrap();
                encoder.write_all(&data).unwrap();
                encoder.finish().unwrap()
            };
            let first = run();
            assert_eq!(first, run(), "{kind:?} output differs between runs");
            assert_eq!(Compression::detect(&first), magic);
            assert_eq!(decode_all(&first).unwrap(), data);
        }
    }

    /// What makes a fixed worker count enough for reproducible output: libzstd's
    /// multithreaded mode writes the same bytes whatever the number of workers, even when
    /// the input is cut into several jobs.
    #[test]
    fn zstd_output_does_not_depend_on_the_worker_count() {
        use zstd::zstd_safe::CParameter;
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 ^ (i % 7) as u8)
            .collect();
        let run = |workers: u32| {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
            encoder.multithread(workers).unwrap();
            encoder.window_log(ZSTD_WINDOW_LOG).unwrap();
            encoder.set_parameter(CParameter::JobSize(1 << 20)).unwrap();
            encoder.write_all(&data).unwrap();
            encoder.finish().unwrap()
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(4));
        assert_eq!(zstd::stream::decode_all(&one[..]).unwrap(), data);
    }
}
