//! Each command-line form against its documented meaning (the examples are the ones in
//! dracut.cmdline(7), smee's ISO-Static-IPAM.md and HookOS's static-network.sh), malformed
//! values, and a robustness run over garbled input.

use super::*;
use std::net::Ipv4Addr;

fn parse_pairs(pairs: &[(&str, &str)]) -> NetConfig {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    parse(&owned)
}

/// Parse one pair that must be understood without complaint.
fn parse_clean(key: &str, value: &str) -> NetConfig {
    let config = parse_pairs(&[(key, value)]);
    assert!(
        config.warnings.is_empty(),
        "{key}={value}: unexpected warnings {:?}",
        config.warnings
    );
    config
}

/// Parse one pair that must be refused: exactly one warning, naming the key and saying what
/// was expected, and nothing of the value kept (the config is the default one).
fn parse_refused(key: &str, value: &str) -> ConfigWarning {
    let config = parse_pairs(&[(key, value)]);
    assert_eq!(
        config.warnings.len(),
        1,
        "{key}={value}: {:?}",
        config.warnings
    );
    let warning = config.warnings[0].clone();
    assert_eq!(warning.key, key);
    assert_eq!(warning.value, value);
    let shown = warning.to_string();
    assert!(shown.contains(key), "warning does not name {key}: {shown}");
    assert!(
        shown.contains("expected"),
        "warning says nothing expected: {shown}"
    );
    let without_warnings = NetConfig {
        warnings: Vec::new(),
        ..config
    };
    assert_eq!(
        without_warnings,
        NetConfig::default(),
        "{key}={value} left something behind"
    );
    warning
}

fn only_interface(config: &NetConfig) -> &InterfaceConfig {
    assert_eq!(config.interfaces.len(), 1, "{:?}", config.interfaces);
    &config.interfaces[0]
}

fn static_address(config: &InterfaceConfig) -> StaticAddress {
    match config.method {
        AddressMethod::Static(address) => address,
        _ => panic!("expected a static address in {config:?}"),
    }
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().expect("test address")
}

fn mac(text: &str) -> MacAddr {
    text.parse().expect("test MAC")
}

fn name(text: &str) -> InterfaceTarget {
    InterfaceTarget::Name(text.to_string())
}

// ---- defaults -----------------------------------------------------------------------------

#[test]
fn empty_command_line_means_dhcp_everywhere_first_lease_wins() {
    let config = parse(&[]);
    assert_eq!(config, NetConfig::default());
    assert!(config.interfaces.is_empty());
    assert_eq!(config.selector, InterfaceSelector::AllPhysical);
    assert!(!config.keep_all_leases);
    assert_eq!(config.carrier_timeout, Duration::from_secs(10));
}

#[test]
fn keys_that_are_not_about_the_network_are_ignored_silently() {
    let config = parse_pairs(&[
        ("BOOT_IMAGE", "/vmlinuz"),
        ("grpc_authority", "tink.example:42113"),
        ("syslog_host", "10.0.0.1"),
        ("rd.neednet", "1"),
        ("tinkerbell_tls", "false"),
    ]);
    assert_eq!(config, NetConfig::default());
}

// ---- dracut ip= ---------------------------------------------------------------------------

#[test]
fn ip_dhcp_on_any_mean_dhcp_on_all_interfaces() {
    for word in ["dhcp", "on", "any", "single-dhcp"] {
        let config = parse_clean("ip", word);
        let interface = only_interface(&config);
        assert_eq!(interface.target, InterfaceTarget::Any, "ip={word}");
        assert_eq!(interface.method, AddressMethod::Dhcp, "ip={word}");
        assert_eq!(interface.source_key, "ip");
    }
}

#[test]
fn ip_interface_dhcp_means_dhcp_on_that_interface() {
    for word in ["dhcp", "on", "any"] {
        let config = parse_clean("ip", &format!("eth0:{word}"));
        let interface = only_interface(&config);
        assert_eq!(interface.target, name("eth0"));
        assert_eq!(interface.method, AddressMethod::Dhcp);
        assert_eq!(interface.mtu, None);
        assert_eq!(interface.set_mac, None);
    }
}

#[test]
fn ip_interface_dhcp_takes_an_mtu_and_a_mac_to_set() {
    let config = parse_clean("ip", "enp1s0:dhcp:9000:52:54:00:12:34:56");
    let interface = only_interface(&config);
    assert_eq!(interface.target, name("enp1s0"));
    assert_eq!(interface.mtu, Some(9000));
    assert_eq!(interface.set_mac, Some(mac("52:54:00:12:34:56")));

    // "[:[<mtu>][:<macaddr>]]": the MTU may be left empty, the MAC written with dashes.
    let config = parse_clean("ip", "eth0:dhcp::52-54-00-12-34-56");
    let interface = only_interface(&config);
    assert_eq!(interface.mtu, None);
    assert_eq!(interface.set_mac, Some(mac("52:54:00:12:34:56")));
}

#[test]
fn ip_explicit_static_configuration() {
    let config = parse_clean(
        "ip",
        "192.168.1.10::192.168.1.1:255.255.255.0:node1:eth0:none",
    );
    let interface = only_interface(&config);
    assert_eq!(interface.target, name("eth0"));
    assert_eq!(interface.hostname.as_deref(), Some("node1"));
    assert_eq!(
        static_address(interface),
        StaticAddress {
            address: ip("192.168.1.10"),
            prefix_len: 24,
            gateway: Some(ip("192.168.1.1")),
            peer: None,
            peer_prefix_len: None,
        }
    );
    assert_eq!(interface.vlan_id, None);
    assert!(interface.dns.is_empty());
}

#[test]
fn ip_explicit_off_is_static_and_netmask_may_be_a_prefix_length() {
    let config = parse_clean("ip", "10.1.2.3::10.1.0.1:16::eth1:off");
    let interface = only_interface(&config);
    let address = static_address(interface);
    assert_eq!(address.address, ip("10.1.2.3"));
    assert_eq!(address.prefix_len, 16);
    assert_eq!(interface.hostname, None);
}

#[test]
fn ip_explicit_empty_interface_means_any() {
    let config = parse_clean("ip", "10.0.0.5::10.0.0.1:255.255.255.0:::none");
    assert_eq!(only_interface(&config).target, InterfaceTarget::Any);
}

