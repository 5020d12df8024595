//! The write engine: stream an image onto a disk, verify it, and only then make it bootable.
//!
//! The chain, like coreos-installer's: source → sha256 of the source bytes → byte counter →
//! decompressor chosen by magic bytes → 4 MiB buffers → a writer thread fed through a bounded
//! channel, so decompression and hashing overlap with the disk writes.
//!
//! The disk's first MiB (protective MBR and primary GPT) is held back and written last, only
//! after the whole stream was read, its sha256 matched and every bmap range matched, and only
//! after the body is flushed to the disk: the kernel writes dirty pages back in its own order,
//! so flushing body and head together could let a power cut leave a valid partition table over
//! a partial body. Body, flush, head, flush (see [`commit_head`]). Before
//! the stream starts the first and last MiB of the disk are zeroed, and on any failure they
//! are zeroed again: an interrupted or failed write never leaves a disk that firmware would
//! try to boot.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use bootkit_common::bmap::{Bmap, ByteRange};
use bootkit_common::compress::{Compression, parallel_decoder};
use sha2::digest::DynDigest;

use crate::progress::Progress;
use crate::verify::{CountingReader, HashingReader, Sha256Digest};

/// Held back until the image is verified: the protective MBR and the primary GPT (at most
/// 33 sectors of 4 KiB) lie inside it, and partitions start at 1 MiB by convention.
pub const HEAD_BYTES: u64 = 1 << 20;
/// Zeroed at the end of the disk on failure: the backup GPT lies there.
const TAIL_BYTES: u64 = 1 << 20;
/// Large writes keep the disk's queue full and the syscall count low.
const CHUNK_BYTES: usize = 4 << 20;
/// Buffers in flight between the reading and the writing thread: enough to ride out a slow
/// write or a slow read, little enough to stay small in a RAM-only system (5 × 4 MiB).
const QUEUE_DEPTH: usize = 4;
/// Read-ahead on the source: the decompressors read in small pieces.
const SOURCE_BUFFER: usize = 1 << 20;
const GPT_SIGNATURE: &[u8] = b"EFI PART";

