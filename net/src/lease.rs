//! What an interface is configured with: a DHCP lease or a static configuration, in one form
//! so that one piece of code applies both.

use std::net::Ipv4Addr;
use std::time::Duration;

/// The configuration of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Interface name, e.g. `eth0` or `eth0.42`.
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// Default routers, most preferred first.
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub hostname: Option<String>,
    /// NTP servers (DHCP option 42).
    pub ntp: Vec<Ipv4Addr>,
    pub mtu: Option<u16>,
    /// DHCP only: lease time, renewal (T1) and rebinding (T2) times, and the server.
    pub lease_time: Option<Duration>,
    pub renew_after: Option<Duration>,
    pub rebind_after: Option<Duration>,
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