#[test]
fn ip_explicit_with_peer_mtu_and_colon_mac() {
    let config = parse_clean(
        "ip",
        "10.0.0.5:10.0.0.6/30:10.0.0.6:255.255.255.252:ptp:eth2:none:1400:52:54:00:ab:cd:ef",
    );
    let interface = only_interface(&config);
    let address = static_address(interface);
    assert_eq!(address.peer, Some(ip("10.0.0.6")));
    assert_eq!(address.prefix_len, 30);
    assert_eq!(interface.mtu, Some(1400));
    assert_eq!(interface.set_mac, Some(mac("52:54:00:ab:cd:ef")));
}

#[test]
fn ip_explicit_with_dns_servers_in_the_tail() {
    let config = parse_clean(
        "ip",
        "192.168.1.10::192.168.1.1:255.255.255.0:node1:eth0:none:192.168.1.2:192.168.1.3",
    );
    let interface = only_interface(&config);
    assert_eq!(interface.dns, [ip("192.168.1.2"), ip("192.168.1.3")]);
    assert_eq!(interface.mtu, None);

    let config = parse_clean("ip", "192.168.1.10::192.168.1.1:24:node1:eth0:none:1.1.1.1");
    assert_eq!(only_interface(&config).dns, [ip("1.1.1.1")]);
}

#[test]
fn ip_explicit_with_dhcp_method_runs_dhcp_and_keeps_the_hostname() {
    let config = parse_clean("ip", ":::::eth0:dhcp");
    assert_eq!(only_interface(&config).method, AddressMethod::Dhcp);

    let config = parse_clean("ip", "10.0.0.5::::node7:eth0:dhcp:1500");
    let interface = only_interface(&config);
    assert_eq!(interface.method, AddressMethod::Dhcp);
    assert_eq!(interface.hostname.as_deref(), Some("node7"));
    assert_eq!(interface.mtu, Some(1500));
}

#[test]
fn ip_explicit_client_ip_may_carry_its_prefix() {
    let config = parse_clean("ip", "10.0.0.5/24::10.0.0.1::node1:eth0:none");
    assert_eq!(static_address(only_interface(&config)).prefix_len, 24);
    // Both given and equal is fine.
    parse_clean("ip", "10.0.0.5/24::10.0.0.1:255.255.255.0:node1:eth0:none");
}

#[test]
fn ip_explicit_trailing_fields_may_be_omitted_like_the_kernels_ip() {
    let config = parse_clean("ip", "10.0.0.5::10.0.0.1:255.255.255.0");
    let interface = only_interface(&config);
    assert_eq!(interface.target, InterfaceTarget::Any);
    assert_eq!(static_address(interface).gateway, Some(ip("10.0.0.1")));
}

#[test]
fn ip_zero_gateway_and_peer_mean_none() {
    let config = parse_clean("ip", "10.0.0.5:0.0.0.0:0.0.0.0:255.0.0.0:h:eth0:none");
    let address = static_address(only_interface(&config));
    assert_eq!(address.gateway, None);
    assert_eq!(address.peer, None);
    assert_eq!(address.prefix_len, 8);
}

#[test]
fn ip_is_repeatable_for_several_interfaces_in_order() {
    let config = parse_pairs(&[
        (
            "ip",
            "192.168.1.10::192.168.1.1:255.255.255.0:node1:eth0:none",
        ),
        ("ip", "eth1:dhcp"),
    ]);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.interfaces.len(), 2);
    assert_eq!(config.interfaces[0].target, name("eth0"));
    assert_eq!(config.interfaces[1].target, name("eth1"));
    assert_eq!(config.interfaces[1].method, AddressMethod::Dhcp);
}

#[test]
fn ip_bad_address_is_refused() {
    let warning = parse_refused(
        "ip",
        "192.168.1.300::192.168.1.1:255.255.255.0:node1:eth0:none",
    );
    assert!(warning.problem.contains("client IP"), "{warning}");
    parse_refused(
        "ip",
        "192.168.1.10::192.168.1:255.255.255.0:node1:eth0:none",
    );
    parse_refused(
        "ip",
        "192.168.1.10:peer:192.168.1.1:255.255.255.0:node1:eth0:none",
    );
}

#[test]
fn ip_bad_netmask_is_refused() {
    let warning = parse_refused(
        "ip",
        "192.168.1.10::192.168.1.1:255.0.255.0:node1:eth0:none",
    );
    assert!(warning.problem.contains("netmask"), "{warning}");
    parse_refused("ip", "192.168.1.10::192.168.1.1:33:node1:eth0:none");
    parse_refused("ip", "192.168.1.10::192.168.1.1:mask:node1:eth0:none");
    parse_refused("ip", "10.0.0.5/24::10.0.0.1:255.255.0.0:node1:eth0:none");
}

#[test]
fn ip_static_without_netmask_or_address_is_refused() {
    parse_refused("ip", "192.168.1.10::192.168.1.1::node1:eth0:none");
    parse_refused("ip", "::192.168.1.1:255.255.255.0:node1:eth0:none");
    parse_refused("ip", "off");
    parse_refused("ip", "eth0:none");
}

#[test]
fn ip_bad_mac_is_refused() {
    let warning = parse_refused("ip", "eth0:dhcp:1500:zz-54-00-12-34-56");
    assert!(warning.problem.contains("MAC"), "{warning}");
    parse_refused("ip", "eth0:dhcp:1500:52-54-00-12-34");
    parse_refused(
        "ip",
        "10.0.0.5::10.0.0.1:24:h:eth0:none:1500:52:54:00:12:34:5g",
    );
}

#[test]
fn ip_too_many_fields_is_refused() {
    let warning = parse_refused(
        "ip",
        "10.0.0.5::10.0.0.1:24:h:eth0:none:1500:52:54:00:12:34:56:78",
    );
    assert!(warning.problem.contains("too many fields"), "{warning}");
    parse_refused(
        "ip",
        "10.0.0.5::10.0.0.1:24:h:eth0:none:1.1.1.1:8.8.8.8:9.9.9.9",
    );
    parse_refused("ip", "eth0:dhcp:1500:52:54:00");
}