/// Why writing or verifying the image failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The disk cannot be opened (missing, in use, no permission).
    #[error("cannot open the disk {path}; is it the right device, and not in use?")]
    OpenDisk {
        /// The disk's path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Reading the source failed midway.
    #[error(
        "reading the image failed after {image_offset} bytes of image ({source_offset} bytes \
         of source); the source is truncated, damaged or cut off: check it (and its \
         download), then run again"
    )]
    Read {
        /// Image (uncompressed) bytes read so far.
        image_offset: u64,
        /// Source (possibly compressed) bytes read so far.
        source_offset: u64,
        /// The reader's error.
        source: io::Error,
    },
    /// The source's sha256 is not the expected one.
    #[error(
        "the image's sha256 is {actual}, expected {expected} ({source_bytes} bytes read): the \
         image is damaged or not the one the checksum is for; download it again or fix the \
         checksum"
    )]
    Sha256Mismatch {
        /// The sha256 expected, hex.
        expected: String,
        /// The sha256 of the bytes read, hex.
        actual: String,
        /// Source bytes read.
        source_bytes: u64,
    },
    /// A bmap range's checksum does not match what was written.
    #[error(
        "bmap range {index} (bytes {offset}..{end} of the image) has {kind} {actual}, the \
         bmap says {expected}: the image does not match its bmap; use the bmap made for this \
         image, or none",
        end = offset + length
    )]
    RangeMismatch {
        /// The range's index in the bmap.
        index: usize,
        /// Where the range starts in the image, in bytes.
        offset: u64,
        /// The range's length in bytes.
        length: u64,
        /// The checksum type (`sha256`, ...).
        kind: &'static str,
        /// The checksum the bmap states.
        expected: String,
        /// The checksum of the bytes written.
        actual: String,
    },
    /// The image does not fit on the disk.
    #[error(
        "the image is larger than the disk: {image_bytes} bytes or more do not fit on \
         {disk_bytes} bytes; choose a larger disk"
    )]
    DiskTooSmall {
        /// Image bytes known so far (at least this many).
        image_bytes: u64,
        /// The disk's size in bytes.
        disk_bytes: u64,
    },
    /// The image's size is not the one its bmap states.
    #[error(
        "the image is {actual} bytes but its bmap describes {expected} bytes: the bmap is for \
         another image; use the bmap made for this image, or none"
    )]
    BmapSizeMismatch {
        /// The image size the bmap states, in bytes.
        expected: u64,
        /// The image's size in bytes.
        actual: u64,
    },
    /// The image is not a whole number of the disk's sectors.
    #[error(
        "the image is {image_bytes} bytes, not a whole number of the disk's {sector_size}-byte \
         sectors: it was not made for this disk"
    )]
    PartialSector {
        /// The image's size in bytes.
        image_bytes: u64,
        /// The disk's logical sector size in bytes.
        sector_size: u64,
    },
    /// The image's GPT is for another sector size than the disk's.
    #[error(
        "the image's GPT is laid out for {image_sector}-byte sectors but the disk has \
         {disk_sector}-byte sectors: it would not boot; use an image made for {disk_sector}-byte \
         sectors"
    )]
    SectorLayout {
        /// The sector size the image's GPT is for, in bytes.
        image_sector: u64,
        /// The disk's logical sector size in bytes.
        disk_sector: u64,
    },
    /// Writing to the disk failed.
    #[error(
        "writing {length} bytes at byte {offset} of the disk failed; the disk may be failing or was removed"
    )]
    Write {
        /// Where on the disk, in bytes.
        offset: u64,
        /// How many bytes.
        length: u64,
        /// The operating system's error.
        source: io::Error,
    },
    /// Flushing the disk's write cache failed.
    #[error("flushing the disk's cache failed: {0}; the disk may be failing or was removed")]
    Flush(io::Error),
    /// The source gave no bytes.
    #[error("the image is empty: the source gave no bytes; check the file or URL")]
    EmptyImage,
    /// The image reaches into a partition that is to be kept.
    #[error(
        "the image is {image_bytes} bytes or more and would write over the kept partition that \
         starts at byte {keep_start}; keep only partitions that lie after the image, or none"
    )]
    OverlapsKept {
        /// Image bytes known so far (at least this many).
        image_bytes: u64,
        /// Where the first kept partition starts.
        keep_start: u64,
    },
    /// The write was cancelled (a signal).
    #[error("interrupted before the image was complete")]
    Interrupted,
    /// A write failed and clearing the partial image failed too.
    #[error(
        "{cause}; clearing the partition table after that failed too ({reset}): the disk may \
         hold a partial image that looks bootable; wipe its first and last MiB before using it"
    )]
    ResetFailed {
        /// The write's failure.
        cause: Box<WriteError>,
        /// Why clearing failed.
        reset: io::Error,
    },
}

/// The target disk (or an image file standing in for one), open for writing.
#[derive(Debug)]
pub struct Disk {
    /// The disk's (or file's) path.
    pub path: PathBuf,
    /// The open file, for writing.
    pub file: File,
    /// Its size in bytes.
    pub size: u64,
    /// Logical sector size: 512 for files, from the kernel for block devices.
    pub sector_size: u64,
}

impl Disk {
    /// Block devices are opened exclusively (`O_EXCL`), which the kernel refuses while a
    /// partition is mounted or a holder (LVM, dm, md) uses it.
    pub fn open(path: &Path) -> Result<Disk, WriteError> {
        let error = |source| WriteError::OpenDisk {
            path: path.to_path_buf(),
            source,
        };
        let is_block = std::fs::metadata(path)
            .map_err(error)?
            .file_type()
            .is_block_device();
        let mut options = OpenOptions::new();
        options.write(true);
        if is_block {
            options.custom_flags(libc::O_EXCL);
        }
        let mut file = options.open(path).map_err(error)?;
        let size = file.seek(SeekFrom::End(0)).map_err(error)?;
        let sector_size = if is_block {
            u64::from(rustix::fs::ioctl_blksszget(&file).map_err(|errno| error(errno.into()))?)
        } else {
            512
        };
        Ok(Disk {
            path: path.to_path_buf(),
            file,
            size,
            sector_size,
        })
    }
}

