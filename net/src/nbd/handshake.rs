//! The client side of the NBD fixed-newstyle handshake.
//!
//! ```text
//! S: "NBDMAGIC" "IHAVEOPT" u16 handshake flags
//! C: u32 client flags
//! C: "IHAVEOPT" NBD_OPT_GO: u32 name length, name, u16 count, u16 information requests
//! S: NBD_REP_INFO (NBD_INFO_EXPORT: size, transmission flags; NBD_INFO_BLOCK_SIZE; ...)*
//! S: NBD_REP_ACK                     (or an error reply: the export is refused)
//! ```
//!
//! A server that answers `NBD_REP_ERR_UNSUP` to `NBD_OPT_GO` (or does not offer fixed
//! newstyle at all) is asked with the older `NBD_OPT_EXPORT_NAME` instead, whose only
//! failure signal is closing the connection.
//!
//! Everything the server sends is untrusted: each length is checked against a small bound
//! before anything is allocated, the number of replies is bounded, and every malformed or
//! truncated reply is a [`HandshakeError`] that says what was being read, never a panic.
//! The stream is blocking: once the handshake is done the socket belongs to the kernel.

use std::fmt;
use std::io::{self, Read, Write};

/// "NBDMAGIC", the first 8 bytes a server sends.
pub const NBDMAGIC: u64 = u64::from_be_bytes(*b"NBDMAGIC");
/// "IHAVEOPT": the newstyle server magic, and the magic of each client option.
pub const IHAVEOPT: u64 = u64::from_be_bytes(*b"IHAVEOPT");
/// What an oldstyle server sends after NBDMAGIC.
pub const OLDSTYLE_MAGIC: u64 = 0x0000_4202_8186_1253;
/// The magic of each option reply.
pub const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;

/// Handshake flags (server) and client flags share these bits.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Both sides: no 124 zero bytes after `NBD_OPT_EXPORT_NAME`'s reply.
pub(crate) const FLAG_NO_ZEROES: u16 = 1 << 1;

/// `NBD_OPT_EXPORT_NAME`: select an export, the oldest way (no error replies).
pub(crate) const OPT_EXPORT_NAME: u32 = 1;
/// `NBD_OPT_ABORT`: end the handshake.
pub(crate) const OPT_ABORT: u32 = 2;
/// `NBD_OPT_GO`: select an export and receive its information.
pub(crate) const OPT_GO: u32 = 7;

/// `NBD_REP_ACK`: the option is done.
pub(crate) const REP_ACK: u32 = 1;
/// `NBD_REP_INFO`: one piece of information about the export.
pub(crate) const REP_INFO: u32 = 3;
/// Bit 31 marks an error reply.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// `NBD_REP_ERR_UNSUP`: the server does not know the option.
pub(crate) const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// `NBD_REP_ERR_POLICY`: forbidden by the server's policy.
pub(crate) const REP_ERR_POLICY: u32 = REP_FLAG_ERROR | 2;
/// `NBD_REP_ERR_INVALID`: the option is malformed.
pub(crate) const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
/// `NBD_REP_ERR_PLATFORM`: not supported on the server's platform.
pub(crate) const REP_ERR_PLATFORM: u32 = REP_FLAG_ERROR | 4;
/// `NBD_REP_ERR_TLS_REQD`: TLS first.
pub(crate) const REP_ERR_TLS_REQD: u32 = REP_FLAG_ERROR | 5;
/// `NBD_REP_ERR_UNKNOWN`: no such export.
pub(crate) const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;
/// `NBD_REP_ERR_SHUTDOWN`: the server is shutting down.
pub(crate) const REP_ERR_SHUTDOWN: u32 = REP_FLAG_ERROR | 7;
/// `NBD_REP_ERR_BLOCK_SIZE_REQD`: the client must ask for block sizes.
pub(crate) const REP_ERR_BLOCK_SIZE_REQD: u32 = REP_FLAG_ERROR | 8;
/// `NBD_REP_ERR_TOO_BIG`: a request is too large.
pub(crate) const REP_ERR_TOO_BIG: u32 = REP_FLAG_ERROR | 9;
/// `NBD_REP_ERR_EXT_HEADER_REQD`: extended headers first.
pub(crate) const REP_ERR_EXT_HEADER_REQD: u32 = REP_FLAG_ERROR | 10;