#[test]
fn ip_bad_mtu_method_or_interface_is_refused() {
    parse_refused("ip", "eth0:dhcp:12");
    parse_refused("ip", "eth0:dhcp:jumbo");
    parse_refused("ip", "eth0:dhcp:70000");
    parse_refused("ip", "10.0.0.5::10.0.0.1:24:h:eth0:static");
    parse_refused(
        "ip",
        "10.0.0.5::10.0.0.1:24:h:an-interface-name-too-long:none",
    );
    parse_refused("ip", "10.0.0.5::10.0.0.1:24:bad host!:eth0:none");
    parse_refused("ip", "dhcpp");
    parse_refused("ip", "");
}

#[test]
fn ip_dhcp6_link6_and_ibft_are_refused_not_misread() {
    for word in ["dhcp6", "either6"] {
        for value in [word.to_string(), format!("eth0:{word}")] {
            let warning = parse_refused("ip", &value);
            // The warning names the method and what does work instead.
            assert!(
                warning.problem.contains(word)
                    && warning.problem.contains("auto6")
                    && warning.problem.contains("static"),
                "{warning}"
            );
        }
    }
    parse_refused("ip", "link6");
    parse_refused("ip", "eth0:link6");
    parse_refused("ip", ":::::eth0:ibft");
}

/// dracut.cmdline(7): "If you want do define a IPv6 address, put it in brackets (e.g.
/// [2001:DB8::1])"; the netmask field is then the prefix length.
#[test]
fn ip_static_ipv6_in_brackets() {
    let config = parse_clean("ip", "[2001:DB8::1]::[2001:DB8::ff]:64:h:eth0:none");
    let interface = only_interface(&config);
    assert_eq!(interface.target, name("eth0"));
    assert_eq!(interface.hostname.as_deref(), Some("h"));
    assert_eq!(
        interface.method,
        AddressMethod::Static6(StaticAddress6 {
            address: "2001:db8::1".parse().expect("v6"),
            prefix_len: 64,
            gateway: Some("2001:db8::ff".parse().expect("v6")),
        })
    );
    // No gateway, the prefix on the address, an MTU and a MAC after the method.
    let config = parse_clean("ip", "[fd00:1::10/56]:::::eth1:none:1280:52:54:00:12:34:56");
    let interface = only_interface(&config);
    assert_eq!(
        interface.method,
        AddressMethod::Static6(StaticAddress6 {
            address: "fd00:1::10".parse().expect("v6"),
            prefix_len: 56,
            gateway: None,
        })
    );
    assert_eq!(interface.mtu, Some(1280));
    assert_eq!(interface.set_mac, Some(mac("52:54:00:12:34:56")));
}

#[test]
fn ip_static_ipv6_malformed_is_refused() {
    for value in [
        // No prefix length.
        "[2001:db8::1]:::::eth0:none",
        "[2001:db8::1]:::129::eth0:none",
        "[2001:db8::zz]:::64::eth0:none",
        // A point-to-point peer is IPv4 only.
        "[2001:db8::1]:[2001:db8::2]::64::eth0:none",
        "[2001:db8::1]::[10.0.0.1]:64::eth0:none",
        // IPv6 DNS servers in ip= are not taken.
        "[2001:db8::1]:::64::eth0:none:[2001:db8::53]",
    ] {
        parse_refused("ip", value);
    }
}

/// `auto6`: IPv6 autoconfiguration, on all interfaces or one.
#[test]
fn ip_auto6_is_slaac() {
    let config = parse_clean("ip", "auto6");
    assert_eq!(only_interface(&config).method, AddressMethod::Auto6);
    assert_eq!(only_interface(&config).target, InterfaceTarget::Any);
    let config = parse_clean("ip", "eth0:auto6:1400");
    let interface = only_interface(&config);
    assert_eq!(interface.method, AddressMethod::Auto6);
    assert_eq!(interface.target, name("eth0"));
    assert_eq!(interface.mtu, Some(1400));
}

/// "<peer> ... may be followed by a slash and a decimal number, encoding the network prefix
/// length."
#[test]
fn ip_peer_with_a_prefix_length() {
    let config = parse_clean("ip", "10.0.0.1:10.0.0.2/30::255.255.255.0::ppp0:none");
    let address = static_address(only_interface(&config));
    assert_eq!(address.peer, Some(ip("10.0.0.2")));
    assert_eq!(address.peer_prefix_len, Some(30));
    let config = parse_clean("ip", "10.0.0.1:10.0.0.2::255.255.255.0::ppp0:none");
    assert_eq!(
        static_address(only_interface(&config)).peer_prefix_len,
        None
    );
}

/// `ifname=<interface>:<MAC>`, the man page's "bootnet" example; upper-case MACs are the
/// same MAC (dracut lower-cases them for udev).
#[test]
fn ifname_names_the_nic_with_that_mac() {
    let config = parse_clean("ifname", "bootnet:4a:3f:4c:04:f8:d7");
    assert_eq!(
        config.renames,
        [Rename {
            name: "bootnet".into(),
            mac: mac("4a:3f:4c:04:f8:d7"),
        }]
    );
    let config = parse_clean("ifname", "bootnet:4A:3F:4C:04:F8:D7");
    assert_eq!(config.renames[0].mac, mac("4a:3f:4c:04:f8:d7"));
    for value in [
        "bootnet",
        "bootnet:4a:3f:4c:04:f8",
        "bootnet:4a:3f:4c:04:f8:d7:00",
        "boot/net:4a:3f:4c:04:f8:d7",
        ":4a:3f:4c:04:f8:d7",
    ] {
        parse_refused("ifname", value);
    }
}

