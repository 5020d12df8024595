//! Parsers for the single values that the command-line forms are made of: IPv4 addresses,
//! netmasks, MACs, interface and host names, VLAN ids, MTUs, lists and booleans.
//!
//! Each returns `Err(problem)` with a sentence that says what was expected, so that the caller
//! only has to add the key. None of them indexes or slices strings by position: every value
//! comes from a command line that may be garbled, and a panic in PID 1 is not an option.

use std::net::Ipv4Addr;

pub use bootkit_common::mac::MacAddr;

/// Highest VLAN id: 0 means "priority tag only" and 4095 is reserved (IEEE 802.1Q).
pub const VLAN_ID_MAX: u16 = 4094;
/// Smallest MTU an IPv4 host must accept (RFC 791).
pub const MTU_MIN: u16 = 68;
/// The kernel refuses longer host names (HOST_NAME_MAX).
const HOSTNAME_MAX: usize = 64;
/// Longest DNS name (RFC 1035), for search domains and NTP server names.
const DOMAIN_NAME_MAX: usize = 253;

pub fn ipv4(what: &str, text: &str) -> Result<Ipv4Addr, String> {
    text.parse::<Ipv4Addr>()
        .map_err(|_| format!("{what} {text:?} is not an IPv4 address: expected e.g. 192.168.1.10"))
}

/// An optional IPv4 address field: empty means absent.
pub fn optional_ipv4(what: &str, text: &str) -> Result<Option<Ipv4Addr>, String> {
    if text.is_empty() {
        Ok(None)
    } else {
        ipv4(what, text).map(Some)
    }
}

/// A netmask, dotted (`255.255.255.0`) or as a prefix length (`24`), as a prefix length.
pub fn prefix_len(what: &str, text: &str) -> Result<u8, String> {
    let expected = "expected a dotted netmask like 255.255.255.0 or a prefix length 0-32";
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u8>() {
            Ok(len) if len <= 32 => Ok(len),
            _ => Err(format!("{what} {text:?} is too long a prefix: {expected}")),
        };
    }
    let mask = text
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("{what} {text:?} is not a netmask: {expected}"))?;
    let bits = u32::from(mask);
    // A netmask is a run of ones followed by a run of zeros; 255.0.255.0 is not one.
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(format!("{what} {text:?} has holes in it: {expected}"));
    }
    // leading_ones is at most 32, so the saturation never happens.
    Ok(u8::try_from(bits.leading_ones()).unwrap_or(u8::MAX))
}

/// An address with its prefix written `10.0.0.5/24` (or `/255.255.255.0`).
pub fn address_with_prefix(what: &str, text: &str) -> Result<(Ipv4Addr, u8), String> {
    match text.split_once('/') {
        Some((address, prefix)) => Ok((ipv4(what, address)?, prefix_len(what, prefix)?)),
        None => Err(format!(
            "{what} {text:?} has no prefix: expected <address>/<prefix>, e.g. 10.0.0.0/24"
        )),
    }
}

/// A MAC address (the one rule is [`MacAddr`]'s), the problem as a sentence.
pub fn mac(text: &str) -> Result<MacAddr, String> {
    text.parse()
        .map_err(|error: bootkit_common::mac::MacAddrError| error.to_string())
}

pub use crate::ifname::interface_name;

/// An optional interface field: empty means "any interface".
pub fn optional_interface_name(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        Ok(None)
    } else {
        interface_name(text).map(Some)
    }
}

/// Dot-separated labels of letters, digits, `-` and `_`, none empty, each at most 63 long.
/// Underscores are not RFC 1123 but real sites use them and the kernel accepts them.
fn is_dns_name(text: &str, max_len: usize) -> bool {
    !text.is_empty()
        && text.len() <= max_len
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A host name, short (`node1`) or fully qualified (`node1.example.com`).
pub fn hostname(text: &str) -> Result<String, String> {
    if is_dns_name(text, HOSTNAME_MAX) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "hostname {text:?} is not valid: expected at most {HOSTNAME_MAX} letters, digits, \
             '-' and '.', e.g. node1 or node1.example.com"
        ))
    }
}

pub fn optional_hostname(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        Ok(None)
    } else {
        hostname(text).map(Some)
    }
}

/// A DNS domain, e.g. a search domain.
pub fn domain_name(text: &str) -> Result<String, String> {
    if is_dns_name(text, DOMAIN_NAME_MAX) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "domain {text:?} is not valid: expected a DNS name like example.com"
        ))
    }
}

/// An NTP server: an IPv4 address or a host name, kept as text because names are resolved
/// only once DNS is up.
pub fn ntp_server(text: &str) -> Result<String, String> {
    if text.parse::<Ipv4Addr>().is_ok() || is_dns_name(text, DOMAIN_NAME_MAX) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "NTP server {text:?} is not valid: expected an IPv4 address or a host name, \
             e.g. 10.0.0.4 or pool.ntp.org"
        ))
    }
}

/// A VLAN id, 1 to 4094.
pub fn vlan_id(text: &str) -> Result<u16, String> {
    let expected = format!("expected a VLAN id from 1 to {VLAN_ID_MAX}");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("VLAN id {text:?} is not a number: {expected}"));
    }
    match text.parse::<u16>() {
        Ok(id) if (1..=VLAN_ID_MAX).contains(&id) => Ok(id),
        _ => Err(format!("VLAN id {text:?} is out of range: {expected}")),
    }
}

/// An MTU in bytes, 68 to 65535.
pub fn mtu(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(mtu) if mtu >= MTU_MIN && text.bytes().all(|b| b.is_ascii_digit()) => Ok(mtu),
        _ => Err(format!(
            "MTU {text:?} is not valid: expected a number of bytes from {MTU_MIN} to 65535, e.g. 1500"
        )),
    }
}

pub fn optional_mtu(text: &str) -> Result<Option<u16>, String> {
    if text.is_empty() {
        Ok(None)
    } else {
        mtu(text).map(Some)
    }
}

/// A comma-separated list, each item parsed by `item`. Empty items (`a,,b`, a trailing comma)
/// are skipped: they carry no meaning and are an easy slip when lists are templated.
pub fn comma_list<T>(
    text: &str,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(item)
        .collect()
}

/// A boolean flag as people write them on command lines.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a boolean: expected 1 or 0 (true/false, yes/no)"
        )),
    }
}
