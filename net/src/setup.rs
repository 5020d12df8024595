//! Applying the command line's configuration to the kernel's links, in dracut's order:
//!
//! 1. [`prepare_links`]: `ifname=` renames first (so that every later step, and `ip=`, sees
//!    the new names), then `bond=` bonds (a VLAN may sit on a bond), then the VLANs of
//!    `vlan=` and `vlan_id=`, and only then the interface list that `ip=` is resolved
//!    against, so that an `ip=` naming a VLAN or a bond finds it.
//! 2. [`apply_interface`], once per `ip=`/`ipam=`: the MAC and MTU it asks for, the link up,
//!    then the static IPv4 or IPv6 address, SLAAC, or the link handed back for DHCP.
//!
//! Nothing here prints: what went wrong comes back as sentences for the caller to log.

use std::collections::BTreeMap;

use bootkit_common::error_chain;

use crate::config::{AddressMethod, InterfaceConfig, InterfaceSelector, NetConfig, VlanConfig};
use crate::lease::Lease;
use crate::link::{Ipv6Address, LinkError, LinkInfo, Links, format_mac};
use crate::online::choose;

/// What [`prepare_links`] made.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Every interface, read after the renames, bonds and VLANs.
    pub links: Vec<LinkInfo>,
    /// The bonds of `bond=` that exist now: DHCP runs on them, not on their slaves, when no
    /// `ip=` says otherwise.
    pub bonds: Vec<LinkInfo>,
    /// `vlan_id=`'s VLANs, by their parent's index: DHCP runs on the VLAN instead.
    pub vlan_of_parent: BTreeMap<u32, LinkInfo>,
    /// What was done, one log line each (`renamed ... to ...`, `VLAN 42 on eth0 is eth0.42`).
    pub done: Vec<String>,
    /// What could not be done, one sentence each; the rest went on without it.
    pub problems: Vec<String>,
}

/// Renames, bonds and VLANs, then the interface list; see the module documentation. Fails
/// only when the interfaces cannot be listed at all.
pub async fn prepare_links(links: &Links, config: &NetConfig) -> Result<Prepared, LinkError> {
    let mut prepared = Prepared::default();
    for rename in &config.renames {
        match rename_one(links, rename.mac.0, &rename.name).await {
            Ok(Some(old)) => prepared.done.push(format!(
                "ifname=: renamed {old} ({}) to {}",
                rename.mac, rename.name
            )),
            Ok(None) => {}
            Err(problem) => prepared
                .problems
                .push(format!("ifname={}: {problem}", rename.name)),
        }
    }
    for bond in &config.bonds {
        let made = links
            .add_bond(
                &bond.name,
                &bond.slaves,
                &bond.options,
                bond.mtu.map(u32::from),
            )
            .await;
        match made {
            Ok(index) => {
                prepared.done.push(format!(
                    "bond {} with slaves {}",
                    bond.name,
                    bond.slaves.join(",")
                ));
                match links.get(index).await {
                    Ok(link) => prepared.bonds.push(link),
                    Err(err) => {
                        prepared
                            .problems
                            .push(format!("bond {}: {}", bond.name, error_chain(&err)))
                    }
                }
            }
            Err(err) => prepared.problems.push(format!(
                "cannot create bond {}: {}",
                bond.name,
                error_chain(&err)
            )),
        }
    }
    let all = links.list().await?;
    // `ipam=`'s VLANs too, so that they are logged like the others; apply_interface finds
    // them by name.
    let ipam_vlans = config.interfaces.iter().filter_map(|interface| {
        interface.vlan_id.map(|id| VlanConfig {
            parent: interface.target.clone(),
            id,
            name: None,
            dhcp_instead_of_parent: false,
        })
    });
    for vlan in config.vlans.iter().cloned().chain(ipam_vlans) {
        let Some(parent) = choose::resolve(&all, &vlan.parent, &config.selector) else {
            prepared.problems.push(format!(
                "no interface {:?} for VLAN {}: skipping it",
                vlan.parent, vlan.id
            ));
            continue;
        };
        match make_vlan(links, &parent, vlan.id, vlan.name.as_deref()).await {
            Ok(created) => {
                prepared.done.push(format!(
                    "VLAN {} on {} is {}",
                    vlan.id, parent.name, created.name
                ));
                if vlan.dhcp_instead_of_parent {
                    prepared.vlan_of_parent.insert(parent.index, created);
                }
            }
            Err(problem) => prepared.problems.push(problem),
        }
    }
    prepared.links = links.list().await?;
    Ok(prepared)
}

/// Renames the interface with `mac` to `name`; `Ok(None)` when it already has that name.
async fn rename_one(links: &Links, mac: [u8; 6], name: &str) -> Result<Option<String>, String> {
    let link = links
        .find_by_mac(mac)
        .await
        .map_err(|err| error_chain(&err))?
        .ok_or_else(|| format!("no interface has MAC {}", format_mac(&mac)))?;
    if link.name == name {
        return Ok(None);
    }
    if let Ok(Some(taken)) = links.find_by_name(name).await {
        return Err(format!(
            "the name is taken by the interface with MAC {}: expected a name no other \
             interface has (dracut recommends one outside the kernel's eth<N>)",
            taken
                .mac
                .map_or_else(|| "none".to_string(), |mac| format_mac(&mac))
        ));
    }
    links
        .rename(link.index, name)
        .await
        .map_err(|err| format!("cannot rename {}: {}", link.name, error_chain(&err)))?;
    Ok(Some(link.name))
}