/// What to check the stream against.
#[derive(Default)]
pub struct WriteOptions<'a> {
    /// The published sha256 of the source bytes (compressed, as downloaded).
    pub expected_sha256: Option<Sha256Digest>,
    /// With a bmap only its ranges are written, each checked; without, every byte.
    pub bmap: Option<&'a Bmap>,
    /// Size of the source when known (a file, a Content-Length): the image's size when the
    /// source turns out to be uncompressed, so a too-large image is refused before writing.
    pub source_length: Option<u64>,
    /// Set from a signal handler: the write stops at the next buffer and the disk is reset.
    pub cancel: Option<&'a AtomicBool>,
    /// Byte ranges `[start, end)` of partitions kept across the install: the image must end
    /// before the first, and clearing the tables on failure leaves them alone.
    pub keep: Vec<(u64, u64)>,
    /// On failure leave the disk as it is (`--preserve-on-error`), for a look at it.
    pub preserve_on_error: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WriteReport {
    /// The source's compression, found by magic bytes.
    pub compression: Compression,
    /// Size of the uncompressed image.
    pub image_bytes: u64,
    /// Bytes written to the disk (the mapped ranges with a bmap).
    pub bytes_written: u64,
    /// Source bytes read (as downloaded).
    pub source_bytes: u64,
    /// The sha256 of the source bytes, whether or not one was expected.
    pub sha256: Sha256Digest,
    /// Bmap ranges checked; 0 without a bmap.
    pub ranges_verified: usize,
    /// How long the write and verification took.
    pub elapsed: Duration,
}

/// Write `source` onto `disk` and verify it. On failure after the first byte was written the
/// disk's first and last MiB (and the image's last MiB) are zeroed, so neither GPT remains.
pub fn write_image(
    source: impl Read + Send,
    disk: &Disk,
    options: &WriteOptions,
    progress: &mut Progress,
) -> Result<WriteReport, WriteError> {
    let mut touched = false;
    let mut image_end = None;
    match stream_image(
        source,
        disk,
        options,
        progress,
        &mut touched,
        &mut image_end,
    ) {
        Ok(report) => Ok(report),
        Err(cause) if !touched || options.preserve_on_error => Err(cause),
        Err(cause) => match reset_partition_tables_keeping(disk, image_end, &options.keep) {
            Ok(()) => Err(cause),
            Err(reset) => Err(WriteError::ResetFailed {
                cause: Box::new(cause),
                reset,
            }),
        },
    }
}

/// Zero the first and last MiB of the disk, and the last MiB of the image when it ended
/// before the disk's end (its backup GPT), then flush.
pub fn reset_partition_tables(disk: &Disk, image_end: Option<u64>) -> io::Result<()> {
    reset_partition_tables_keeping(disk, image_end, &[])
}

/// [`reset_partition_tables`], leaving the `keep` ranges alone: an area that reaches into a
/// kept partition starts after it (the backup GPT lies after the last partition).
fn reset_partition_tables_keeping(
    disk: &Disk,
    image_end: Option<u64>,
    keep: &[(u64, u64)],
) -> io::Result<()> {
    let mut areas = vec![
        (0, HEAD_BYTES.min(disk.size)),
        (disk.size.saturating_sub(TAIL_BYTES), disk.size),
    ];
    if let Some(end) = image_end.filter(|end| *end < disk.size) {
        areas.push((end.saturating_sub(TAIL_BYTES), end));
    }
    for area in &mut areas {
        for &(start, end) in keep {
            if area.0 < end && start < area.1 {
                area.0 = area.0.max(end).min(area.1);
            }
        }
    }
    #[expect(clippy::cast_possible_truncation, reason = "a MiB fits every usize")]
    let zeros = vec![0u8; TAIL_BYTES.max(HEAD_BYTES) as usize];
    for (start, end) in areas {
        // Each area is at most a MiB, the buffer's length: saturating never cuts one short.
        let len = usize::try_from(end - start).unwrap_or(zeros.len());
        disk.file.write_all_at(&zeros[..len], start)?;
    }
    disk.file.sync_all()
}

/// A buffer of image bytes on its way to the disk.
struct Chunk {
    offset: u64,
    data: Vec<u8>,
    /// The held-back head is checked against the bmap but written only at the end.
    write: bool,
}

