//! TFTP packets (RFC 1350 and the OACK of RFC 2347). Hand-written: the few TFTP crates on
//! crates.io are unmaintained or bring their own server loop; the format is five opcodes.

use std::fmt;

pub const RRQ: u16 = 1;
pub const WRQ: u16 = 2;
pub const DATA: u16 = 3;
pub const ACK: u16 = 4;
pub const ERROR: u16 = 5;
pub const OACK: u16 = 6;

/// RFC 1350 error codes the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    IllegalOperation = 4,
}

/// A read or write request: file name, mode and the options in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub write: bool,
    pub filename: String,
    pub mode: String,
    pub options: Vec<(String, String)>,
}

/// What a client sends on a transfer's own socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack(u16),
    Error { code: u16, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedPacket(pub &'static str);

impl fmt::Display for MalformedPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn opcode(packet: &[u8]) -> Result<u16, MalformedPacket> {
    match packet {
        [high, low, ..] => Ok(u16::from_be_bytes([*high, *low])),
        _ => Err(MalformedPacket("shorter than an opcode")),
    }
}

/// Parses an RRQ or WRQ. Option names are lower-cased (RFC 2347: case-insensitive).
pub fn parse_request(packet: &[u8]) -> Result<Request, MalformedPacket> {
    let write = match opcode(packet)? {
        RRQ => false,
        WRQ => true,
        _ => return Err(MalformedPacket("not a read or write request")),
    };
    let body = &packet[2..];
    let body = body
        .strip_suffix(&[0])
        .ok_or(MalformedPacket("request does not end with NUL"))?;
    let mut fields = body
        .split(|byte| *byte == 0)
        .map(|field| String::from_utf8_lossy(field).into_owned());
    let filename = fields.next().filter(|name| !name.is_empty());
    let filename = filename.ok_or(MalformedPacket("request has no file name"))?;
    let mode = fields
        .next()
        .ok_or(MalformedPacket("request has no mode"))?
        .to_ascii_lowercase();
    let mut options = Vec::new();
    while let Some(name) = fields.next() {
        let value = fields
            .next()
            .ok_or(MalformedPacket("option without a value"))?;
        options.push((name.to_ascii_lowercase(), value));
    }
    Ok(Request {
        write,
        filename,
        mode,
        options,
    })
}

/// A client's reply during a transfer: an ACK (exactly four bytes) or an ERROR with its code
/// and message (lossy UTF-8, up to the first NUL).
pub fn parse_reply(packet: &[u8]) -> Result<Reply, MalformedPacket> {
    match opcode(packet)? {
        ACK => match packet {
            [_, _, high, low] => Ok(Reply::Ack(u16::from_be_bytes([*high, *low]))),
            _ => Err(MalformedPacket("ACK is not four bytes")),
        },
        ERROR if packet.len() >= 4 => {
            let code = u16::from_be_bytes([packet[2], packet[3]]);
            let text = &packet[4..];
            let text = text.split(|byte| *byte == 0).next().unwrap_or_default();
            Ok(Reply::Error {
                code,
                message: String::from_utf8_lossy(text).into_owned(),
            })
        }
        _ => Err(MalformedPacket("neither ACK nor ERROR")),
    }
}

/// A DATA packet for `block` carrying `payload`.
pub fn data(block: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(4 + payload.len());
    packet.extend_from_slice(&DATA.to_be_bytes());
    packet.extend_from_slice(&block.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// An ERROR packet with `code` and `message` (NUL-terminated).
pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut packet = Vec::with_capacity(5 + message.len());
    packet.extend_from_slice(&ERROR.to_be_bytes());
    packet.extend_from_slice(&(code as u16).to_be_bytes());
    packet.extend_from_slice(message.as_bytes());
    packet.push(0);
    packet
}

/// An OACK packet acknowledging `options` (name and value, each NUL-terminated), in order.
pub fn oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut packet = OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        packet.extend_from_slice(name.as_bytes());
        packet.push(0);
        packet.extend_from_slice(value.as_bytes());
        packet.push(0);
    }
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_with_options_parses_case_insensitively() {
        let packet = b"\x00\x01ipxe.efi\0OCTET\0BLKSIZE\x001428\0tsize\x000\0";
        let request = parse_request(packet).unwrap();
        assert!(!request.write);
        assert_eq!(request.filename, "ipxe.efi");
        assert_eq!(request.mode, "octet");
        assert_eq!(
            request.options,
            vec![
                ("blksize".to_string(), "1428".to_string()),
                ("tsize".to_string(), "0".to_string())
            ]
        );
    }

    #[test]
    fn truncated_requests_are_malformed() {
        assert!(parse_request(b"\x00\x01file").is_err());
        assert!(parse_request(b"\x00\x01\0octet\0").is_err());
        assert!(parse_request(b"\x00\x01f\0octet\0blksize\0").is_err());
        assert!(parse_request(b"\x00").is_err());
        assert!(parse_request(b"\x00\x03f\0octet\0").is_err());
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply(b"\x00\x04\x01\x02"), Ok(Reply::Ack(0x0102)));
        assert_eq!(
            parse_reply(b"\x00\x05\x00\x08tsize only\0"),
            Ok(Reply::Error {
                code: 8,
                message: "tsize only".into()
            })
        );
        assert!(parse_reply(b"\x00\x04\x01").is_err());
    }
}