/// `NBD_INFO_EXPORT`: size and transmission flags.
pub(crate) const INFO_EXPORT: u16 = 0;
/// `NBD_INFO_NAME`: the export's canonical name.
pub const INFO_NAME: u16 = 1;
/// `NBD_INFO_DESCRIPTION`: a description for humans.
pub const INFO_DESCRIPTION: u16 = 2;
/// `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum block sizes.
pub(crate) const INFO_BLOCK_SIZE: u16 = 3;

/// The longest export name or error message the protocol allows.
const MAX_STRING: u32 = 4096;
/// The longest `NBD_REP_INFO` payload accepted: a 2-byte type and at most a string
/// (`NBD_INFO_NAME`, `NBD_INFO_DESCRIPTION`); the numeric ones are far shorter.
const MAX_INFO_LEN: u32 = 2 + MAX_STRING;
/// Replies accepted for one `NBD_OPT_GO`: a server streaming replies forever must not keep
/// the boot waiting (a real one sends two or three).
const MAX_REPLIES: usize = 64;
/// The zero padding after `NBD_OPT_EXPORT_NAME`'s reply when `NO_ZEROES` is not agreed.
const EXPORT_NAME_PADDING: usize = 124;
/// Block sizes the protocol allows for the minimum (1 to 64 KiB).
const MAX_MIN_BLOCK_SIZE: u32 = 64 * 1024;

/// The transmission flags the server gives for an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransmissionFlags(pub u16);

impl TransmissionFlags {
    /// `NBD_FLAG_HAS_FLAGS`: always set by a server.
    pub const HAS_FLAGS: u16 = 1 << 0;
    /// `NBD_FLAG_READ_ONLY`: writes are refused.
    pub const READ_ONLY: u16 = 1 << 1;
    /// `NBD_FLAG_SEND_FLUSH`: the server takes `NBD_CMD_FLUSH`.
    pub const SEND_FLUSH: u16 = 1 << 2;
    /// `NBD_FLAG_SEND_FUA`: the server takes forced unit access writes.
    pub const SEND_FUA: u16 = 1 << 3;
    /// `NBD_FLAG_ROTATIONAL`: the export behaves like a spinning disk.
    pub const ROTATIONAL: u16 = 1 << 4;
    /// `NBD_FLAG_SEND_TRIM`: the server takes `NBD_CMD_TRIM`.
    pub const SEND_TRIM: u16 = 1 << 5;
    /// `NBD_FLAG_SEND_WRITE_ZEROES`: the server takes `NBD_CMD_WRITE_ZEROES`.
    pub const SEND_WRITE_ZEROES: u16 = 1 << 6;
    /// `NBD_FLAG_SEND_DF`: the server takes the don't-fragment flag on reads.
    pub const SEND_DF: u16 = 1 << 7;
    /// `NBD_FLAG_CAN_MULTI_CONN`: several connections may serve one export.
    pub const CAN_MULTI_CONN: u16 = 1 << 8;
    /// `NBD_FLAG_SEND_RESIZE`: the server takes `NBD_CMD_RESIZE`.
    pub const SEND_RESIZE: u16 = 1 << 9;
    /// `NBD_FLAG_SEND_CACHE`: the server takes `NBD_CMD_CACHE`.
    pub const SEND_CACHE: u16 = 1 << 10;
    /// `NBD_FLAG_SEND_FAST_ZERO`: the server takes `NBD_CMD_FLAG_FAST_ZERO`.
    pub const SEND_FAST_ZERO: u16 = 1 << 11;

    /// The raw 16 bits, as the kernel's `NBD_SET_FLAGS` takes them.
    pub fn bits(self) -> u16 {
        self.0
    }
    /// True if every bit of `flag` is set.
    pub fn contains(self, flag: u16) -> bool {
        self.0 & flag == flag
    }
    /// The export refuses writes.
    pub fn read_only(self) -> bool {
        self.contains(Self::READ_ONLY)
    }
    /// The export takes flushes.
    pub fn can_flush(self) -> bool {
        self.contains(Self::SEND_FLUSH)
    }
    /// The export takes trims (discards).
    pub fn can_trim(self) -> bool {
        self.contains(Self::SEND_TRIM)
    }
}