fn stream_image(
    source: impl Read + Send,
    disk: &Disk,
    options: &WriteOptions,
    progress: &mut Progress,
    touched: &mut bool,
    image_end: &mut Option<u64>,
) -> Result<WriteReport, WriteError> {
    let started = Instant::now();
    let source_count = Arc::new(AtomicU64::new(0));
    let mut hashing = HashingReader::new(CountingReader::new(source, source_count.clone()));
    let mut buffered = BufReader::with_capacity(SOURCE_BUFFER, &mut hashing);
    let read_error = |image_offset, source| WriteError::Read {
        image_offset,
        source_offset: source_count.load(Ordering::Relaxed),
        source,
    };
    // Saturating: no machine has more than u32::MAX threads.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    let (compression, mut decoded) =
        parallel_decoder(&mut buffered, threads).map_err(|error| read_error(0, error))?;

    let known_size = options.bmap.map(|bmap| bmap.image_size).or(options
        .source_length
        .filter(|_| compression == Compression::None));
    if let Some(size) = known_size {
        check_fits(size, disk)?;
        check_clear_of_kept(size, &options.keep)?;
    }
    let total = options.bmap.map(Bmap::mapped_bytes).or(known_size);
    // A compressed image's size is known only once inflated: count the compressed bytes read
    // against the file's size or Content-Length instead, as coreos-installer does.
    let compressed_total = options
        .source_length
        .filter(|_| total.is_none() && compression != Compression::None);
    match compressed_total {
        Some(source_total) => progress.stage_compressed("writing", source_total),
        None => progress.stage("writing", total),
    }
    let source_read = compressed_total.map(|_| source_count.clone());

    #[expect(clippy::cast_possible_truncation, reason = "a MiB fits every usize")]
    let mut head = vec![0u8; HEAD_BYTES as usize];
    let head_len = read_full(&mut decoded, &mut head).map_err(|error| read_error(0, error))?;
    head.truncate(head_len);
    check_sector_layout(&head, disk.sector_size)?;

    *touched = true;
    reset_partition_tables_keeping(disk, None, &options.keep).map_err(|source| {
        WriteError::Write {
            offset: 0,
            length: HEAD_BYTES,
            source,
        }
    })?;

    let ranges: Vec<ByteRange> = options
        .bmap
        .map(|bmap| bmap.byte_ranges().collect())
        .unwrap_or_default();
    let checksum_type = options.bmap.and_then(|bmap| bmap.checksum_type);
    let (chunk_sender, chunk_receiver) = sync_channel::<Chunk>(QUEUE_DEPTH);
    let (empty_sender, empty_receiver) = sync_channel::<Vec<u8>>(QUEUE_DEPTH + 2);
    for _ in 0..QUEUE_DEPTH + 1 {
        // Cannot fail: the receiver is alive and the channel has room.
        let _ = empty_sender.send(Vec::with_capacity(CHUNK_BYTES));
    }

    let outcome = std::thread::scope(|scope| {
        let progress_ref = &*progress;
        let writer = scope.spawn(move || {
            let mut writer = ChunkWriter {
                disk,
                plan: options.bmap.map(|_| RangePlan::new(ranges, checksum_type)),
                written: 0,
                source_read,
                progress: progress_ref,
            };
            writer.run(chunk_receiver, empty_sender)
        });
        let read = feed_chunks(
            &mut decoded,
            head.clone(),
            disk,
            options,
            &chunk_sender,
            &empty_receiver,
            image_end,
        )
        .map_err(|error| match error {
            FeedError::Read(offset, error) => read_error(offset, error),
            FeedError::Other(error) => error,
        });
        drop(chunk_sender);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A writer failure explains a stopped feed better than the feed's own view of it.
        match (read, written) {
            (_, Err(error)) => Err(error),
            (Err(error), _) => Err(error),
            (Ok(image_bytes), Ok((bytes_written, ranges_verified))) => {
                Ok((image_bytes, bytes_written, ranges_verified))
            }
        }
    });
    let (image_bytes, bytes_written, ranges_verified) = outcome?;

    // Whatever follows the compressed stream is part of the published file and its sha256.
    drop(decoded);
    io::copy(&mut buffered, &mut io::sink()).map_err(|error| read_error(image_bytes, error))?;
    drop(buffered);
    let source_bytes = source_count.load(Ordering::Relaxed);
    let sha256 = hashing.finish();

    if let Some(expected) = options.expected_sha256
        && expected != sha256
    {
        return Err(WriteError::Sha256Mismatch {
            expected: expected.to_hex(),
            actual: sha256.to_hex(),
            source_bytes,
        });
    }
    if let Some(bmap) = options.bmap
        && bmap.image_size != image_bytes
    {
        return Err(WriteError::BmapSizeMismatch {
            expected: bmap.image_size,
            actual: image_bytes,
        });
    }
    if image_bytes == 0 {
        return Err(WriteError::EmptyImage);
    }
    if image_bytes % disk.sector_size != 0 {
        return Err(WriteError::PartialSector {
            image_bytes,
            sector_size: disk.sector_size,
        });
    }

    // Verified: now the partition table. The whole head is written even with a bmap, so no
    // stale signature (an old md or LVM label at 4 KiB) survives next to the new GPT.
    progress.advanced(bytes_written, Some(source_bytes));
    progress.stage("finishing", None);
    commit_head(&disk.file, &head)?;
    Ok(WriteReport {
        compression,
        image_bytes,
        bytes_written: bytes_written + head.len() as u64,
        source_bytes,
        sha256,
        ranges_verified,
        elapsed: started.elapsed(),
    })
}

