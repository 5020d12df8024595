//! A minimal transmission-phase client: reads and a clean disconnect, with simple replies
//! (structured replies are never negotiated, as the kernel does not use them).
//!
//! In the bootkit the kernel drives the transmission phase once the socket is attached; this
//! client lets the protocol be checked end to end where there is no nbd kernel module (the
//! host side of the tests), and lets a caller verify an export before attaching it.

use std::io::{self, Read, Write};

/// The magic of each request, from `linux/nbd.h`.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// The magic of each simple reply, from `linux/nbd.h`.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// `NBD_CMD_READ`.
pub const CMD_READ: u16 = 0;
/// `NBD_CMD_DISC`: disconnect.
pub const CMD_DISC: u16 = 2;
/// The largest read this client sends in one request: servers commonly refuse more than
/// 32 MiB, and a caller's buffer larger than that is a mistake worth an error.
pub const MAX_READ: usize = 32 << 20;

/// Why a transmission-phase request failed.
#[derive(Debug, thiserror::Error)]
pub enum TransmissionError {
    /// An I/O error on the stream.
    #[error("NBD read of {len} bytes at {offset}: {stage}")]
    Io {
        /// What the client was doing.
        stage: &'static str,
        /// The read's offset in bytes.
        offset: u64,
        /// The read's length in bytes.
        len: usize,
        /// The operating system's error.
        source: io::Error,
    },
    /// A reply does not start with the simple reply magic.
    #[error("NBD reply magic is {found:#010x}, expected {SIMPLE_REPLY_MAGIC:#010x}")]
    BadMagic {
        /// The magic received.
        found: u32,
    },
    /// A reply is for another request.
    #[error("NBD reply is for request {found:#x}, expected {expected:#x}")]
    WrongCookie {
        /// The request's cookie.
        expected: u64,
        /// The reply's cookie.
        found: u64,
    },
    /// The server answered the read with an error.
    #[error("the NBD server failed the read of {len} bytes at {offset}: error {error} ({})", io::Error::from_raw_os_error(*error as i32))]
    Server {
        /// The server's errno value.
        error: u32,
        /// The read's offset in bytes.
        offset: u64,
        /// The read's length in bytes.
        len: usize,
    },
    /// The read asked for is over [`MAX_READ`].
    #[error("NBD read of {len} bytes is larger than the {MAX_READ} allowed in one request")]
    TooLarge {
        /// The length asked for, in bytes.
        len: usize,
    },
}

/// Reads `buf.len()` bytes at `offset`; `cookie` identifies the request in the reply.
pub fn read_at<S: Read + Write>(
    stream: &mut S,
    cookie: u64,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), TransmissionError> {
    let len = buf.len();
    if len > MAX_READ {
        return Err(TransmissionError::TooLarge { len });
    }
    let io = |stage| {
        move |source| TransmissionError::Io {
            stage,
            offset,
            len,
            source,
        }
    };
    // len is at most MAX_READ, which fits in a u32: the saturation never happens.
    let request = request(
        CMD_READ,
        cookie,
        offset,
        u32::try_from(len).unwrap_or(u32::MAX),
    );
    stream
        .write_all(&request)
        .and_then(|()| stream.flush())
        .map_err(io("sending the request"))?;
    let mut reply = [0u8; 16];
    stream
        .read_exact(&mut reply)
        .map_err(io("reading the reply"))?;
    check_reply(&reply, cookie, offset, len)?;
    stream.read_exact(buf).map_err(io("reading the data"))
}

/// Ends the transmission phase cleanly (`NBD_CMD_DISC` has no reply).
pub fn disconnect<S: Write>(stream: &mut S) -> io::Result<()> {
    stream.write_all(&request(CMD_DISC, 0, 0, 0))?;
    stream.flush()
}

/// A 28-byte request: magic, command flags (none), type, cookie, offset, length.
fn request(command: u16, cookie: u64, offset: u64, len: u32) -> [u8; 28] {
    let mut bytes = [0u8; 28];
    bytes[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    bytes[6..8].copy_from_slice(&command.to_be_bytes());
    bytes[8..16].copy_from_slice(&cookie.to_be_bytes());
    bytes[16..24].copy_from_slice(&offset.to_be_bytes());
    bytes[24..28].copy_from_slice(&len.to_be_bytes());
    bytes
}

/// A simple reply: magic, error (an errno value), cookie.
fn check_reply(
    reply: &[u8; 16],
    cookie: u64,
    offset: u64,
    len: usize,
) -> Result<(), TransmissionError> {
    let magic = u32::from_be_bytes([reply[0], reply[1], reply[2], reply[3]]);
    if magic != SIMPLE_REPLY_MAGIC {
        return Err(TransmissionError::BadMagic { found: magic });
    }
    let error = u32::from_be_bytes([reply[4], reply[5], reply[6], reply[7]]);
    let mut cookie_bytes = [0u8; 8];
    cookie_bytes.copy_from_slice(&reply[8..16]);
    let found = u64::from_be_bytes(cookie_bytes);
    if found != cookie {
        return Err(TransmissionError::WrongCookie {
            expected: cookie,
            found,
        });
    }
    if error != 0 {
        return Err(TransmissionError::Server { error, offset, len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::nbd::scripted::Scripted as Fake;

    fn reply(error: u32, cookie: u64, data: &[u8]) -> Fake {
        let mut input = SIMPLE_REPLY_MAGIC.to_be_bytes().to_vec();
        input.extend_from_slice(&error.to_be_bytes());
        input.extend_from_slice(&cookie.to_be_bytes());
        input.extend_from_slice(data);
        Fake::new(input)
    }

    #[test]
    fn read_sends_a_request_and_returns_the_data() {
        let mut fake = reply(0, 7, b"abcd");
        let mut buf = [0u8; 4];
        read_at(&mut fake, 7, 512, &mut buf).unwrap();
        assert_eq!(&buf, b"abcd");
        let mut expected = vec![0x25, 0x60, 0x95, 0x13, 0, 0, 0, 0];
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&512u64.to_be_bytes());
        expected.extend_from_slice(&4u32.to_be_bytes());
        assert_eq!(fake.output, expected);
    }

    #[test]
    fn read_errors() {
        let mut buf = [0u8; 4];
        let err = read_at(&mut reply(5, 7, b""), 7, 0, &mut buf).unwrap_err();
        assert!(err.to_string().contains("error 5"), "{err}");
        let err = read_at(&mut reply(0, 8, b"abcd"), 7, 0, &mut buf).unwrap_err();
        assert!(
            matches!(err, TransmissionError::WrongCookie { .. }),
            "{err:?}"
        );
        let err = read_at(&mut reply(0, 7, b"ab"), 7, 0, &mut buf).unwrap_err();
        assert!(err.to_string().contains("reading the data"), "{err}");
        let mut bad = reply(0, 7, b"abcd");
        bad.input.get_mut()[0] = 0;
        let err = read_at(&mut bad, 7, 0, &mut buf).unwrap_err();
        assert!(matches!(err, TransmissionError::BadMagic { .. }), "{err:?}");
        let mut huge = vec![0u8; MAX_READ + 1];
        let err = read_at(&mut reply(0, 7, b""), 7, 0, &mut huge).unwrap_err();
        assert!(matches!(err, TransmissionError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn disconnect_sends_cmd_disc() {
        let mut out = Vec::new();
        disconnect(&mut out).unwrap();
        assert_eq!(out.len(), 28);
        assert_eq!(&out[6..8], &CMD_DISC.to_be_bytes());
    }
}
