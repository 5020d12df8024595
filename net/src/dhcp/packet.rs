//! Building the client's messages and reading the server's, with dhcproto.

use std::net::Ipv4Addr;
use std::time::Duration;

use bootkit_common::dhcp_options;
use dhcproto::v4::{
    Decodable, Decoder, DhcpOption, Flags, Message, MessageType, Opcode, OptionCode,
};

use crate::lease::Lease;

/// What the client asks every server for. Option 42 (NTP) feeds the SNTP client, 26 (MTU) and
/// 119 (search) are applied by init; 51/58/59 make the server tell us its timers instead of
/// leaving us to assume defaults.
pub(crate) const PARAMETER_REQUEST_LIST: [OptionCode; 12] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::Hostname,
    OptionCode::DomainName,
    OptionCode::InterfaceMtu,
    OptionCode::BroadcastAddr,
    OptionCode::NtpServers,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
    OptionCode::DomainSearch,
];

/// The largest DHCP message we accept (RFC 2132 §9.10): an Ethernet frame's IP datagram.
/// Without it servers must keep replies within 576 bytes and may drop options.
const MAX_MESSAGE_SIZE: u16 = 1500;

/// What a client message carries besides its type.
pub(crate) struct Request<'a> {
    pub mac: [u8; 6],
    pub xid: u32,
    pub secs: u16,
    pub hostname: Option<&'a str>,
    /// Our address while RENEWING/REBINDING; unspecified otherwise.
    pub ciaddr: Ipv4Addr,
    /// SELECTING → REQUESTING only: the offered address and the chosen server.
    pub requested: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// Client identifier (option 61): hardware type 1 (Ethernet) followed by the MAC, as RFC 2132
/// §9.14 suggests. Some sites' servers (EMT's) key reservations on it and gave no lease to
/// clients without it.
pub(crate) fn client_id(mac: [u8; 6]) -> Vec<u8> {
    let mut id = Vec::with_capacity(7);
    id.push(1);
    id.extend_from_slice(&mac);
    id
}

/// An empty BOOTREQUEST for an Ethernet client. Decoded from bytes rather than made with
/// dhcproto's constructors: those all start from `Message::default()`, which draws a random
/// xid from the OS random pool, and at early boot on a machine without a hardware RNG that
/// blocks until the kernel has gathered entropy (about a second under QEMU without RDRAND).
fn blank_request() -> Message {
    let mut header = [0u8; 240];
    header[0] = 1; // op: BOOTREQUEST
    header[1] = 1; // htype: Ethernet
    header[2] = 6; // hlen
    header[236..240].copy_from_slice(&[99, 130, 83, 99]); // the DHCP magic cookie
    // A fixed, valid header always decodes; the fallback only keeps this path panic-free.
    Message::decode(&mut Decoder::new(&header)).unwrap_or_default()
}

pub(crate) fn build(kind: MessageType, req: &Request<'_>) -> Message {
    let mut msg = blank_request();
    msg.set_xid(req.xid)
        .set_ciaddr(req.ciaddr)
        .set_chaddr(&req.mac)
        .set_secs(req.secs);
    // Without an address the kernel drops unicast replies to the offered address, so ask
    // for broadcast replies until we own one (RFC 2131 §4.1). With ciaddr set the server
    // unicasts to it, which is what it should do while we renew.
    if req.ciaddr.is_unspecified() {
        msg.set_flags(Flags::default().set_broadcast());
    }
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ClientIdentifier(client_id(req.mac)));
    opts.insert(DhcpOption::ParameterRequestList(
        PARAMETER_REQUEST_LIST.to_vec(),
    ));
    opts.insert(DhcpOption::MaxMessageSize(MAX_MESSAGE_SIZE));
    if let Some(name) = req.hostname {
        opts.insert(DhcpOption::Hostname(name.to_string()));
    }
    if let Some((address, server)) = req.requested {
        opts.insert(DhcpOption::RequestedIpAddress(address));
        opts.insert(DhcpOption::ServerIdentifier(server));
    }
    msg
}

/// Is this a server reply to our exchange: a BOOTREPLY with our xid and our MAC?
pub(crate) fn is_reply_to(msg: &Message, xid: u32, mac: [u8; 6]) -> bool {
    msg.opcode() == Opcode::BootReply
        && msg.xid() == xid
        // Message::chaddr() slices by the wire's hlen and panics above 16.
        && msg.hlen() <= 16
        && msg.chaddr().get(..6) == Some(&mac[..])
}

/// Decodes a datagram from a server, or `None` if it is not a well-formed DHCP message.
///
/// dhcproto is not used on raw input directly (see `bootkit_common::dhcp_options`: its
/// option decoders panic on malformed lengths in debug builds, `Message::chaddr()` panics on
/// an hlen above 16, and it stops reading options at the first one it cannot decode, so a bad
/// hostname would hide a good lease time behind it). So the options are first split out
/// there, each option the client uses is checked for its expected length or encoding, the
/// rest are dropped, and only that clean copy is handed to dhcproto.
pub(crate) fn decode_reply(bytes: &[u8]) -> Option<Message> {
    let raw = dhcp_options::split(bytes)?;
    let clean =
        raw.rebuild(|code, value| READ_OPTIONS.contains(&code) && valid_option(code, value));
    Message::decode(&mut Decoder::new(&clean)).ok()
}

/// The options [`decode_reply`] keeps: those the machine or the lease use.
const READ_OPTIONS: [u8; 13] = [1, 3, 6, 12, 15, 26, 42, 51, 53, 54, 58, 59, 119];