/// What the last step does to the disk; [`File`] in use, a recording stand-in in the tests.
trait DiskWrites {
    /// Writes all of `data` at byte `offset`.
    fn write_bytes_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Waits until everything written so far is on the medium (the disk's cache flushed too).
    fn flush(&self) -> io::Result<()>;
}

impl DiskWrites for File {
    fn write_bytes_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, data, offset)
    }

    /// fsync: on a block device the kernel writes the device's dirty pages back and then
    /// sends the disk a cache flush (blkdev_fsync), so the bytes are on the medium.
    fn flush(&self) -> io::Result<()> {
        self.sync_all()
    }
}

/// Makes the verified image bootable: flushes the body, only then writes the held-back head,
/// and flushes again. A power cut before the first flush ends leaves no partition table (it
/// was zeroed before the body was written); one after it leaves a whole body under either no
/// table or the new one.
fn commit_head(disk: &impl DiskWrites, head: &[u8]) -> Result<(), WriteError> {
    disk.flush().map_err(WriteError::Flush)?;
    disk.write_bytes_at(head, 0)
        .map_err(|source| WriteError::Write {
            offset: 0,
            length: head.len() as u64,
            source,
        })?;
    disk.flush().map_err(WriteError::Flush)
}

enum FeedError {
    /// The decompressed stream failed at this image offset.
    Read(u64, io::Error),
    Other(WriteError),
}

/// Read the image into buffers and hand them to the writer; returns the image's size. Stops
/// quietly when the writer has gone (its error is the one to report).
fn feed_chunks(
    decoded: &mut dyn Read,
    head: Vec<u8>,
    disk: &Disk,
    options: &WriteOptions,
    chunks: &SyncSender<Chunk>,
    empties: &Receiver<Vec<u8>>,
    image_end: &mut Option<u64>,
) -> Result<u64, FeedError> {
    let mut offset = head.len() as u64;
    let head_chunk = Chunk {
        offset: 0,
        data: head,
        write: false,
    };
    if chunks.send(head_chunk).is_err() {
        return Ok(offset);
    }
    loop {
        if options
            .cancel
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
        {
            return Err(FeedError::Other(WriteError::Interrupted));
        }
        let Ok(mut buffer) = empties.recv() else {
            return Ok(offset);
        };
        buffer.resize(CHUNK_BYTES, 0);
        let length =
            read_full(decoded, &mut buffer).map_err(|error| FeedError::Read(offset, error))?;
        if length == 0 {
            return Ok(offset);
        }
        buffer.truncate(length);
        let end = offset + length as u64;
        check_fits(end, disk).map_err(FeedError::Other)?;
        check_clear_of_kept(end, &options.keep).map_err(FeedError::Other)?;
        if let Some(bmap) = options.bmap
            && end > bmap.image_size
        {
            return Err(FeedError::Other(WriteError::BmapSizeMismatch {
                expected: bmap.image_size,
                actual: end,
            }));
        }
        *image_end = Some(end);
        let chunk = Chunk {
            offset,
            data: buffer,
            write: true,
        };
        if chunks.send(chunk).is_err() {
            return Ok(end);
        }
        offset = end;
    }
}