/// `bond=<bondname>[:<bondslaves>:[:<options>[:<mtu>]]]`, "Bond without parameters assumes
/// bond=bond0:eth0,eth1:mode=balance-rr".
#[test]
fn bond_forms_of_the_man_page() {
    use crate::link::BondOption;
    use netlink_packet_route::link::{BondMode, InfoBond};
    let config = parse_clean("bond", "bond0:eth0,eth1:mode=balance-rr");
    assert_eq!(
        config.bonds,
        [BondConfig {
            name: "bond0".into(),
            slaves: vec!["eth0".into(), "eth1".into()],
            options: vec![BondOption::Setting(InfoBond::Mode(BondMode::BalanceRr))],
            mtu: None,
        }]
    );
    let default = parse_clean("bond", "");
    assert_eq!(default.bonds[0].name, "bond0");
    assert_eq!(default.bonds[0].slaves, ["eth0", "eth1"]);
    assert!(default.bonds[0].options.is_empty());
    let named = parse_clean("bond", "bond1");
    assert_eq!(named.bonds[0].name, "bond1");
    assert_eq!(named.bonds[0].slaves, ["eth0", "eth1"]);

    let full = parse_clean(
        "bond",
        "bond0:ens3,ens4:mode=active-backup,miimon=100,primary=ens4,arp_ip_target=10.0.0.1;10.0.0.2:9000",
    );
    let bond = &full.bonds[0];
    assert_eq!(bond.slaves, ["ens3", "ens4"]);
    assert_eq!(
        bond.options,
        [
            BondOption::Setting(InfoBond::Mode(BondMode::ActiveBackup)),
            BondOption::Setting(InfoBond::MiiMon(100)),
            BondOption::Primary("ens4".into()),
            BondOption::Setting(InfoBond::ArpIpTarget(vec![ip("10.0.0.1"), ip("10.0.0.2")])),
        ]
    );
    assert_eq!(bond.mtu, Some(9000));
    // Modes by number, as initscripts' BONDING_OPTS allow.
    let numbered = parse_clean(
        "bond",
        "bond0:eth0:mode=4,lacp_rate=fast,xmit_hash_policy=layer3+4",
    );
    assert_eq!(
        numbered.bonds[0].options[0],
        BondOption::Setting(InfoBond::Mode(BondMode::Ieee8023Ad))
    );
}

#[test]
fn bond_malformed_is_refused_naming_what_is_wrong() {
    for (value, named) in [
        ("bond0:eth0,eth1:mode=fastest", "mode"),
        ("bond0:eth0,eth1:miimon=often", "miimon"),
        ("bond0:eth0,eth1:frobnicate=1", "frobnicate"),
        ("bond0:eth0,eth1:miimon", "miimon"),
        ("bond0:eth0,eth1::60", "MTU"),
        ("bond0:eth0,bond0", "own slave"),
        ("bond0:eth0:mode=1:1500:extra", "too many"),
    ] {
        let warning = parse_refused("bond", value);
        assert!(warning.problem.contains(named), "{value}: {warning}");
    }
}

/// `bootdev=<interface>` is the primary interface: DHCP runs there when no ip= names one,
/// by name or (as dracut's ifup compares it) by MAC; `BOOTIF=` wins unless `rd.bootif=0`.
#[test]
fn bootdev_and_rd_bootif_choose_the_dhcp_interface() {
    assert_eq!(
        parse_clean("bootdev", "eth1").selector,
        InterfaceSelector::Name("eth1".into())
    );
    assert_eq!(
        parse_clean("bootdev", "52:54:00:12:34:56").selector,
        InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
    );
    let both = parse_pairs(&[("bootdev", "eth1"), ("BOOTIF", "01-52-54-00-12-34-56")]);
    assert!(both.warnings.is_empty());
    assert_eq!(
        both.selector,
        InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
    );
    let no_bootif = parse_pairs(&[
        ("bootdev", "eth1"),
        ("BOOTIF", "01-52-54-00-12-34-56"),
        ("rd.bootif", "0"),
    ]);
    assert!(no_bootif.warnings.is_empty());
    assert_eq!(no_bootif.selector, InterfaceSelector::Name("eth1".into()));
    // bootdev= beats a worker id's MAC, interface= beats bootdev=.
    let config = parse_pairs(&[("worker_id", "52:54:00:00:00:01"), ("bootdev", "eth1")]);
    assert_eq!(config.selector, InterfaceSelector::Name("eth1".into()));
    let config = parse_pairs(&[("interface", "eth2"), ("bootdev", "eth1")]);
    assert_eq!(config.selector, InterfaceSelector::Name("eth2".into()));
    parse_refused("bootdev", "eth 1");
    parse_refused("rd.bootif", "maybe");
}

/// `rd.peerdns=0`: "Disable DNS setting of DHCP parameters."
#[test]
fn rd_peerdns() {
    assert!(NetConfig::default().peer_dns);
    assert!(!parse_clean("rd.peerdns", "0").peer_dns);
    assert!(parse_clean("rd.peerdns", "1").peer_dns);
    parse_refused("rd.peerdns", "sometimes");
}

/// dracut's IPv6 waits: `rd.net.timeout.ipv6auto=` (default 40 s) and
/// `rd.net.timeout.ipv6dad=` (default 50 s).
#[test]
fn rd_net_timeout_ipv6() {
    let defaults = NetConfig::default();
    assert_eq!(defaults.ipv6_auto_timeout, Duration::from_secs(40));
    assert_eq!(defaults.ipv6_dad_timeout, Duration::from_secs(50));
    let config = parse_pairs(&[
        ("rd.net.timeout.ipv6auto", "5"),
        ("rd.net.timeout.ipv6dad", "7"),
    ]);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.ipv6_auto_timeout, Duration::from_secs(5));
    assert_eq!(config.ipv6_dad_timeout, Duration::from_secs(7));
    parse_refused("rd.net.timeout.ipv6auto", "soon");
}

// ---- nameserver=, hostname=, rd.route= ------------------------------------------------------

#[test]
fn nameserver_is_repeatable_in_order() {
    let config = parse_pairs(&[("nameserver", "10.0.0.2"), ("nameserver", "10.0.0.3")]);
    assert!(config.warnings.is_empty());
    assert_eq!(config.nameservers, [ip("10.0.0.2"), ip("10.0.0.3")]);
}

#[test]
fn nameserver_malformed_is_refused() {
    parse_refused("nameserver", "10.0.0.256");
    parse_refused("nameserver", "dns.example.com");
    parse_refused("nameserver", "2001:db8::53");
    parse_refused("nameserver", "10.0.0.2,10.0.0.3");
    parse_refused("nameserver", "");
}

#[test]
fn hostname_key_sets_the_host_name() {
    assert_eq!(
        parse_clean("hostname", "node1.example.com")
            .hostname
            .as_deref(),
        Some("node1.example.com")
    );
    parse_refused("hostname", "bad host");
    parse_refused("hostname", "a..b");
    parse_refused("hostname", &"x".repeat(65));
}