/// Whether an option's (concatenated) value has the shape RFC 2132 gives it.
fn valid_option(code: u8, value: &[u8]) -> bool {
    match code {
        1 | 54 | 51 | 58 | 59 => value.len() == 4,
        3 | 6 | 42 => !value.is_empty() && value.chunks_exact(4).remainder().is_empty(),
        12 | 15 => std::str::from_utf8(value).is_ok(),
        26 => value.len() == 2,
        53 => value.len() == 1,
        // Domain search: dhcproto reads names until the first invalid one.
        119 => !value.is_empty(),
        _ => false,
    }
}

pub(crate) fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

/// An address a server may hand out: not 0.0.0.0, broadcast, multicast or loopback.
pub(crate) fn usable_address(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

/// Why an ACK cannot become a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AckError {
    #[error("unusable address {0}")]
    Address(Ipv4Addr),
    /// RFC 2131 Table 3: an ACK to a REQUEST MUST carry the lease time; without it we would
    /// not know when to renew.
    #[error("no lease time (option 51)")]
    NoLeaseTime,
}

/// 0xffffffff seconds means "infinite" (RFC 2131 §3.3).
const INFINITE: u32 = u32::MAX;

/// Turns an ACK into the configuration it grants. `fallback_server` is used when the ACK has
/// no server identifier (tolerated when renewing: we already know the server).
pub(crate) fn lease_from_ack(
    interface: &str,
    msg: &Message,
    fallback_server: Option<Ipv4Addr>,
) -> Result<Lease, AckError> {
    let address = msg.yiaddr();
    if !usable_address(address) {
        return Err(AckError::Address(address));
    }
    let opts = msg.opts();
    let mut lease = Lease::new(interface, address, classful_prefix(address));
    lease.server = server_id(msg).or(fallback_server);
    let (mut secs, mut t1, mut t2) = (None, None, None);
    for (_, opt) in opts.iter() {
        match opt {
            DhcpOption::SubnetMask(mask) => lease.prefix_len = prefix_from_mask(*mask),
            DhcpOption::Router(ips) => lease.routers = usable(ips),
            DhcpOption::DomainNameServer(ips) => lease.dns = usable(ips),
            DhcpOption::NtpServers(ips) => lease.ntp = usable(ips),
            DhcpOption::DomainName(name) => lease.domain = clean_name(name),
            DhcpOption::Hostname(name) => lease.hostname = clean_name(name),
            DhcpOption::DomainSearch(names) => {
                lease.search = names
                    .iter()
                    .filter_map(|n| clean_name(&n.to_utf8()))
                    .collect();
            }
            // RFC 2132 §5.1: the minimum legal MTU is 68; a smaller value is a server bug
            // that would cut the interface off, so ignore it.
            DhcpOption::InterfaceMtu(mtu) if *mtu >= 68 => lease.mtu = Some(*mtu),
            DhcpOption::AddressLeaseTime(s) => secs = Some(*s),
            DhcpOption::Renewal(s) => t1 = Some(*s),
            DhcpOption::Rebinding(s) => t2 = Some(*s),
            _ => {}
        }
    }
    match secs {
        None => return Err(AckError::NoLeaseTime),
        // Infinite: never renew; the lease stays until a NAK or a reboot.
        Some(INFINITE) => {}
        Some(secs) => {
            let (lease_time, renew, rebind) = timers(secs, t1, t2);
            lease.lease_time = Some(lease_time);
            lease.renew_after = Some(renew);
            lease.rebind_after = Some(rebind);
        }
    }
    Ok(lease)
}

/// Lease, T1 and T2 durations. T1 and T2 default to 0.5 and 0.875 of the lease (RFC 2131
/// §4.4.5); values from the server that break T1 ≤ T2 < lease are replaced by the defaults
/// rather than trusted, so the renewal schedule is always well ordered.
fn timers(secs: u32, t1: Option<u32>, t2: Option<u32>) -> (Duration, Duration, Duration) {
    let lease = Duration::from_secs(u64::from(secs));
    let t2 = match t2 {
        Some(t2) if t2 < secs => Duration::from_secs(u64::from(t2)),
        _ => lease.mul_f64(0.875),
    };
    let t1 = match t1 {
        Some(t1) if Duration::from_secs(u64::from(t1)) <= t2 => Duration::from_secs(u64::from(t1)),
        _ => lease.mul_f64(0.5).min(t2),
    };
    (lease, t1, t2)
}

fn usable(ips: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    ips.iter()
        .copied()
        .filter(|ip| usable_address(*ip))
        .collect()
}

/// Trims what servers are known to add (a trailing NUL from C string handling, a trailing
/// root dot from FQDN encoding) and drops empty names.
fn clean_name(name: &str) -> Option<String> {
    let name = name.trim_end_matches('\0').trim().trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_string())
}

/// Prefix length of a netmask: its leading one bits (a non-contiguous mask, which no real
/// network uses, is read up to its first zero).
pub(crate) fn prefix_from_mask(mask: Ipv4Addr) -> u8 {
    // leading_ones of a u32 is at most 32, so the saturation never happens.
    u8::try_from(u32::from(mask).leading_ones()).unwrap_or(u8::MAX)
}

/// The historical class's prefix, for a server that sends no subnet mask (what dhclient and
/// udhcpc assume too).
fn classful_prefix(ip: Ipv4Addr) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}