fn check_fits(image_bytes: u64, disk: &Disk) -> Result<(), WriteError> {
    if image_bytes > disk.size {
        return Err(WriteError::DiskTooSmall {
            image_bytes,
            disk_bytes: disk.size,
        });
    }
    Ok(())
}

/// The image's first `image_bytes` must end before the first kept partition.
fn check_clear_of_kept(image_bytes: u64, keep: &[(u64, u64)]) -> Result<(), WriteError> {
    match keep.iter().map(|(start, _)| *start).min() {
        Some(keep_start) if image_bytes > keep_start => Err(WriteError::OverlapsKept {
            image_bytes,
            keep_start,
        }),
        _ => Ok(()),
    }
}

/// The GPT header sits in the second logical sector: at 512 for 512-byte disks, at 4096 for
/// 4K disks. An image with it in the other place would have no partition table on this disk.
fn check_sector_layout(head: &[u8], disk_sector: u64) -> Result<(), WriteError> {
    // An offset past the buffer (or past usize) has no header in it.
    let has_header_at = |offset: u64| {
        usize::try_from(offset)
            .ok()
            .and_then(|offset| head.get(offset..))
            .is_some_and(|rest| rest.starts_with(GPT_SIGNATURE))
    };
    for image_sector in [512u64, 4096] {
        if image_sector != disk_sector && has_header_at(image_sector) && !has_header_at(disk_sector)
        {
            return Err(WriteError::SectorLayout {
                image_sector,
                disk_sector,
            });
        }
    }
    Ok(())
}

