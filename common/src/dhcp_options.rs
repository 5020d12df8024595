//! A DHCPv4 message's options read straight from its bytes, before dhcproto decodes it.
//!
//! Both DHCP sides (the init's client in `bootkit-net`, the provisioner's server in
//! `bootkit-dhcp`) decode with dhcproto 0.15, which must not see raw network input: its option
//! decoders `debug_assert!` on lengths (options 80, 81, 94, 151-155), so one malformed option
//! panics a debug build (found by the fuzz targets in `fuzz/`); `Message::chaddr()` panics on
//! an hlen above 16; and it stops reading options at the first one it cannot decode. So each
//! side splits the message here ([`split`]), keeps the options it can use, and hands dhcproto
//! only the rebuilt copy ([`RawMessage::rebuild`]).

use std::collections::BTreeMap;

/// Where the options start: the fixed BOOTP header (236 bytes) and the magic cookie.
pub const OPTIONS_START: usize = 240;

/// The DHCP magic cookie (RFC 2131 §3), the last 4 bytes before the options.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// The largest hardware address length the 16-byte `chaddr` field holds.
pub const MAX_HLEN: u8 = 16;

/// Option 0: padding between options.
const PAD: u8 = 0;
/// Option 255: the end of the options.
const END: u8 = 255;

/// A DHCP message split into its fixed header and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// The first [`OPTIONS_START`] bytes: the BOOTP header and the magic cookie.
    pub header: &'a [u8],
    /// Each option's value by code, the values of repeated codes concatenated in order
    /// (RFC 3396 long options).
    pub options: BTreeMap<u8, Vec<u8>>,
}

/// Splits a DHCP message into header and options, or `None` if it is not well formed: shorter
/// than the header, an hlen above [`MAX_HLEN`], no magic cookie, or an option that runs past
/// the end of the datagram (a truncated or corrupt datagram).
pub fn split(bytes: &[u8]) -> Option<RawMessage<'_>> {
    let header = bytes.get(..OPTIONS_START)?;
    if header[2] > MAX_HLEN || header[236..] != MAGIC_COOKIE {
        return None;
    }
    let mut options: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut rest = &bytes[OPTIONS_START..];
    loop {
        match rest {
            [] | [END, ..] => break,
            [PAD, tail @ ..] => rest = tail,
            [code, len, tail @ ..] => {
                let len = usize::from(*len);
                let value = tail.get(..len)?;
                options.entry(*code).or_default().extend_from_slice(value);
                rest = &tail[len..];
            }
            [_] => return None,
        }
    }
    Some(RawMessage { header, options })
}

impl RawMessage<'_> {
    /// The message again with only the options `keep` accepts (by code and whole value),
    /// long values as consecutive chunks of up to 255 bytes, which dhcproto concatenates.
    pub fn rebuild(&self, keep: impl Fn(u8, &[u8]) -> bool) -> Vec<u8> {
        let mut clean = self.header.to_vec();
        for (code, value) in &self.options {
            if !keep(*code, value) {
                continue;
            }
            for chunk in value.chunks(usize::from(u8::MAX)) {
                // chunks(255) keeps every length within a byte, so the conversion never fails.
                let Ok(length) = u8::try_from(chunk.len()) else {
                    continue;
                };
                clean.push(*code);
                clean.push(length);
                clean.extend_from_slice(chunk);
            }
        }
        clean.push(END);
        clean
    }
}

/// Whether dhcproto 0.15 can decode this option's value without tripping one of its length
/// assertions: false for a rapid commit (80) with a value, a client FQDN (81) under 3 bytes, a
/// client network interface (94) not of 3 bytes, a bulk leasequery status (151) without its
/// code, or a bulk leasequery time (152-155) not of 4 bytes. Every other option is decodable
/// or rejected by dhcproto with an error.
pub fn decodable(code: u8, value: &[u8]) -> bool {
    match code {
        80 => value.is_empty(),
        81 => value.len() >= 3,
        94 => value.len() == 3,
        151 => !value.is_empty(),
        152..=155 => value.len() == 4,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(options: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; OPTIONS_START];
        bytes[0] = 1;
        bytes[1] = 1;
        bytes[2] = 6;
        bytes[236..].copy_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(options);
        bytes
    }

    #[test]
    fn options_are_read_with_long_values_concatenated() {
        let bytes = message(&[53, 1, 1, 0, 12, 2, b'a', b'b', 12, 1, b'c', 255, 99, 99]);
        let raw = split(&bytes).expect("well formed");
        assert_eq!(raw.header, &bytes[..OPTIONS_START]);
        assert_eq!(raw.options.get(&53), Some(&vec![1]));
        assert_eq!(raw.options.get(&12), Some(&b"abc".to_vec()));
        // Nothing after the end option is read.
        assert_eq!(raw.options.get(&99), None);
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert_eq!(split(&[0u8; 100]), None, "shorter than the header");
        let mut no_cookie = message(&[255]);
        no_cookie[236] = 0;
        assert_eq!(split(&no_cookie), None, "no magic cookie");
        let mut long_hlen = message(&[255]);
        long_hlen[2] = 17;
        assert_eq!(split(&long_hlen), None, "hlen above 16");
        assert_eq!(split(&message(&[12, 5, b'a'])), None, "truncated option");
        assert_eq!(split(&message(&[12])), None, "option code without a length");
    }

    #[test]
    fn rebuild_keeps_what_is_asked_and_splits_long_values() {
        let mut options = vec![53, 1, 3];
        for _ in 0..2 {
            options.push(43);
            options.push(200);
            options.extend_from_slice(&[7; 200]);
        }
        options.push(255);
        let bytes = message(&options);
        let raw = split(&bytes).expect("well formed");
        let clean = raw.rebuild(|code, _| code != 53);
        let again = split(&clean).expect("the rebuilt message is well formed");
        assert_eq!(again.options.len(), 1);
        assert_eq!(again.options.get(&43), Some(&vec![7; 400]));
        // 400 bytes go back as a 255-byte chunk and a 145-byte one.
        assert_eq!(clean[OPTIONS_START + 1], 255);
        assert_eq!(clean[OPTIONS_START + 2 + 255 + 1], 145);
    }

    #[test]
    fn lengths_dhcproto_asserts_on_are_not_decodable() {
        assert!(!decodable(80, &[1]));
        assert!(decodable(80, &[]));
        assert!(!decodable(81, &[0, 0]));
        assert!(!decodable(94, &[1, 3]));
        assert!(decodable(94, &[1, 3, 16]));
        assert!(!decodable(151, &[]));
        assert!(!decodable(153, &[0; 5]));
        assert!(decodable(152, &[0; 4]));
        assert!(decodable(12, &[]));
    }
}