/// The block size constraints from `NBD_INFO_BLOCK_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizes {
    /// Smallest block size in bytes the server accepts (1 to 64 KiB, a power of two).
    pub minimum: u32,
    /// Block size in bytes the server works best with.
    pub preferred: u32,
    /// Largest request payload in bytes the server accepts.
    pub maximum: u32,
}

/// How the export was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// `NBD_OPT_GO`, with information replies.
    Go,
    /// `NBD_OPT_EXPORT_NAME`, for servers without `NBD_OPT_GO` (no block sizes then).
    ExportName,
}

/// What the handshake learned about the export; the stream is now in the transmission phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportInfo {
    /// The export's size in bytes.
    pub size: u64,
    /// The export's transmission flags.
    pub transmission_flags: TransmissionFlags,
    /// `None` when the server sent no `NBD_INFO_BLOCK_SIZE` (any alignment is fine then).
    pub block_sizes: Option<BlockSizes>,
    /// Which option selected it.
    pub negotiation: Negotiation,
}

/// Why the handshake failed. `stage` says what the client was doing.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// An I/O error on the stream.
    #[error("NBD handshake: {stage}")]
    Io {
        /// What the client was doing.
        stage: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The server closed the connection.
    #[error("NBD handshake: the server closed the connection while {stage}")]
    Closed {
        /// What the client was doing.
        stage: &'static str,
    },
    /// The greeting is not `NBDMAGIC`.
    #[error("not an NBD server: the greeting starts with {found:#018x}, not \"NBDMAGIC\"")]
    NotNbd {
        /// The first 8 bytes, big-endian.
        found: u64,
    },
    /// The server speaks the oldstyle protocol.
    #[error("the NBD server speaks the oldstyle protocol, which has no export names (unsupported)")]
    Oldstyle,
    /// The server's magic after `NBDMAGIC` is not `IHAVEOPT`.
    #[error("NBD handshake: the server's magic after NBDMAGIC is {found:#018x}, not \"IHAVEOPT\"")]
    BadServerMagic {
        /// The 8 bytes received, big-endian.
        found: u64,
    },
    /// An option reply does not start with the reply magic.
    #[error("NBD handshake: option reply magic is {found:#018x}, expected {REPLY_MAGIC:#018x}")]
    BadReplyMagic {
        /// The 8 bytes received, big-endian.
        found: u64,
    },
    /// A reply is for another option than the one pending.
    #[error("NBD handshake: the server replied to option {got} while option {sent} was pending")]
    WrongOption {
        /// The option pending.
        sent: u32,
        /// The option the reply is for.
        got: u32,
    },
    /// A length field is over the protocol's (or this client's) limit.
    #[error("NBD handshake: {what} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// The length the server sent, in bytes.
        len: u32,
        /// The limit, in bytes.
        max: u32,
    },
    /// A reply's payload does not parse.
    #[error("NBD handshake: malformed {what}: {problem}")]
    Malformed {
        /// Which reply or field.
        what: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A reply type the option does not allow.
    #[error("NBD handshake: unexpected reply type {reply:#x} to {option}")]
    UnexpectedReply {
        /// The option pending.
        option: &'static str,
        /// The reply type received.
        reply: u32,
    },
    /// The server keeps sending replies to `NBD_OPT_GO`.
    #[error("NBD handshake: more than {max} replies to NBD_OPT_GO")]
    TooManyReplies {
        /// The replies accepted for one option.
        max: usize,
    },
    /// The server has no export of that name (`NBD_REP_ERR_UNKNOWN`).
    #[error(
        "NBD export {export:?} does not exist on the server{}",
        detail(message)
    )]
    UnknownExport {
        /// The export asked for.
        export: String,
        /// The server's message; may be empty.
        message: String,
    },
    /// The server refused the option with another error reply.
    #[error("the NBD server refused {option} for export {export:?}: {}{}", reply_name(*reply), detail(message))]
    Refused {
        /// The export asked for.
        export: String,
        /// The option refused (`NBD_OPT_GO`, ...).
        option: &'static str,
        /// The error reply type ([`REP_FLAG_ERROR`] set).
        reply: u32,
        /// The server's message; may be empty.
        message: String,
    },
    /// `NBD_OPT_GO` ended without `NBD_INFO_EXPORT`.
    #[error(
        "the NBD server acknowledged export {export:?} without sending its size (NBD_INFO_EXPORT)"
    )]
    NoExportInfo {
        /// The export asked for.
        export: String,
    },
    /// The server closed the connection after `NBD_OPT_EXPORT_NAME`.
    #[error(
        "the NBD server closed the connection after NBD_OPT_EXPORT_NAME {export:?}: the export probably does not exist"
    )]
    ExportNameRejected {
        /// The export asked for.
        export: String,
    },
    /// The export name cannot be sent (too long, a NUL).
    #[error("NBD export name {export:?}: {problem}")]
    InvalidExportName {
        /// The export name asked for.
        export: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" (server says: {message})")
    }
}

