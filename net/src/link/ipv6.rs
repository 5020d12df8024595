//! IPv6 as dracut's ifup configures it: a static address (`ip=[<v6>]::...:none`) and
//! stateless autoconfiguration (`auto6`), both with router advertisements accepted; for
//! `auto6` the interface counts as configured once the kernel has made a global address
//! from a router's prefix and that address has passed duplicate address detection.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::RouteMessageBuilder;
use tokio::time::Instant;

use super::{EEXIST, LinkError, Links, netlink, tolerate, validate_name};

/// How often the addresses are re-read while waiting (dracut's wait_for_ipv6_auto: 0.1 s).
const IPV6_RECHECK: Duration = Duration::from_millis(100);

/// An IPv6 address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Address {
    /// The address.
    pub address: Ipv6Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// Still under duplicate address detection: not usable yet.
    pub tentative: bool,
    /// Global scope (not link-local, not host).
    pub global: bool,
}

impl Links {
    /// What dracut's ifup writes before IPv6 is configured on `name`: forwarding off,
    /// router advertisements and redirects accepted (`/proc/sys/net/ipv6/conf/<name>/`).
    /// The files are those of the calling thread's network namespace.
    pub fn accept_router_advertisements(&self, name: &str) -> Result<(), LinkError> {
        validate_name(name)?;
        for (key, value) in [
            ("forwarding", "0"),
            ("accept_ra", "1"),
            ("accept_redirects", "1"),
        ] {
            let path = PathBuf::from("/proc/sys/net/ipv6/conf")
                .join(name)
                .join(key);
            std::fs::write(&path, value).map_err(|source| LinkError::Sysctl { path, source })?;
        }
        Ok(())
    }

    /// The interface's IPv6 addresses.
    pub async fn ipv6_addresses(&self, index: u32) -> Result<Vec<Ipv6Address>, LinkError> {
        let messages = self
            .address_messages(
                index,
                &format!("listing the addresses of interface index {index}"),
            )
            .await?;
        Ok(messages
            .iter()
            .filter(|msg| msg.header.family == AddressFamily::Inet6)
            .filter_map(ipv6_address)
            .collect())
    }

    /// Adds `address/prefix_len` to interface `index` and, with a gateway, the default route
    /// through it (what dracut's `ip addr add` and `ip route replace default via` do).
    /// Idempotent.
    pub async fn add_ipv6(
        &self,
        index: u32,
        address: Ipv6Addr,
        prefix_len: u8,
        gateway: Option<Ipv6Addr>,
    ) -> Result<(), LinkError> {
        if prefix_len > 128 {
            return Err(LinkError::Invalid {
                what: "prefix length",
                why: format!("/{prefix_len} is longer than 128 bits"),
            });
        }
        let request = self
            .handle
            .address()
            .add(index, IpAddr::V6(address), prefix_len)
            .replace();
        tolerate(request.execute().await, &[EEXIST]).map_err(netlink(format!(
            "adding {address}/{prefix_len} to interface index {index}"
        )))?;
        if let Some(gateway) = gateway {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .priority(Links::metric_for(index))
                .build();
            self.replace_route(
                route,
                &format!("adding the IPv6 default route via {gateway} on interface index {index}"),
            )
            .await?;
        }
        Ok(())
    }

    /// Waits until interface `index` has a global IPv6 address that is not tentative (for
    /// `auto6`: made from a router advertisement; with `want`, that one), at most `timeout`;
    /// the first one found.
    pub async fn wait_for_global_ipv6(
        &self,
        index: u32,
        want: Option<Ipv6Addr>,
        timeout: Duration,
    ) -> Result<Option<Ipv6Address>, LinkError> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self
                .ipv6_addresses(index)
                .await?
                .into_iter()
                .find(|address| {
                    address.global
                        && !address.tentative
                        && want.is_none_or(|want| want == address.address)
                });
            if ready.is_some() || Instant::now() >= deadline {
                return Ok(ready);
            }
            tokio::time::sleep(IPV6_RECHECK).await;
        }
    }
}

fn ipv6_address(msg: &AddressMessage) -> Option<Ipv6Address> {
    let address = msg
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Address(IpAddr::V6(address)) => Some(*address),
            _ => None,
        })?;
    // The 32-bit IFA_FLAGS attribute, when present, supersedes the header's 8 bits.
    let tentative = msg
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Flags(flags) => Some(flags.contains(AddressFlags::Tentative)),
            _ => None,
        })
        .unwrap_or_else(|| msg.header.flags.contains(AddressHeaderFlags::Tentative));
    Some(Ipv6Address {
        address,
        prefix_len: msg.header.prefix_len,
        tentative,
        global: msg.header.scope == AddressScope::Universe,
    })
}