#[test]
fn rd_route_examples_from_the_man_page() {
    let config = parse_clean("rd.route", "192.168.200.0/24:192.168.100.222:ens10");
    assert_eq!(
        config.routes,
        [StaticRoute {
            destination: ip("192.168.200.0"),
            prefix_len: 24,
            gateway: Some(ip("192.168.100.222")),
            interface: Some("ens10".into()),
        }]
    );

    let config = parse_clean("rd.route", "192.168.200.0/24:192.168.100.222");
    assert_eq!(config.routes[0].gateway, Some(ip("192.168.100.222")));
    assert_eq!(config.routes[0].interface, None);

    let config = parse_clean("rd.route", "192.168.200.0/24::ens10");
    assert_eq!(config.routes[0].gateway, None);
    assert_eq!(config.routes[0].interface.as_deref(), Some("ens10"));

    // The netmask after the slash may be dotted too; routes are repeatable.
    let config = parse_pairs(&[
        ("rd.route", "10.0.0.0/255.0.0.0:192.168.1.1"),
        ("rd.route", "0.0.0.0/0:192.168.1.254"),
    ]);
    assert!(config.warnings.is_empty());
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.routes[0].prefix_len, 8);
    assert_eq!(config.routes[1].prefix_len, 0);
}

#[test]
fn rd_route_malformed_is_refused() {
    // The man page's IPv6 example: valid for dracut, refused here (IPv4 only).
    parse_refused("rd.route", "[2001:DB8:3::/8]:[2001:DB8:2::1]:ens10");
    parse_refused("rd.route", "192.168.200.0/24");
    parse_refused("rd.route", "192.168.200.0/24:");
    parse_refused("rd.route", "192.168.200.0:192.168.100.222");
    parse_refused("rd.route", "192.168.200.1/24:192.168.100.222");
    parse_refused("rd.route", "192.168.200.0/33:192.168.100.222");
    parse_refused("rd.route", "192.168.200.0/24:192.168.100.222:ens10:extra");
}

// ---- VLANs ------------------------------------------------------------------------------------

#[test]
fn dracut_vlan_names_in_the_four_styles_give_the_id() {
    for (vlan_name, id) in [
        ("vlan0005", 5),
        ("vlan5", 5),
        ("eth0.0005", 5),
        ("eth0.5", 5),
        ("eth0.42", 42),
        ("vlan0042", 42),
        ("vlan42", 42),
        ("eth0.0042", 42),
    ] {
        let config = parse_clean("vlan", &format!("{vlan_name}:eth0"));
        assert_eq!(
            config.vlans,
            [VlanConfig {
                parent: name("eth0"),
                id,
                name: Some(vlan_name.to_string()),
                dhcp_instead_of_parent: false,
            }]
        );
    }
}

#[test]
fn dracut_vlan_malformed_is_refused() {
    parse_refused("vlan", "eth0.42");
    parse_refused("vlan", "mgmt:eth0");
    parse_refused("vlan", "eth0.x:eth0");
    parse_refused("vlan", "vlan0:eth0");
    parse_refused("vlan", "eth0.4095:eth0");
    parse_refused("vlan", "eth0.42:eth0:extra");
    parse_refused("vlan", "eth0.42:");
}

#[test]
fn tinkerbell_vlan_id_goes_on_the_hw_addr_interface_whatever_the_order() {
    let expected = VlanConfig {
        parent: InterfaceTarget::Mac(mac("52:54:00:12:34:56")),
        id: 42,
        name: None,
        dhcp_instead_of_parent: true,
    };
    for pairs in [
        [("vlan_id", "42"), ("hw_addr", "52:54:00:12:34:56")],
        [("hw_addr", "52:54:00:12:34:56"), ("vlan_id", "42")],
    ] {
        let config = parse_pairs(&pairs);
        assert!(config.warnings.is_empty());
        assert_eq!(config.vlans, std::slice::from_ref(&expected));
        assert_eq!(
            config.selector,
            InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
        );
    }
}

#[test]
fn tinkerbell_vlan_id_without_hw_addr_follows_the_selector() {
    assert_eq!(
        parse_clean("vlan_id", "7").vlans[0].parent,
        InterfaceTarget::Any
    );
    let config = parse_pairs(&[("vlan_id", "7"), ("interface", "eno1")]);
    assert_eq!(config.vlans[0].parent, name("eno1"));
    let config = parse_pairs(&[("worker_id", "52:54:00:12:34:56"), ("vlan_id", "7")]);
    assert_eq!(
        config.vlans[0].parent,
        InterfaceTarget::Mac(mac("52:54:00:12:34:56"))
    );
}

#[test]
fn tinkerbell_vlan_id_malformed_is_refused() {
    let warning = parse_refused("vlan_id", "forty-two");
    assert!(warning.problem.contains("not a number"), "{warning}");
    parse_refused("vlan_id", "0");
    parse_refused("vlan_id", "4095");
    parse_refused("vlan_id", "65536");
    parse_refused("vlan_id", "-1");
}

/// smee's iPXE template writes `vlan_id=` with nothing when the hardware has no VLAN (its
/// `TestDefaultScript` fixture, tinkerbell/smee `internal/ipxe/script`): no VLAN, no warning.
#[test]
fn smees_empty_vlan_id_means_no_vlan_without_a_warning() {
    let smee = "vlan_id= facility=onprem syslog_host= grpc_authority=127.0.0.1:42113 \
                tinkerbell_tls=false tinkerbell_insecure_tls=false worker_id=00:01:02:03:04:05 \
                hw_addr=00:01:02:03:04:05 modules=loop,squashfs,sd-mod,usb-storage \
                intel_iommu=on iommu=pt initrd=initramfs-x86_64 console=tty0 \
                console=ttyS1,115200";
    let pairs: Vec<(&str, &str)> = smee
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .collect();
    let config = parse_pairs(&pairs);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(config.vlans.is_empty(), "{:?}", config.vlans);
    assert_eq!(
        config.selector,
        InterfaceSelector::Mac(mac("00:01:02:03:04:05"))
    );
    // A later empty `vlan_id=` undoes an earlier VLAN, as later keys replace earlier ones.
    let config = parse_pairs(&[("vlan_id", "42"), ("vlan_id", "")]);
    assert!(config.vlans.is_empty() && config.warnings.is_empty());
}