/// The protocol's name for an option reply type, for error messages.
pub fn reply_name(reply: u32) -> String {
    let name = match reply {
        REP_ACK => "NBD_REP_ACK",
        REP_INFO => "NBD_REP_INFO",
        REP_ERR_UNSUP => "NBD_REP_ERR_UNSUP",
        REP_ERR_POLICY => "NBD_REP_ERR_POLICY",
        REP_ERR_INVALID => "NBD_REP_ERR_INVALID",
        REP_ERR_PLATFORM => "NBD_REP_ERR_PLATFORM",
        REP_ERR_TLS_REQD => "NBD_REP_ERR_TLS_REQD (the server requires TLS)",
        REP_ERR_UNKNOWN => "NBD_REP_ERR_UNKNOWN",
        REP_ERR_SHUTDOWN => "NBD_REP_ERR_SHUTDOWN (the server is shutting down)",
        REP_ERR_BLOCK_SIZE_REQD => "NBD_REP_ERR_BLOCK_SIZE_REQD",
        REP_ERR_TOO_BIG => "NBD_REP_ERR_TOO_BIG",
        REP_ERR_EXT_HEADER_REQD => "NBD_REP_ERR_EXT_HEADER_REQD",
        other => return format!("reply type {other:#x}"),
    };
    name.to_string()
}

