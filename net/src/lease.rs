//! What an interface is configured with: a DHCP lease or a static configuration, in one form
//! so that one piece of code applies both.

use std::net::Ipv4Addr;
use std::time::Duration;

/// The configuration of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Interface name, e.g. `eth0` or `eth0.42`.
    pub interface: String,
    /// The address to configure.
    pub address: Ipv4Addr,
    /// The subnet's prefix length (255.255.255.0 = 24); with a `peer`, the peer's.
    pub prefix_len: u8,
    /// Static configuration only: the other end of a point-to-point link (dracut's
    /// `<peer>`), configured as `ip addr add <address> peer <peer>/<prefix_len>`.
    pub peer: Option<Ipv4Addr>,
    /// Default routers, most preferred first.
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers, most preferred first.
    pub dns: Vec<Ipv4Addr>,
    /// DNS domain name (option 15), for resolv.conf.
    pub domain: Option<String>,
    /// DNS search list (option 119), for resolv.conf.
    pub search: Vec<String>,
    /// Host name the server gives (option 12).
    pub hostname: Option<String>,
    /// NTP servers (DHCP option 42).
    pub ntp: Vec<Ipv4Addr>,
    /// MTU to set, in bytes (option 26).
    pub mtu: Option<u16>,
    /// DHCP only: lease time, renewal (T1) and rebinding (T2) times, and the server.
    pub lease_time: Option<Duration>,
    /// When to renew (T1), from the lease's start.
    pub renew_after: Option<Duration>,
    /// When to rebind (T2), from the lease's start.
    pub rebind_after: Option<Duration>,
    /// The server's identifier (option 54), where renewals go.
    pub server: Option<Ipv4Addr>,
}

impl Lease {
    /// An address on an interface and nothing else yet: DHCP options and static settings
    /// are filled in by whoever knows them.
    pub fn new(interface: &str, address: Ipv4Addr, prefix_len: u8) -> Lease {
        Lease {
            interface: interface.to_string(),
            address,
            prefix_len,
            peer: None,
            routers: Vec::new(),
            dns: Vec::new(),
            domain: None,
            search: Vec::new(),
            hostname: None,
            ntp: Vec::new(),
            mtu: None,
            lease_time: None,
            renew_after: None,
            rebind_after: None,
            server: None,
        }
    }
}