// ---- HookOS ipam= -------------------------------------------------------------------------

#[test]
fn ipam_example_from_the_brief() {
    let config = parse_clean(
        "ipam",
        "de-ad-be-ef-00-01:42:10.0.0.5:255.255.255.0:10.0.0.1:node1:10.0.0.2,10.0.0.3:example.com:10.0.0.4",
    );
    let interface = only_interface(&config);
    assert_eq!(interface.source_key, "ipam");
    assert_eq!(
        interface.target,
        InterfaceTarget::Mac(mac("de:ad:be:ef:00:01"))
    );
    assert_eq!(interface.vlan_id, Some(42));
    assert_eq!(
        static_address(interface),
        StaticAddress {
            address: ip("10.0.0.5"),
            prefix_len: 24,
            gateway: Some(ip("10.0.0.1")),
            peer: None,
            peer_prefix_len: None,
        }
    );
    assert_eq!(interface.hostname.as_deref(), Some("node1"));
    assert_eq!(interface.dns, [ip("10.0.0.2"), ip("10.0.0.3")]);
    assert_eq!(interface.search, ["example.com"]);
    assert_eq!(interface.ntp_servers, ["10.0.0.4"]);
    // The VLAN of ipam= travels with its interface, not in the vlans list.
    assert!(config.vlans.is_empty());
}

#[test]
fn ipam_example_from_smees_spec() {
    let config = parse_clean(
        "ipam",
        "de-ad-be-ef-fe-ed:30:192.168.2.193:255.255.255.0:192.168.2.1:server.example.com:\
         1.1.1.1,8.8.8.8:example.com,team.example.com:132.163.97.1,132.163.96.1",
    );
    let interface = only_interface(&config);
    assert_eq!(
        interface.target,
        InterfaceTarget::Mac(mac("de:ad:be:ef:fe:ed"))
    );
    assert_eq!(interface.vlan_id, Some(30));
    assert_eq!(static_address(interface).address, ip("192.168.2.193"));
    assert_eq!(interface.hostname.as_deref(), Some("server.example.com"));
    assert_eq!(interface.dns, [ip("1.1.1.1"), ip("8.8.8.8")]);
    assert_eq!(interface.search, ["example.com", "team.example.com"]);
    assert_eq!(interface.ntp_servers, ["132.163.97.1", "132.163.96.1"]);
}

#[test]
fn ipam_example_from_hookos_with_no_vlan_and_no_search() {
    let config = parse_clean(
        "ipam",
        "de-ad-be-ef-fe-ed::192.168.2.193:255.255.255.0:192.168.2.1:myserver:1.1.1.1,8.8.8.8::\
         132.163.97.1,132.163.96.1",
    );
    let interface = only_interface(&config);
    assert_eq!(interface.vlan_id, None);
    assert!(interface.search.is_empty());
    assert_eq!(interface.ntp_servers.len(), 2);
}

#[test]
fn ipam_optional_fields_may_be_empty_or_left_out() {
    let config = parse_clean(
        "ipam",
        "de-ad-be-ef-fe-ed::10.0.0.5:255.255.255.0:::10.0.0.2",
    );
    let interface = only_interface(&config);
    assert_eq!(static_address(interface).gateway, None);
    assert_eq!(interface.hostname, None);
    assert_eq!(interface.dns, [ip("10.0.0.2")]);
    assert!(interface.ntp_servers.is_empty());
}

#[test]
fn ipam_malformed_is_refused() {
    let good =
        "de-ad-be-ef-fe-ed:30:10.0.0.5:255.255.255.0:10.0.0.1:node1:10.0.0.2:example.com:10.0.0.4";
    parse_clean("ipam", good);
    // A MAC written with colons splits into too many fields.
    let warning = parse_refused(
        "ipam",
        "de:ad:be:ef:fe:ed:30:10.0.0.5:255.255.255.0:10.0.0.1:node1:10.0.0.2::",
    );
    assert!(warning.problem.contains("'-'"), "{warning}");
    parse_refused("ipam", &format!("{good}:extra"));
    parse_refused("ipam", &good.replace("de-ad-be-ef-fe-ed", "de-ad-be-ef-fe"));
    parse_refused(
        "ipam",
        &good.replace("de-ad-be-ef-fe-ed", "xx-ad-be-ef-fe-ed"),
    );
    parse_refused("ipam", &good.replace(":30:", ":thirty:"));
    parse_refused("ipam", &good.replace(":30:", ":4095:"));
    parse_refused("ipam", &good.replace(":30:", ":0:"));
    parse_refused("ipam", &good.replace("10.0.0.5", "10.0.0.500"));
    parse_refused("ipam", &good.replace("255.255.255.0", "255.255.0.255"));
    parse_refused("ipam", &good.replace(":10.0.0.1:", ":gateway:"));
    parse_refused("ipam", &good.replace(":10.0.0.2:", "::"));
    parse_refused(
        "ipam",
        &good.replace(":10.0.0.2:", ":10.0.0.2,dns.example:"),
    );
    parse_refused("ipam", &good.replace("example.com", "bad domain"));
    parse_refused("ipam", &good.replace(":10.0.0.5:", "::"));
    parse_refused("ipam", "");
}

// ---- interface choice, leases, carrier ----------------------------------------------------

#[test]
fn interface_selection_by_name_mac_or_worker_id() {
    assert_eq!(
        parse_clean("interface", "eno2").selector,
        InterfaceSelector::Name("eno2".into())
    );
    assert_eq!(
        parse_clean("hw_addr", "52:54:00:12:34:56").selector,
        InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
    );
    assert_eq!(
        parse_clean("worker_id", "52:54:00:12:34:56").selector,
        InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
    );
    // An agent id is a valid worker id that says nothing about interfaces.
    assert_eq!(
        parse_clean("worker_id", "machine-42").selector,
        InterfaceSelector::AllPhysical
    );
}

#[test]
fn explicit_interface_beats_hw_addr_beats_worker_id() {
    let config = parse_pairs(&[
        ("worker_id", "52:54:00:00:00:01"),
        ("hw_addr", "52:54:00:00:00:02"),
        ("interface", "eth3"),
    ]);
    assert_eq!(config.selector, InterfaceSelector::Name("eth3".into()));
    let config = parse_pairs(&[
        ("hw_addr", "52:54:00:00:00:02"),
        ("worker_id", "52:54:00:00:00:01"),
    ]);
    assert_eq!(
        config.selector,
        InterfaceSelector::Mac(mac("52:54:00:00:00:02"))
    );
}