/// Runs the handshake for `export` on a freshly connected stream. On success the stream is
/// in the transmission phase, ready for the kernel (or [`super::transmission`]).
pub fn handshake<S: Read + Write>(
    stream: &mut S,
    export: &str,
) -> Result<ExportInfo, HandshakeError> {
    check_export_name(export)?;
    let server_flags = read_greeting(stream)?;
    let fixed = server_flags & FLAG_FIXED_NEWSTYLE != 0;
    let no_zeroes = server_flags & FLAG_NO_ZEROES != 0;
    // Echo only the flags the server offered: a client flag it does not know makes a
    // conforming server drop the connection.
    let client_flags = u32::from(server_flags & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
    send(
        stream,
        &client_flags.to_be_bytes(),
        "sending the client flags",
    )?;
    // Without fixed newstyle, a server may drop the connection on any option it does not
    // know, so only NBD_OPT_EXPORT_NAME is safe.
    let go = if fixed {
        negotiate_go(stream, export)?
    } else {
        None
    };
    match go {
        Some(info) => Ok(info),
        None => negotiate_export_name(stream, export, no_zeroes),
    }
}

fn check_export_name(export: &str) -> Result<(), HandshakeError> {
    let problem = if export.len() > MAX_STRING as usize {
        "longer than the protocol's 4096 bytes"
    } else if export.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(HandshakeError::InvalidExportName {
        export: export.to_string(),
        problem,
    })
}

/// Reads NBDMAGIC, IHAVEOPT and the handshake flags.
fn read_greeting<S: Read>(stream: &mut S) -> Result<u16, HandshakeError> {
    let stage = "reading the server greeting";
    let magic = read_u64(stream, stage)?;
    if magic != NBDMAGIC {
        return Err(HandshakeError::NotNbd { found: magic });
    }
    match read_u64(stream, stage)? {
        IHAVEOPT => read_u16(stream, "reading the handshake flags"),
        OLDSTYLE_MAGIC => Err(HandshakeError::Oldstyle),
        found => Err(HandshakeError::BadServerMagic { found }),
    }
}

/// Sends NBD_OPT_GO and reads its replies: `Ok(None)` when the server does not support it.
fn negotiate_go<S: Read + Write>(
    stream: &mut S,
    export: &str,
) -> Result<Option<ExportInfo>, HandshakeError> {
    send(stream, &go_request(export), "sending NBD_OPT_GO")?;
    let mut size_and_flags = None;
    let mut block_sizes = None;
    for _ in 0..MAX_REPLIES {
        let header = read_reply_header(stream, OPT_GO)?;
        match header.reply {
            REP_INFO => match read_info(stream, header.len)? {
                Info::Export { size, flags } => size_and_flags = Some((size, flags)),
                Info::BlockSize(sizes) => block_sizes = Some(sizes),
                Info::Other => {}
            },
            REP_ACK => {
                expect_empty(header.len, "NBD_REP_ACK")?;
                let (size, flags) = size_and_flags.ok_or_else(|| HandshakeError::NoExportInfo {
                    export: export.to_string(),
                })?;
                return Ok(Some(ExportInfo {
                    size,
                    transmission_flags: TransmissionFlags(flags),
                    block_sizes,
                    negotiation: Negotiation::Go,
                }));
            }
            REP_ERR_UNSUP => {
                skip(stream, header.len, MAX_STRING, "NBD_REP_ERR_UNSUP message")?;
                return Ok(None);
            }
            reply if reply & REP_FLAG_ERROR != 0 => {
                let message = read_string(stream, header.len, "error message")?;
                abort_quietly(stream);
                return Err(refusal(export, "NBD_OPT_GO", reply, message));
            }
            reply => {
                return Err(HandshakeError::UnexpectedReply {
                    option: "NBD_OPT_GO",
                    reply,
                });
            }
        }
    }
    Err(HandshakeError::TooManyReplies { max: MAX_REPLIES })
}

/// `NBD_OPT_GO`'s request: the export name and the information the client asks for.
fn go_request(export: &str) -> Vec<u8> {
    let requests = [INFO_EXPORT, INFO_BLOCK_SIZE];
    let mut data = Vec::with_capacity(4 + export.len() + 2 + 2 * requests.len());
    // check_export_name bounded the name to 4096 bytes and there are two requests, so these
    // saturations never happen.
    let export_len = u32::try_from(export.len()).unwrap_or(u32::MAX);
    data.extend_from_slice(&export_len.to_be_bytes());
    data.extend_from_slice(export.as_bytes());
    let request_count = u16::try_from(requests.len()).unwrap_or(u16::MAX);
    data.extend_from_slice(&request_count.to_be_bytes());
    for request in requests {
        data.extend_from_slice(&request.to_be_bytes());
    }
    option(OPT_GO, &data)
}

/// One client option: IHAVEOPT, the option, the data's length and the data.
fn option(option: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + data.len());
    bytes.extend_from_slice(&IHAVEOPT.to_be_bytes());
    bytes.extend_from_slice(&option.to_be_bytes());
    // Option data is an export name and a few requests, far below 4 GiB: never saturates.
    let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&data_len.to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn refusal(export: &str, option: &'static str, reply: u32, message: String) -> HandshakeError {
    if reply == REP_ERR_UNKNOWN {
        HandshakeError::UnknownExport {
            export: export.to_string(),
            message,
        }
    } else {
        HandshakeError::Refused {
            export: export.to_string(),
            option,
            reply,
            message,
        }
    }
}

/// Tells the server the client is leaving (the protocol asks for it); the connection is
/// dropped right after, so a failure here changes nothing.
fn abort_quietly<S: Write>(stream: &mut S) {
    let _ = stream.write_all(&option(OPT_ABORT, &[]));
    let _ = stream.flush();
}

struct ReplyHeader {
    reply: u32,
    len: u32,
}

fn read_reply_header<S: Read>(stream: &mut S, sent: u32) -> Result<ReplyHeader, HandshakeError> {
    let stage = "reading an option reply";
    let magic = read_u64(stream, stage)?;
    if magic != REPLY_MAGIC {
        return Err(HandshakeError::BadReplyMagic { found: magic });
    }
    let got = read_u32(stream, stage)?;
    if got != sent {
        return Err(HandshakeError::WrongOption { sent, got });
    }
    let reply = read_u32(stream, stage)?;
    let len = read_u32(stream, stage)?;
    Ok(ReplyHeader { reply, len })
}

enum Info {
    Export {
        size: u64,
        flags: u16,
    },
    BlockSize(BlockSizes),
    /// Names, descriptions and types this client does not know: ignored, as the protocol asks.
    Other,
}

fn read_info<S: Read>(stream: &mut S, len: u32) -> Result<Info, HandshakeError> {
    let data = read_bounded(stream, len, MAX_INFO_LEN, "NBD_REP_INFO")?;
    let mut cursor = Fields::new(&data, "NBD_REP_INFO");
    match cursor.u16()? {
        INFO_EXPORT => {
            let size = cursor.u64()?;
            let flags = cursor.u16()?;
            cursor.end()?;
            Ok(Info::Export { size, flags })
        }
        INFO_BLOCK_SIZE => {
            let sizes = BlockSizes {
                minimum: cursor.u32()?,
                preferred: cursor.u32()?,
                maximum: cursor.u32()?,
            };
            cursor.end()?;
            check_block_sizes(sizes)?;
            Ok(Info::BlockSize(sizes))
        }
        _ => Ok(Info::Other),
    }
}

/// The protocol's rules: powers of two, minimum at most 64 KiB, preferred and maximum not
/// below the minimum. A server breaking them would have the kernel misconfigured.
fn check_block_sizes(s: BlockSizes) -> Result<(), HandshakeError> {
    let problem = if !s.minimum.is_power_of_two() || s.minimum > MAX_MIN_BLOCK_SIZE {
        "minimum block size is not a power of two from 1 to 65536"
    } else if !s.preferred.is_power_of_two() || s.preferred < s.minimum {
        "preferred block size is not a power of two at least the minimum"
    } else if s.maximum < s.minimum {
        "maximum block size is below the minimum"
    } else {
        return Ok(());
    };
    Err(HandshakeError::Malformed {
        what: "NBD_INFO_BLOCK_SIZE",
        problem: format!(
            "{problem} (minimum {}, preferred {}, maximum {})",
            s.minimum, s.preferred, s.maximum
        ),
    })
}

/// Sends NBD_OPT_EXPORT_NAME and reads the export's size and flags.
fn negotiate_export_name<S: Read + Write>(
    stream: &mut S,
    export: &str,
    no_zeroes: bool,
) -> Result<ExportInfo, HandshakeError> {
    send(
        stream,
        &option(OPT_EXPORT_NAME, export.as_bytes()),
        "sending NBD_OPT_EXPORT_NAME",
    )?;
    // This option has no error reply: a server without the export just hangs up.
    let size = match read_u64(stream, "reading the export size after NBD_OPT_EXPORT_NAME") {
        Err(HandshakeError::Closed { .. }) => {
            return Err(HandshakeError::ExportNameRejected {
                export: export.to_string(),
            });
        }
        other => other?,
    };
    let flags = read_u16(stream, "reading the transmission flags")?;
    if !no_zeroes {
        let mut padding = [0u8; EXPORT_NAME_PADDING];
        read_exact(stream, &mut padding, "reading the zero padding")?;
    }
    Ok(ExportInfo {
        size,
        transmission_flags: TransmissionFlags(flags),
        block_sizes: None,
        negotiation: Negotiation::ExportName,
    })
}

fn expect_empty(len: u32, what: &'static str) -> Result<(), HandshakeError> {
    if len == 0 {
        Ok(())
    } else {
        Err(HandshakeError::Malformed {
            what,
            problem: format!("{len} bytes of data where none are allowed"),
        })
    }
}

fn send<S: Write>(stream: &mut S, bytes: &[u8], stage: &'static str) -> Result<(), HandshakeError> {
    stream
        .write_all(bytes)
        .and_then(|()| stream.flush())
        .map_err(|e| io_error(e, stage))
}

fn io_error(source: io::Error, stage: &'static str) -> HandshakeError {
    match source.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset => HandshakeError::Closed { stage },
        _ => HandshakeError::Io { stage, source },
    }
}