/// Creates VLAN `id` on `parent`, named `name` or `<parent>.<id>`, and returns it.
pub async fn make_vlan(
    links: &Links,
    parent: &LinkInfo,
    id: u16,
    name: Option<&str>,
) -> Result<LinkInfo, String> {
    let name = name.map_or_else(|| format!("{}.{id}", parent.name), str::to_string);
    let index = links
        .add_vlan(parent.index, id, &name)
        .await
        .map_err(|err| {
            format!(
                "cannot create VLAN {id} on {}: {}",
                parent.name,
                error_chain(&err)
            )
        })?;
    links
        .get(index)
        .await
        .map_err(|err| format!("VLAN {name}: {}", error_chain(&err)))
}

/// The interfaces DHCP runs on when no explicit `ip=` does: the selector's, without the
/// interfaces enslaved to a bond, plus the bonds themselves (dracut's ifup skips enslaved
/// interfaces and brings the bond master up instead).
pub fn default_dhcp_links(prepared: &Prepared, selector: &InterfaceSelector) -> Vec<LinkInfo> {
    let mut chosen: Vec<LinkInfo> = choose::select(&prepared.links, selector)
        .into_iter()
        .filter(|link| link.controller.is_none())
        .collect();
    if matches!(selector, InterfaceSelector::AllPhysical) {
        for bond in &prepared.bonds {
            if !chosen.iter().any(|link| link.index == bond.index) {
                chosen.push(bond.clone());
            }
        }
    }
    choose::with_vlans_instead_of_parents(chosen, &prepared.vlan_of_parent)
}

/// What [`apply_interface`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// DHCP is to run on this link: its MAC and MTU are set and it is up. The link is read
    /// after the MAC change, so its `mac` is the one DHCP is to use.
    Dhcp(LinkInfo),
    /// A static IPv4 address is configured, as this lease describes.
    Static(Lease),
    /// An IPv6 address is configured: the static one, or the one SLAAC made.
    Ipv6 {
        /// The interface.
        interface: String,
        /// The address.
        address: Ipv6Address,
    },
}

/// One `ip=`/`ipam=` of `config` on the prepared links; see the module documentation. The
/// error says what failed on which interface.
pub async fn apply_interface(
    links: &Links,
    all: &[LinkInfo],
    interface: &InterfaceConfig,
    config: &NetConfig,
) -> Result<Applied, String> {
    let Some(mut link) = choose::resolve(all, &interface.target, &config.selector) else {
        return Err(format!("no interface matches {:?}", interface.target));
    };
    if let Some(id) = interface.vlan_id {
        let name = format!("{}.{id}", link.name);
        link = match all.iter().find(|vlan| vlan.name == name) {
            Some(vlan) => vlan.clone(),
            None => make_vlan(links, &link, id, None).await?,
        };
    }
    let failed =
        |what: &str, err: LinkError| format!("{what} {}: {}", link.name, error_chain(&err));
    let link = links
        .prepare(
            link.index,
            interface.set_mac.map(|mac| mac.0),
            interface.mtu.map(u32::from),
        )
        .await
        .map_err(|err| failed("cannot set up", err))?;
    match &interface.method {
        AddressMethod::Dhcp => Ok(Applied::Dhcp(link)),
        AddressMethod::Static(address) => {
            let lease = choose::static_lease(&link.name, interface, address);
            links
                .apply(&lease)
                .await
                .map_err(|err| failed("cannot configure", err))?;
            Ok(Applied::Static(lease))
        }
        AddressMethod::Static6(address) => {
            links
                .accept_router_advertisements(&link.name)
                .map_err(|err| failed("cannot enable IPv6 on", err))?;
            links
                .add_ipv6(
                    link.index,
                    address.address,
                    address.prefix_len,
                    address.gateway,
                )
                .await
                .map_err(|err| failed("cannot configure", err))?;
            // As dracut's wait_for_ipv6_dad: the address is usable once DAD is over.
            let ready = links
                .wait_for_global_ipv6(link.index, Some(address.address), config.ipv6_dad_timeout)
                .await
                .map_err(|err| failed("cannot read the addresses of", err))?;
            match ready {
                Some(address) => Ok(Applied::Ipv6 {
                    interface: link.name,
                    address,
                }),
                None => Err(format!(
                    "{}: {} did not pass duplicate address detection within {} s",
                    link.name,
                    address.address,
                    config.ipv6_dad_timeout.as_secs()
                )),
            }
        }
        AddressMethod::Auto6 => {
            links
                .accept_router_advertisements(&link.name)
                .map_err(|err| failed("cannot enable IPv6 on", err))?;
            match links
                .wait_for_global_ipv6(link.index, None, config.ipv6_auto_timeout)
                .await
                .map_err(|err| failed("cannot read the addresses of", err))?
            {
                Some(address) => Ok(Applied::Ipv6 {
                    interface: link.name,
                    address,
                }),
                None => Err(format!(
                    "{}: no global IPv6 address from router advertisements (SLAAC) within {} s",
                    link.name,
                    config.ipv6_auto_timeout.as_secs()
                )),
            }
        }
    }
}
