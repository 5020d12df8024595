//! The policy driven the way the init drives it, with the events it reports.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::choose::{resolve, select, static_lease, with_vlans_instead_of_parents};
use super::{AddressSource, OnlineEvent, Policy};
use crate::config::{self, InterfaceSelector, InterfaceTarget, MacAddr};
use crate::dhcp::LossReason;
use crate::lease::Lease;
use crate::link::{LinkInfo, LinkKind};

fn lease(interface: &str, last_octet: u8) -> Lease {
    Lease::new(interface, Ipv4Addr::new(192, 0, 2, last_octet), 24)
}

/// Runs `step` and returns what it reported.
fn events(step: impl FnOnce(&mut dyn FnMut(OnlineEvent))) -> Vec<OnlineEvent> {
    let mut seen = Vec::new();
    step(&mut |event| seen.push(event));
    seen
}

fn is_online(events: &[OnlineEvent]) -> bool {
    events
        .iter()
        .any(|event| matches!(event, OnlineEvent::Online { .. }))
}

fn stopped(events: &[OnlineEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            OnlineEvent::StopClient { interface, winner } => {
                Some((interface.clone(), winner.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A policy with DHCP clients running on `interfaces`.
fn dhcp_on(keep_all: bool, interfaces: &[&str]) -> Policy {
    let mut policy = Policy::new(keep_all);
    assert!(policy.falls_back_to_dhcp());
    let names: Vec<String> = interfaces.iter().map(|s| s.to_string()).collect();
    assert!(events(|emit| policy.dhcp_planned(&names, emit)).is_empty());
    for name in interfaces {
        policy.client_started(name);
    }
    policy
}

#[test]
fn nothing_is_online_before_a_lease() {
    let policy = dhcp_on(false, &["eth0", "eth1"]);
    assert!(!policy.is_online());
    // A DHCP client that is still selecting reports nothing to the policy: still offline.
    assert!(policy.should_apply(&lease("eth0", 10)));
    assert!(!policy.is_online());
    let no_interface = events(|emit| Policy::new(false).dhcp_planned(&[], emit));
    assert_eq!(no_interface, [OnlineEvent::StaysDown]);
}

#[test]
fn first_lease_wins_and_the_other_clients_stop() {
    let mut policy = dhcp_on(false, &["eth0", "eth1", "eth2"]);
    let won = lease("eth1", 11);
    assert!(policy.should_apply(&won));
    let reported = events(|emit| policy.lease_applied(&won, emit));
    assert_eq!(
        reported,
        [
            OnlineEvent::Configured {
                lease: won.clone(),
                source: AddressSource::Dhcp
            },
            OnlineEvent::StopClient {
                interface: "eth0".into(),
                winner: "eth1".into()
            },
            OnlineEvent::StopClient {
                interface: "eth2".into(),
                winner: "eth1".into()
            },
            OnlineEvent::Resolver { lease: won.clone() },
            OnlineEvent::Online { lease: won.clone() },
        ]
    );
    assert!(policy.is_online());
    // A lease the stopped eth0 got before it stopped is not applied; the winner's renewal is,
    // and changes only the resolver: nothing is stopped or online a second time.
    assert!(!policy.should_apply(&lease("eth0", 10)));
    assert!(policy.should_apply(&won));
    let renewed = events(|emit| policy.lease_applied(&won, emit));
    assert_eq!(renewed, [OnlineEvent::Resolver { lease: won }]);
}

#[test]
fn with_every_lease_kept_two_nics_are_configured_and_no_client_stops() {
    let mut policy = dhcp_on(true, &["eth0", "eth1"]);
    let first = events(|emit| policy.lease_applied(&lease("eth0", 10), emit));
    assert!(stopped(&first).is_empty());
    assert!(is_online(&first));
    assert!(policy.should_apply(&lease("eth1", 11)));
    let second = events(|emit| policy.lease_applied(&lease("eth1", 11), emit));
    assert_eq!(
        second,
        [
            OnlineEvent::Configured {
                lease: lease("eth1", 11),
                source: AddressSource::Dhcp
            },
            OnlineEvent::Resolver {
                lease: lease("eth1", 11)
            },
        ]
    );
}

#[test]
fn two_nics_first_lease_wins_whichever_answers_first() {
    let mut policy = dhcp_on(false, &["eth0", "eth1"]);
    let reported = events(|emit| policy.lease_applied(&lease("eth0", 10), emit));
    assert_eq!(stopped(&reported), [("eth1".into(), "eth0".into())]);
    assert!(!policy.should_apply(&lease("eth1", 11)));
}

#[test]
fn a_lost_lease_removes_its_address_and_the_winner_may_lease_again() {
    let mut policy = dhcp_on(false, &["eth0", "eth1"]);
    let first = lease("eth0", 10);
    events(|emit| policy.lease_applied(&first, emit));
    let lost = events(|emit| policy.lease_lost(&first, LossReason::Expired, emit));
    assert_eq!(
        lost,
        [OnlineEvent::LeaseLost {
            lease: first.clone(),
            reason: LossReason::Expired
        }]
    );
    // Nobody holds a lease now: the next one is applied, configured anew, but the network
    // was online already and the stopped client stays stopped.
    assert!(policy.is_online());
    let again = lease("eth0", 20);
    assert!(policy.should_apply(&again));
    let reported = events(|emit| policy.lease_applied(&again, emit));
    assert_eq!(
        reported,
        [
            OnlineEvent::Configured {
                lease: again.clone(),
                source: AddressSource::Dhcp
            },
            OnlineEvent::Resolver { lease: again },
        ]
    );
}

#[test]
fn a_static_address_is_online_without_dhcp() {
    let mut policy = Policy::new(false);
    let fixed = lease("eth0", 5);
    let reported = events(|emit| policy.static_applied(&fixed, "ip", emit));
    assert_eq!(
        reported,
        [
            OnlineEvent::Configured {
                lease: fixed.clone(),
                source: AddressSource::Static { key: "ip" }
            },
            OnlineEvent::Resolver {
                lease: fixed.clone()
            },
            OnlineEvent::Online { lease: fixed },
        ]
    );
    assert!(!policy.falls_back_to_dhcp());
    // No DHCP interface is fine when a static address is up.
    assert!(events(|emit| policy.dhcp_planned(&[], emit)).is_empty());
}

#[test]
fn a_failed_static_address_falls_back_to_dhcp() {
    let mut policy = Policy::new(false);
    policy.explicit_failed();
    assert!(policy.falls_back_to_dhcp());
    // One that failed beside one that asked for DHCP: DHCP runs where that one said.
    let mut with_dhcp = Policy::new(false);
    with_dhcp.explicit_failed();
    with_dhcp.explicit_dhcp();
    assert!(!with_dhcp.falls_back_to_dhcp());
    // One that failed beside a static one that worked: no DHCP at all.
    let mut with_static = Policy::new(false);
    with_static.explicit_failed();
    events(|emit| with_static.static_applied(&lease("eth1", 5), "ipam", emit));
    assert!(!with_static.falls_back_to_dhcp());
}

#[test]
fn a_static_address_and_dhcp_on_another_nic_keep_one_online() {
    let mut policy = Policy::new(false);
    events(|emit| policy.static_applied(&lease("eth0", 5), "ip", emit));
    policy.explicit_dhcp();
    policy.client_started("eth1");
    let reported = events(|emit| policy.lease_applied(&lease("eth1", 11), emit));
    assert!(!is_online(&reported), "online once: {reported:?}");
    assert!(stopped(&reported).is_empty());
}

fn link(index: u32, name: &str, mac: u8, kind: LinkKind) -> LinkInfo {
    LinkInfo {
        index,
        name: name.to_string(),
        mac: Some([0x52, 0x54, 0, 0, 0, mac]),
        permanent_mac: None,
        mtu: 1500,
        admin_up: false,
        carrier: true,
        kind,
        driver_kind: None,
        vlan: None,
        controller: None,
    }
}

fn names(links: &[LinkInfo]) -> Vec<&str> {
    links.iter().map(|l| l.name.as_str()).collect()
}

#[test]
fn dhcp_runs_on_physical_ethernet_or_the_interface_named() {
    let all = [
        link(1, "lo", 0, LinkKind::Loopback),
        link(2, "eth0", 1, LinkKind::PhysicalEthernet),
        link(3, "wlan0", 2, LinkKind::Wireless),
        link(4, "eth1", 3, LinkKind::PhysicalEthernet),
    ];
    assert_eq!(
        names(&select(&all, &InterfaceSelector::AllPhysical)),
        ["eth0", "eth1"]
    );
    assert_eq!(
        names(&select(&all, &InterfaceSelector::Name("wlan0".into()))),
        ["wlan0"]
    );
    let mac = MacAddr([0x52, 0x54, 0, 0, 0, 3]);
    assert_eq!(names(&select(&all, &InterfaceSelector::Mac(mac))), ["eth1"]);
    let any = resolve(&all, &InterfaceTarget::Any, &InterfaceSelector::AllPhysical);
    assert_eq!(any.map(|l| l.name), Some("eth0".to_string()));
    let by_mac = resolve(
        &all,
        &InterfaceTarget::Mac(mac),
        &InterfaceSelector::AllPhysical,
    );
    assert_eq!(by_mac.map(|l| l.name), Some("eth1".to_string()));
    let missing = resolve(
        &all,
        &InterfaceTarget::Name("eth9".into()),
        &InterfaceSelector::AllPhysical,
    );
    assert!(missing.is_none());
}

#[test]
fn a_static_configuration_becomes_a_lease() {
    let env = [(
        "ip".to_string(),
        "192.0.2.5::192.0.2.1:255.255.255.0:node1:eth0:none".to_string(),
    )];
    let parsed = config::parse(&env);
    let interface = &parsed.interfaces[0];
    let config::AddressMethod::Static(address) = &interface.method else {
        panic!("expected a static address in {interface:?}");
    };
    let lease = static_lease("eth0", interface, address);
    assert_eq!(
        (lease.address, lease.prefix_len, lease.routers.clone()),
        (
            Ipv4Addr::new(192, 0, 2, 5),
            24,
            vec![Ipv4Addr::new(192, 0, 2, 1)]
        )
    );
    assert_eq!(lease.hostname.as_deref(), Some("node1"));
    assert_eq!(lease.interface, "eth0");
}

#[test]
fn dhcp_runs_on_a_vlan_id_vlan_instead_of_its_parent() {
    let eth0 = link(2, "eth0", 1, LinkKind::PhysicalEthernet);
    let eth1 = link(3, "eth1", 2, LinkKind::PhysicalEthernet);
    let vlan = link(7, "eth0.30", 1, LinkKind::Vlan);
    let replaced = with_vlans_instead_of_parents(vec![eth0, eth1], &BTreeMap::from([(2, vlan)]));
    assert_eq!(names(&replaced), ["eth0.30", "eth1"]);
}

/// dracut's dhclient-script reads `ip=`'s override after the lease: the `ip=` MTU wins over
/// option 26, and a lease MTU of 576 or less is not applied.
#[test]
fn dhcp_mtu_follows_dracut() {
    use super::choose::dhcp_lease_with_overrides;
    let mut offered = lease("eth0", 10);
    offered.mtu = Some(9000);
    assert_eq!(
        dhcp_lease_with_overrides(offered.clone(), Some(1400)).mtu,
        Some(1400)
    );
    assert_eq!(
        dhcp_lease_with_overrides(offered.clone(), None).mtu,
        Some(9000)
    );
    offered.mtu = Some(576);
    assert_eq!(dhcp_lease_with_overrides(offered.clone(), None).mtu, None);
    offered.mtu = Some(577);
    assert_eq!(dhcp_lease_with_overrides(offered, None).mtu, Some(577));
}

/// `ip=<client>:<peer>:...` is `ip addr add <client>/<mask> peer <peer>`: the prefix is the
/// peer's, /32 unless written.
#[test]
fn static_lease_with_a_peer_takes_the_peers_prefix() {
    let config = config::parse(&[(
        "ip".to_string(),
        "10.0.0.1:10.0.0.2:10.0.0.2:255.255.255.0::ppp0:none".to_string(),
    )]);
    let interface = &config.interfaces[0];
    let config::AddressMethod::Static(address) = &interface.method else {
        panic!("static expected: {interface:?}");
    };
    let lease = static_lease("ppp0", interface, address);
    assert_eq!(lease.peer, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(lease.prefix_len, 32);
    assert_eq!(lease.routers, [Ipv4Addr::new(10, 0, 0, 2)]);
}

/// An IPv6 address (static or SLAAC) brings the network online once, like a lease, and
/// counts as an explicit configuration that worked (no DHCP fallback).
#[test]
fn ipv6_address_brings_the_network_online_once() {
    let mut policy = Policy::new(false);
    let address: std::net::Ipv6Addr = "2001:db8::10".parse().expect("v6");
    let reported =
        events(|emit| policy.ipv6_applied("eth0", (address, 64), Some("n1".into()), emit));
    assert_eq!(
        reported,
        [
            OnlineEvent::Ipv6Configured {
                interface: "eth0".into(),
                address,
                prefix_len: 64
            },
            OnlineEvent::OnlineIpv6 {
                interface: "eth0".into(),
                hostname: Some("n1".into())
            },
        ]
    );
    assert!(policy.is_online());
    assert!(!policy.falls_back_to_dhcp());
    let again = events(|emit| policy.ipv6_applied("eth1", (address, 64), None, emit));
    assert_eq!(again.len(), 1, "online once: {again:?}");
    let lease_after = events(|emit| policy.lease_applied(&lease("eth0", 10), emit));
    assert!(!is_online(&lease_after), "{lease_after:?}");
}

/// dracut.cmdline(7): "rd.peerdns=0: Disable DNS setting of DHCP parameters"; nameserver=
/// still applies, and static DNS servers are not DHCP parameters.
#[test]
fn resolver_follows_nameserver_and_rd_peerdns() {
    use super::choose::{Resolver, resolver_for};
    let mut dhcp = lease("eth0", 10);
    dhcp.server = Some(Ipv4Addr::new(192, 0, 2, 1));
    dhcp.dns = vec![Ipv4Addr::new(192, 0, 2, 53)];
    dhcp.domain = Some("lab.example".into());
    dhcp.search = vec!["lab.example".into()];
    let operator = [Ipv4Addr::new(10, 0, 0, 53)];
    assert_eq!(
        resolver_for(&dhcp, &[], true),
        Some(Resolver {
            nameservers: dhcp.dns.clone(),
            domain: Some("lab.example".into()),
            search: vec!["lab.example".into()],
        })
    );
    assert_eq!(resolver_for(&dhcp, &[], false), None);
    assert_eq!(
        resolver_for(&dhcp, &operator, false),
        Some(Resolver {
            nameservers: operator.to_vec(),
            domain: None,
            search: Vec::new(),
        })
    );
    assert_eq!(
        resolver_for(&dhcp, &operator, true).map(|r| r.nameservers),
        Some(operator.to_vec())
    );
    let mut fixed = lease("eth0", 11);
    fixed.dns = vec![Ipv4Addr::new(10, 0, 0, 2)];
    assert_eq!(
        resolver_for(&fixed, &[], false).map(|r| r.nameservers),
        Some(fixed.dns.clone())
    );
}