fn read_exact<S: Read>(
    stream: &mut S,
    buf: &mut [u8],
    stage: &'static str,
) -> Result<(), HandshakeError> {
    stream.read_exact(buf).map_err(|e| io_error(e, stage))
}

fn read_u16<S: Read>(stream: &mut S, stage: &'static str) -> Result<u16, HandshakeError> {
    let mut buf = [0; 2];
    read_exact(stream, &mut buf, stage)?;
    Ok(u16::from_be_bytes(buf))
}

fn read_u32<S: Read>(stream: &mut S, stage: &'static str) -> Result<u32, HandshakeError> {
    let mut buf = [0; 4];
    read_exact(stream, &mut buf, stage)?;
    Ok(u32::from_be_bytes(buf))
}

fn read_u64<S: Read>(stream: &mut S, stage: &'static str) -> Result<u64, HandshakeError> {
    let mut buf = [0; 8];
    read_exact(stream, &mut buf, stage)?;
    Ok(u64::from_be_bytes(buf))
}

/// Reads `len` bytes after checking `len <= max`, so a hostile length allocates nothing.
fn read_bounded<S: Read>(
    stream: &mut S,
    len: u32,
    max: u32,
    what: &'static str,
) -> Result<Vec<u8>, HandshakeError> {
    if len > max {
        return Err(HandshakeError::TooLong { what, len, max });
    }
    let mut data = vec![0; len as usize];
    read_exact(stream, &mut data, "reading an option reply's data")?;
    Ok(data)
}

