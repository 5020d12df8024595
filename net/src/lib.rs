//! The bootkit's network stack, run by the init as built-in services (no dhclient, no ip,
//! no ntpd in the image):
//!
//! - [`config`]: the kernel command line's network keys (dracut's `ip=`, HookOS's `ipam=`,
//!   VLANs, interface choice, NTP servers, proxies) as a typed configuration.
//! - [`link`]: interfaces, carrier, addresses, routes, MTU and VLANs over rtnetlink.
//! - [`dhcp`]: a DHCPv4 client: a pure state machine and its socket driver.
//! - [`lease`]: what an interface is configured with, from DHCP or static configuration.
//! - [`resolv`]: writing /etc/resolv.conf and the host name.
//! - [`sntp`]: setting the clock from NTP servers before TLS is used.
//! - [`setup`]: applying the command line to the links in dracut's order: renames, bonds,
//!   VLANs, then each `ip=` (MAC, MTU, static IPv4/IPv6, SLAAC, or DHCP).
//! - [`online`]: the init's network policy (which lease wins, when the network is online)
//!   as a state machine that reports events.
//! - [`nbd`]: attaching network block devices to /dev/nbdN.
//! - [`syslog`]: forwarding log lines as RFC 5424 syslog.

pub mod config;
pub mod dhcp;
mod ifname;
pub mod lease;
pub mod link;
pub mod nbd;
pub mod online;
pub mod resolv;
pub mod setup;
pub mod sntp;
pub mod syslog;
