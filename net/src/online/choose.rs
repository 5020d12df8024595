//! Which interfaces the command line's configuration applies to, from the kernel's list.

use std::collections::BTreeMap;

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