/// A server string (an error message), made safe to log: invalid UTF-8 and control
/// characters (a forged log line, terminal escapes) are replaced.
fn read_string<S: Read>(
    stream: &mut S,
    len: u32,
    what: &'static str,
) -> Result<String, HandshakeError> {
    let data = read_bounded(stream, len, MAX_STRING, what)?;
    Ok(String::from_utf8_lossy(&data)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect())
}

fn skip<S: Read>(
    stream: &mut S,
    len: u32,
    max: u32,
    what: &'static str,
) -> Result<(), HandshakeError> {
    read_bounded(stream, len, max, what).map(drop)
}

/// Reads big-endian fields from a reply's data, failing on a short or long payload.
struct Fields<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Fields<'a> {
        Fields { data, what }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], HandshakeError> {
        match self.data.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.data = rest;
                Ok(*head)
            }
            None => Err(HandshakeError::Malformed {
                what: self.what,
                problem: "the payload is too short".into(),
            }),
        }
    }

    fn u16(&mut self) -> Result<u16, HandshakeError> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, HandshakeError> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, HandshakeError> {
        self.take().map(u64::from_be_bytes)
    }

    fn end(&self) -> Result<(), HandshakeError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(HandshakeError::Malformed {
                what: self.what,
                problem: format!("{} unexpected trailing bytes", self.data.len()),
            })
        }
    }
}

impl fmt::Display for TransmissionFlags {
    /// The set flags by name, e.g. `HAS_FLAGS|READ_ONLY|SEND_FLUSH`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 12] = [
            "HAS_FLAGS",
            "READ_ONLY",
            "SEND_FLUSH",
            "SEND_FUA",
            "ROTATIONAL",
            "SEND_TRIM",
            "SEND_WRITE_ZEROES",
            "SEND_DF",
            "CAN_MULTI_CONN",
            "SEND_RESIZE",
            "SEND_CACHE",
            "SEND_FAST_ZERO",
        ];
        let mut first = true;
        for bit in 0..16 {
            if self.0 & (1 << bit) == 0 {
                continue;
            }
            if !first {
                f.write_str("|")?;
            }
            first = false;
            match NAMES.get(bit) {
                Some(name) => f.write_str(name)?,
                None => write!(f, "bit{bit}")?,
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