#[test]
fn interface_choice_malformed_is_refused() {
    let warning = parse_refused("hw_addr", "52:54:00:12:34");
    assert!(warning.problem.contains("MAC"), "{warning}");
    parse_refused("hw_addr", "52:54:00:12:34:567");
    parse_refused("hw_addr", "52-54:00-12:34-56");
    parse_refused("interface", "eth/0");
    parse_refused("interface", "");
}

#[test]
fn keep_all_leases_flag() {
    assert!(parse_clean("bootkit.net.all", "1").keep_all_leases);
    assert!(parse_clean("bootkit.net.all", "true").keep_all_leases);
    assert!(!parse_clean("bootkit.net.all", "0").keep_all_leases);
    parse_refused("bootkit.net.all", "maybe");
}

#[test]
fn carrier_timeout_in_seconds_from_either_key() {
    assert_eq!(
        parse_clean("bootkit.net.carrier_timeout", "30").carrier_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        parse_clean("rd.net.timeout.carrier", "0").carrier_timeout,
        Duration::ZERO
    );
    parse_refused("bootkit.net.carrier_timeout", "ten");
    parse_refused("bootkit.net.carrier_timeout", "-5");
    parse_refused("bootkit.net.carrier_timeout", "1.5");
    parse_refused("bootkit.net.carrier_timeout", "86401");
    parse_refused("bootkit.net.carrier_timeout", "99999999999999999999999");
}

// ---- NTP and proxies ------------------------------------------------------------------------

#[test]
fn ntp_servers_from_both_keys_in_order() {
    let config = parse_pairs(&[
        ("ntp", "10.0.0.4,pool.ntp.org"),
        ("ntp_servers", "time.example.com,"),
    ]);
    assert!(config.warnings.is_empty());
    assert_eq!(
        config.ntp_servers,
        ["10.0.0.4", "pool.ntp.org", "time.example.com"]
    );
}

#[test]
fn ntp_malformed_is_refused_as_a_whole() {
    let warning = parse_refused("ntp", "10.0.0.4,bad server");
    assert!(warning.problem.contains("NTP"), "{warning}");
    parse_refused("ntp_servers", "time.example.com:123");
}

#[test]
fn proxies_are_recorded_in_order_with_their_spelling() {
    let config = parse_pairs(&[
        ("HTTP_PROXY", "http://proxy:3128"),
        ("https_proxy", "http://user:pw@proxy:3128"),
        ("ip", "dhcp"),
        ("NO_PROXY", "localhost,10.0.0.0/8"),
        ("no_proxy", ".example.com"),
        ("HTTPS_PROXY", "http://proxy:3128"),
        ("http_proxy", "http://proxy:3128"),
        ("Http_Proxy", "not one of ours"),
    ]);
    assert!(config.warnings.is_empty());
    let keys: Vec<&str> = config
        .proxy_env
        .iter()
        .map(|(key, _)| key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "HTTP_PROXY",
            "https_proxy",
            "NO_PROXY",
            "no_proxy",
            "HTTPS_PROXY",
            "http_proxy"
        ]
    );
    assert_eq!(config.proxy_env[1].1, "http://user:pw@proxy:3128");
}

// ---- whole command lines ----------------------------------------------------------------------

#[test]
fn a_bad_value_does_not_spoil_the_good_ones() {
    let config = parse_pairs(&[
        ("ip", "eth0:dhcp"),
        ("ipam", "de:ad:be:ef:fe:ed::10.0.0.5:24::::"),
        ("nameserver", "10.0.0.2"),
        ("vlan_id", "5000"),
        ("ntp", "pool.ntp.org"),
    ]);
    let keys: Vec<&str> = config.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["ipam", "vlan_id"]);
    assert_eq!(only_interface(&config).target, name("eth0"));
    assert_eq!(config.nameservers, [ip("10.0.0.2")]);
    assert!(config.vlans.is_empty());
    assert_eq!(config.ntp_servers, ["pool.ntp.org"]);
}

#[test]
fn smee_command_line_with_vlan() {
    // What smee's iPXE script passes, plus a site's proxy and NTP.
    let config = parse_pairs(&[
        ("facility", "onprem"),
        ("syslog_host", "10.0.0.1"),
        ("grpc_authority", "10.0.0.1:42113"),
        ("tinkerbell_tls", "false"),
        ("worker_id", "52:54:00:12:34:56"),
        ("hw_addr", "52:54:00:12:34:56"),
        ("vlan_id", "100"),
        ("HTTPS_PROXY", "http://10.0.0.9:3128"),
        ("ntp", "10.0.0.1"),
    ]);
    assert!(config.warnings.is_empty());
    assert!(config.interfaces.is_empty());
    assert_eq!(
        config.selector,
        InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
    );
    assert_eq!(config.vlans.len(), 1);
    assert_eq!(config.vlans[0].id, 100);
    assert!(config.vlans[0].dhcp_instead_of_parent);
}

#[test]
fn mac_addresses_read_either_separator_and_show_with_colons() {
    assert_eq!(mac("DE-AD-BE-EF-00-01").to_string(), "de:ad:be:ef:00:01");
    assert_eq!(mac("de:ad:be:ef:00:01"), mac("de-ad-be-ef-00-01"));
    for bad in [
        "",
        "de:ad:be:ef:00",
        "de:ad:be:ef:00:01:02",
        "d:ad:be:ef:00:01",
        "+1:ad:be:ef:00:01",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
    }
}

// ---- robustness ---------------------------------------------------------------------------------

/// xorshift64*: deterministic, so a failure reproduces, and no crate needed.
struct Garbler(u64);

impl Garbler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).unwrap()).unwrap()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "ip",
    "ipam",
    "nameserver",
    "rd.route",
    "vlan",
    "hostname",
    "vlan_id",
    "interface",
    "hw_addr",
    "worker_id",
    "bootkit.net.all",
    "bootkit.net.carrier_timeout",
    "rd.net.timeout.carrier",
    "ntp",
    "ntp_servers",
    "HTTP_PROXY",
    "no_proxy",
    "unrelated",
];