/// Fill `buffer` unless the stream ends first; returns the bytes read.
fn read_full(reader: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// A distance into an in-memory chunk as a slice index. Callers pass distances below the
/// chunk's length (a usize), so they fit; were one not to, the saturated index fails the
/// slice bounds check instead of silently wrapping to a wrong place.
fn to_index(distance: u64) -> usize {
    usize::try_from(distance).unwrap_or(usize::MAX)
}

/// The bmap's ranges as the stream passes them: each one hashed, checked when it ends.
struct RangePlan {
    ranges: Vec<ByteRange>,
    next: usize,
    checksum_type: Option<bootkit_common::bmap::ChecksumType>,
    hasher: Option<Box<dyn DynDigest + Send>>,
}

impl RangePlan {
    fn new(
        ranges: Vec<ByteRange>,
        checksum_type: Option<bootkit_common::bmap::ChecksumType>,
    ) -> Self {
        Self {
            ranges,
            next: 0,
            checksum_type,
            hasher: None,
        }
    }

    /// The parts of `[offset, offset + length)` that are mapped, as (image offset, length),
    /// hashing them on the way and checking every range that ends inside.
    fn mapped_parts(&mut self, offset: u64, data: &[u8]) -> Result<Vec<(u64, usize)>, WriteError> {
        let end = offset + data.len() as u64;
        let mut parts = Vec::new();
        while let Some(range) = self.ranges.get(self.next) {
            let range_end = range.offset + range.length;
            if range.offset >= end {
                break;
            }
            let start = range.offset.max(offset);
            let stop = range_end.min(end);
            if start < stop {
                // Both lie within `data`, so they fit a usize.
                let slice = &data[to_index(start - offset)..to_index(stop - offset)];
                if let Some(kind) = self.checksum_type {
                    self.hasher
                        .get_or_insert_with(|| kind.hasher())
                        .update(slice);
                }
                parts.push((start, slice.len()));
            }
            if range_end > end {
                break;
            }
            self.finish_range()?;
        }
        Ok(parts)
    }

    fn finish_range(&mut self) -> Result<(), WriteError> {
        let index = self.next;
        self.next += 1;
        let range = &self.ranges[index];
        let (Some(kind), Some(expected)) = (self.checksum_type, range.checksum.as_ref()) else {
            return Ok(());
        };
        let hasher = self.hasher.take().unwrap_or_else(|| kind.hasher());
        let actual = hex::encode(hasher.finalize());
        if &actual != expected {
            return Err(WriteError::RangeMismatch {
                index,
                offset: range.offset,
                length: range.length,
                kind: kind.name(),
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    }

    fn verified(&self) -> usize {
        self.next
    }
}

struct ChunkWriter<'a> {
    disk: &'a Disk,
    /// `None`: every byte is written.
    plan: Option<RangePlan>,
    written: u64,
    /// The compressed source's byte count, when progress counts that.
    source_read: Option<Arc<AtomicU64>>,
    progress: &'a Progress,
}

impl ChunkWriter<'_> {
    /// Write chunks until the feed closes; returns bytes written and ranges verified.
    fn run(
        &mut self,
        chunks: Receiver<Chunk>,
        empties: SyncSender<Vec<u8>>,
    ) -> Result<(u64, usize), WriteError> {
        for chunk in chunks {
            self.write_chunk(&chunk)?;
            // The feed may have finished and dropped its receiver: then the buffer is freed.
            let _ = empties.send(chunk.data);
        }
        let verified = self.plan.as_ref().map_or(0, RangePlan::verified);
        Ok((self.written, verified))
    }

    fn write_chunk(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        let parts = match &mut self.plan {
            Some(plan) => plan.mapped_parts(chunk.offset, &chunk.data)?,
            None => vec![(chunk.offset, chunk.data.len())],
        };
        if !chunk.write {
            return Ok(());
        }
        for (offset, length) in parts {
            let start = to_index(offset - chunk.offset);
            self.disk
                .file
                .write_all_at(&chunk.data[start..start + length], offset)
                .map_err(|source| WriteError::Write {
                    offset,
                    length: length as u64,
                    source,
                })?;
            self.written += length as u64;
        }
        let source_read = self
            .source_read
            .as_ref()
            .map(|count| count.load(Ordering::Relaxed));
        self.progress.advanced(self.written, source_read);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records what the last step does, in order.
    #[derive(Default)]
    struct Recording(RefCell<Vec<String>>);

    impl DiskWrites for Recording {
        fn write_bytes_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
            self.0
                .borrow_mut()
                .push(format!("write {} at {offset}", data.len()));
            Ok(())
        }

        fn flush(&self) -> io::Result<()> {
            self.0.borrow_mut().push("flush".to_owned());
            Ok(())
        }
    }

    #[test]
    fn the_body_is_flushed_before_the_head_is_written_and_the_head_after() {
        let disk = Recording::default();
        commit_head(&disk, &[1; 4096]).unwrap();
        assert_eq!(
            disk.0.into_inner(),
            ["flush", "write 4096 at 0", "flush"],
            "body flushed, then the head, then flushed again"
        );
    }

    fn range(offset: u64, length: u64, data: &[u8]) -> ByteRange {
        use sha2::Digest;
        let start = usize::try_from(offset).unwrap();
        let bytes = &data[start..start + usize::try_from(length).unwrap()];
        ByteRange {
            offset,
            length,
            checksum: Some(hex::encode(sha2::Sha256::digest(bytes))),
        }
    }

    #[test]
    fn ranges_spanning_chunks_are_hashed_across_them() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let ranges = vec![range(100, 50, &data), range(4000, 5000, &data)];
        let mut plan = RangePlan::new(ranges, Some(bootkit_common::bmap::ChecksumType::Sha256));
        let mut parts = Vec::new();
        for start in (0..data.len()).step_by(4096) {
            let end = (start + 4096).min(data.len());
            parts.extend(plan.mapped_parts(start as u64, &data[start..end]).unwrap());
        }
        assert_eq!(
            parts,
            vec![(100, 50), (4000, 96), (4096, 4096), (8192, 808)]
        );
        assert_eq!(plan.verified(), 2);
    }

    #[test]
    fn a_range_that_does_not_match_names_its_place() {
        let data = vec![7u8; 8192];
        let mut wrong = range(4096, 4096, &data);
        wrong.checksum = Some("00".repeat(32));
        let mut plan = RangePlan::new(
            vec![wrong],
            Some(bootkit_common::bmap::ChecksumType::Sha256),
        );
        let error = plan.mapped_parts(0, &data).unwrap_err().to_string();
        assert!(error.contains("bytes 4096..8192"), "{error}");
    }

    #[test]
    fn a_gpt_made_for_512_byte_sectors_is_refused_on_a_4k_disk() {
        let mut head = vec![0u8; 8192];
        head[512..520].copy_from_slice(GPT_SIGNATURE);
        assert!(check_sector_layout(&head, 512).is_ok());
        assert!(matches!(
            check_sector_layout(&head, 4096),
            Err(WriteError::SectorLayout {
                image_sector: 512,
                disk_sector: 4096
            })
        ));
    }
}
