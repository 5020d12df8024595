//! Which interfaces the command line's configuration applies to, from the kernel's list.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::config::{InterfaceConfig, InterfaceSelector, InterfaceTarget, StaticAddress};
use crate::lease::Lease;
use crate::link::{LinkInfo, LinkKind};

/// The interfaces DHCP runs on by default: every physical Ethernet one, or the one named.
pub fn select(all: &[LinkInfo], selector: &InterfaceSelector) -> Vec<LinkInfo> {
    all.iter()
        .filter(|link| match selector {
            InterfaceSelector::AllPhysical => link.kind == LinkKind::PhysicalEthernet,
            InterfaceSelector::Name(name) => &link.name == name,
            InterfaceSelector::Mac(mac) => link.mac == Some(mac.0),
        })
        .cloned()
        .collect()
}

/// The interface `target` names; [`InterfaceTarget::Any`] is the first the selector allows.
pub fn resolve(
    all: &[LinkInfo],
    target: &InterfaceTarget,
    selector: &InterfaceSelector,
) -> Option<LinkInfo> {
    match target {
        InterfaceTarget::Any => select(all, selector).into_iter().next(),
        InterfaceTarget::Name(name) => all.iter().find(|l| &l.name == name).cloned(),
        InterfaceTarget::Mac(mac) => all.iter().find(|l| l.mac == Some(mac.0)).cloned(),
    }
}

/// What a static `ip=`/`ipam=` configures on interface `name`, in the form a DHCP lease has,
/// so that one piece of code applies both. NTP servers that are not IPv4 addresses are left
/// out (host names are resolved by `ntp=` only).
pub fn static_lease(name: &str, interface: &InterfaceConfig, address: &StaticAddress) -> Lease {
    let mut lease = Lease::new(name, address.address, address.prefix_len);
    if let Some(peer) = address.peer {
        // `ip addr add <client>/<mask> peer <peer>` as dracut runs it: the prefix is the
        // peer's (a /32 unless the peer was written with one), the netmask is not used.
        lease.peer = Some(peer);
        lease.prefix_len = address.peer_prefix_len.unwrap_or(32);
    }
    lease.routers = address.gateway.into_iter().collect();
    lease.dns = interface.dns.clone();
    lease.search = interface.search.clone();
    lease.hostname = interface.hostname.clone();
    lease.ntp = interface
        .ntp_servers
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    lease.mtu = interface.mtu;
    lease
}

/// The interfaces DHCP runs on once the VLANs exist: a parent that a `vlan_id=` VLAN replaces
/// (by the parent's interface index in `vlan_of_parent`) is swapped for that VLAN, in place.
pub fn with_vlans_instead_of_parents(
    dhcp_on: Vec<LinkInfo>,
    vlan_of_parent: &BTreeMap<u32, LinkInfo>,
) -> Vec<LinkInfo> {
    dhcp_on
        .into_iter()
        .map(|link| vlan_of_parent.get(&link.index).cloned().unwrap_or(link))
        .collect()
}

/// DHCP's MTU floor, as dracut's dhclient-script keeps it: 576 and below is ignored ("only
/// used for X.25 and dialup connections", and it breaks UDP).
pub const DHCP_MTU_FLOOR: u16 = 576;

/// A DHCP lease as dracut applies it on an interface whose `ip=` set an MTU: the `ip=` MTU
/// wins over the lease's option 26 (dracut's override file is read after the lease), and a
/// lease MTU of [`DHCP_MTU_FLOOR`] or less is not applied.
pub fn dhcp_lease_with_overrides(mut lease: Lease, configured_mtu: Option<u16>) -> Lease {
    lease.mtu = configured_mtu.or(lease.mtu.filter(|mtu| *mtu > DHCP_MTU_FLOOR));
    lease
}

/// What /etc/resolv.conf is to say once `lease` is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// The DNS servers, in order.
    pub nameservers: Vec<Ipv4Addr>,
    /// The DNS domain.
    pub domain: Option<String>,
    /// The search list.
    pub search: Vec<String>,
}

/// The resolver for `lease`, as dracut decides it: `nameserver=` (the operator's) replaces the
/// lease's servers; with `rd.peerdns=0` (`peer_dns` false) nothing a DHCP server offered is
/// used (servers, domain, search list), so a DHCP lease without `nameserver=` writes nothing
/// (`None`). A static lease's own DNS servers (dracut's `<dns1>`/`<dns2>`, `ipam=`'s) are
/// the operator's and always count.
pub fn resolver_for(lease: &Lease, nameservers: &[Ipv4Addr], peer_dns: bool) -> Option<Resolver> {
    let offered_by_dhcp = lease.server.is_some();
    let use_offered = peer_dns || !offered_by_dhcp;
    let servers = if !nameservers.is_empty() {
        nameservers.to_vec()
    } else if use_offered {
        lease.dns.clone()
    } else {
        Vec::new()
    };
    if !use_offered && servers.is_empty() {
        return None;
    }
    let (domain, search) = if use_offered {
        (lease.domain.clone(), lease.search.clone())
    } else {
        (None, Vec::new())
    };
    Some(Resolver {
        nameservers: servers,
        domain,
        search,
    })
}