const VALID_VALUES: &[&str] = &[
    "dhcp",
    "eth0:dhcp:9000:52:54:00:12:34:56",
    "192.168.1.10::192.168.1.1:255.255.255.0:node1:eth0:none",
    "192.168.1.10::192.168.1.1:255.255.255.0:node1:eth0:none:192.168.1.2:192.168.1.3",
    "10.0.0.5:10.0.0.6/30:10.0.0.6:255.255.255.252:ptp:eth2:none:1400:52:54:00:ab:cd:ef",
    "de-ad-be-ef-00-01:42:10.0.0.5:255.255.255.0:10.0.0.1:node1:10.0.0.2,10.0.0.3:example.com:10.0.0.4",
    "192.168.200.0/24:192.168.100.222:ens10",
    "eth0.0042:eth0",
    "52:54:00:12:34:56",
    "4094",
    "10.0.0.4,pool.ntp.org",
];

const FRAGMENTS: &[&str] = &[
    ":",
    ":",
    ":",
    "-",
    ".",
    ",",
    "/",
    "[",
    "]",
    "0",
    "1",
    "24",
    "255",
    "4094",
    "4095",
    "65536",
    "10.0.0.1",
    "255.255.255.0",
    "dhcp",
    "none",
    "off",
    "dhcp6",
    "eth0",
    "vlan",
    "de-ad-be-ef-00-01",
    "52:54:00:12:34:56",
    "ff",
    "é",
    "\u{0}",
    "\u{202e}",
    " ",
    "=",
    "\"",
    "99999999999999999999999",
    "",
    "x",
];

/// A random value: fragments glued together, or a valid example with characters replaced,
/// deleted, duplicated or truncated (at character boundaries, as real strings are).
fn garbled_value(random: &mut Garbler) -> String {
    if random.below(2) == 0 {
        let count = random.below(16);
        return (0..count).map(|_| random.pick(FRAGMENTS)).collect();
    }
    let mut chars: Vec<char> = random.pick(VALID_VALUES).chars().collect();
    for _ in 0..=random.below(4) {
        if chars.is_empty() {
            break;
        }
        let at = random.below(chars.len());
        match random.below(5) {
            0 => {
                chars.remove(at);
            }
            1 => chars[at] = random.pick(FRAGMENTS).chars().next().unwrap_or('?'),
            2 => chars.insert(at, ':'),
            3 => chars.truncate(at),
            _ => {
                let copy = chars[at..].to_vec();
                chars.extend(copy);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn thousands_of_garbled_values_never_panic_and_every_warning_names_its_key() {
    let mut random = Garbler(0x5eed_b007_c0de_0001);
    for _ in 0..2_000 {
        let pairs: Vec<(String, String)> = (0..random.below(12))
            .map(|_| (random.pick(KEYS).to_string(), garbled_value(&mut random)))
            .collect();
        let config = parse(&pairs);

        assert!(config.warnings.len() <= pairs.len());
        for warning in &config.warnings {
            assert!(
                pairs
                    .iter()
                    .any(|(key, value)| *key == warning.key && *value == warning.value),
                "warning for a pair that was not given: {warning}"
            );
            assert!(warning.problem.contains("expected"), "{warning}");
        }
        for interface in &config.interfaces {
            if let AddressMethod::Static(address) = interface.method {
                assert!(address.prefix_len <= 32);
            }
            assert!(interface.mtu.is_none_or(|mtu| mtu >= 68));
            assert!(interface.vlan_id.is_none_or(|id| (1..=4094).contains(&id)));
        }
        for vlan in &config.vlans {
            assert!((1..=4094).contains(&vlan.id));
        }
        assert!(config.carrier_timeout <= MAX_CARRIER_TIMEOUT);
    }
}

#[test]
fn every_valid_example_is_accepted_by_its_key() {
    for (key, value) in [
        ("ip", VALID_VALUES[0]),
        ("ip", VALID_VALUES[1]),
        ("ip", VALID_VALUES[2]),
        ("ip", VALID_VALUES[3]),
        ("ip", VALID_VALUES[4]),
        ("ipam", VALID_VALUES[5]),
        ("rd.route", VALID_VALUES[6]),
        ("vlan", VALID_VALUES[7]),
        ("hw_addr", VALID_VALUES[8]),
        ("vlan_id", VALID_VALUES[9]),
        ("ntp", VALID_VALUES[10]),
    ] {
        parse_clean(key, value);
    }
}

/// pxelinux's `BOOTIF=01-<mac>` names the NIC the firmware booted from: DHCP goes there
/// (dracut's rd.bootif), unless hw_addr= or interface= say otherwise; it beats worker_id.
#[test]
fn bootif_selects_the_boot_nic() {
    let config = parse_clean("BOOTIF", "01-52-54-00-12-34-56");
    assert_eq!(
        config.selector,
        InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
    );
    let config = parse_pairs(&[
        ("worker_id", "52:54:00:00:00:01"),
        ("BOOTIF", "01-52-54-00-12-34-56"),
    ]);
    assert_eq!(
        config.selector,
        InterfaceSelector::Mac(mac("52:54:00:12:34:56"))
    );
    let config = parse_pairs(&[
        ("BOOTIF", "01-52-54-00-12-34-56"),
        ("hw_addr", "52:54:00:00:00:02"),
    ]);
    assert_eq!(
        config.selector,
        InterfaceSelector::Mac(mac("52:54:00:00:00:02"))
    );
    let warning = parse_refused("BOOTIF", "52-54-00-12-34-56");
    assert!(warning.problem.contains("01-"), "{warning}");
}

/// dracut's network keys this stack does not apply are named in a warning, never skipped in
/// silence (dracut.cmdline(7) forms).
#[test]
fn dracut_network_keys_not_applied_are_named() {
    for (key, value) in [
        ("team", "team0:eth0,eth1"),
        ("bridge", "br0:eth0"),
        ("rd.net.timeout.dhcp", "10"),
        ("rd.net.dhcp.retry", "3"),
    ] {
        let warning = parse_refused(key, value);
        assert!(
            warning.problem.contains("not supported") && warning.to_string().contains(key),
            "{warning}"
        );
    }
}
