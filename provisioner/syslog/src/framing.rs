//! Reading syslog frames from a TCP stream (RFC 6587): octet counting (`LEN SP MSG`) when a
//! frame starts with a digit, otherwise one line ending in LF. Frames are cut at
//! [`MAX_FRAME`]; the rest is read and dropped, so a connection never buffers more.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The most of one message that is kept (RFC 5425 asks receivers to take at least 2 KiB;
/// kernel oopses and stack traces run longer).
pub const MAX_FRAME: usize = 64 * 1024;
/// Digits of an octet count; ten is past any frame a sender would mean.
const MAX_COUNT_DIGITS: usize = 10;

/// What [`read_frame`] found on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A frame is in the buffer.
    Read {
        /// The frame was longer than [`MAX_FRAME`] and was cut there.
        truncated: bool,
    },
    /// The peer closed the connection between frames.
    End,
}

/// Reads the next non-empty frame into `frame` (cleared first).
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    frame: &mut Vec<u8>,
) -> io::Result<Frame> {
    frame.clear();
    loop {
        let first = match reader.fill_buf().await?.first() {
            None => return Ok(Frame::End),
            Some(byte) => *byte,
        };
        if first.is_ascii_digit() {
            return read_octet_counted(reader, frame).await;
        }
        let truncated = read_line(reader, frame).await?;
        if !frame.is_empty() {
            return Ok(Frame::Read { truncated });
        }
    }
}

async fn read_octet_counted<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    frame: &mut Vec<u8>,
) -> io::Result<Frame> {
    let mut count: u64 = 0;
    for _ in 0..=MAX_COUNT_DIGITS {
        let byte = reader.read_u8().await?;
        match byte {
            b'0'..=b'9' => count = count * 10 + u64::from(byte - b'0'),
            b' ' => {
                let kept = count.min(MAX_FRAME as u64);
                reader.take(kept).read_to_end(frame).await?;
                if (frame.len() as u64) < kept {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let dropped =
                    tokio::io::copy(&mut reader.take(count - kept), &mut tokio::io::sink()).await?;
                if dropped < count - kept {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                return Ok(Frame::Read {
                    truncated: count > kept,
                });
            }
            _ => break,
        }
    }
    // Framing is lost: where the next frame starts cannot be known.
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "octet count is not digits followed by a space",
    ))
}

/// Reads up to and including LF (or to the end of the stream), keeping at most [`MAX_FRAME`]
/// bytes without the LF; returns whether bytes were dropped.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    frame: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut truncated = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(truncated);
        }
        let (chunk, found_end) = match available.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        let room = MAX_FRAME - frame.len();
        truncated |= chunk.len() > room;
        frame.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = chunk.len() + usize::from(found_end);
        reader.consume(consumed);
        if found_end {
            return Ok(truncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8]) -> Vec<(String, bool)> {
        let mut reader = input;
        let mut frame = Vec::new();
        let mut read = Vec::new();
        while let Frame::Read { truncated } = read_frame(&mut reader, &mut frame).await.unwrap() {
            read.push((String::from_utf8_lossy(&frame).into_owned(), truncated));
        }
        read
    }

    #[tokio::test]
    async fn octet_counted_and_lf_frames_mix_and_blank_lines_are_skipped() {
        let read = frames(b"5 <13>a\n\n<13>b\r\n11 <13>c\nd e f<14>last").await;
        let texts: Vec<&str> = read.iter().map(|(text, _)| text.as_str()).collect();
        assert_eq!(texts, ["<13>a", "<13>b\r", "<13>c\nd e f", "<14>last"]);
    }

    #[tokio::test]
    async fn oversized_frames_are_cut_and_the_next_frame_is_intact() {
        let long = "x".repeat(MAX_FRAME + 10);
        let input = format!("{} {long}{long}\n5 <13>z", long.len());
        let read = frames(input.as_bytes()).await;
        assert_eq!(read.len(), 3);
        assert_eq!((read[0].0.len(), read[0].1), (MAX_FRAME, true));
        assert_eq!((read[1].0.len(), read[1].1), (MAX_FRAME, true));
        assert_eq!(read[2], ("<13>z".to_string(), false));
    }

    #[tokio::test]
    async fn a_broken_octet_count_or_short_frame_is_an_error() {
        let mut frame = Vec::new();
        assert!(
            read_frame(&mut &b"12x <13>a"[..], &mut frame)
                .await
                .is_err()
        );
        assert!(read_frame(&mut &b"99 <13>a"[..], &mut frame).await.is_err());
    }
}
