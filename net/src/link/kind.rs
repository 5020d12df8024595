//! What kind of interface a link is, from rtnetlink facts and sysfs.
//!
//! The DHCP client runs on physical Ethernet only unless asked otherwise, so this decides
//! which interfaces get a lease. rtnetlink alone cannot tell a NIC from a veth or a WLAN
//! card (all are ARPHRD_ETHER); sysfs can: hardware has a `device` link, wireless has
//! `wireless/` or `phy80211`.

use std::path::Path;

/// `ARPHRD_ETHER` (linux/if_arp.h).
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK` (linux/if_arp.h).
pub const ARPHRD_LOOPBACK: u16 = 772;

/// The kind of a network interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// The loopback interface (`ARPHRD_LOOPBACK`).
    Loopback,
    /// A hardware Ethernet NIC: has a `device` in sysfs, is ARPHRD_ETHER, not wireless.
    PhysicalEthernet,
    /// A WLAN interface (`wireless/` or `phy80211` in sysfs).
    Wireless,
    /// An 802.1Q VLAN on top of another interface.
    Vlan,
    /// Software interfaces without a `device`: bridge, veth, tun/tap, dummy, bond...
    Virtual,
    /// Hardware that is not Ethernet (InfiniBand, CAN, raw-IP WWAN...).
    OtherHardware,
}

/// The rtnetlink facts about a link that its kind depends on.
#[derive(Debug, Clone, Copy)]
pub struct KindFacts<'a> {
    pub name: &'a str,
    /// ARPHRD_* of the link (`LinkHeader::link_layer_type`).
    pub link_layer_type: u16,
    /// IFF_LOOPBACK is set.
    pub loopback_flag: bool,
    /// IFLA_INFO_KIND, e.g. `vlan`, `veth`, `bridge`; None for plain hardware.
    pub info_kind: Option<&'a str>,
}

/// Classifies a link; `sysfs_root` is normally `/sys` (a fake tree in tests).
///
/// Order matters: a VLAN on a NIC has no `device` but must not be called Virtual, and a
/// WLAN card has a `device` and is ARPHRD_ETHER but must not be called Ethernet.
pub fn detect(sysfs_root: &Path, facts: &KindFacts<'_>) -> LinkKind {
    if facts.loopback_flag || facts.link_layer_type == ARPHRD_LOOPBACK {
        return LinkKind::Loopback;
    }
    if facts.info_kind == Some("vlan") {
        return LinkKind::Vlan;
    }
    // A name with '/' or ".." would escape the sysfs tree; the kernel forbids both, but the
    // name came over a socket, so do not trust it for a path.
    if facts.name.is_empty() || facts.name.contains('/') || facts.name == "." || facts.name == ".."
    {
        return LinkKind::Virtual;
    }
    let dir = sysfs_root.join("class/net").join(facts.name);
    // symlink_metadata: `phy80211` and `device` are symlinks; their presence is the fact,
    // whether or not the target resolves in a fake tree.
    let exists = |entry: &str| dir.join(entry).symlink_metadata().is_ok();
    if exists("wireless") || exists("phy80211") {
        return LinkKind::Wireless;
    }
    if !exists("device") {
        return LinkKind::Virtual;
    }
    if facts.link_layer_type == ARPHRD_ETHER {
        LinkKind::PhysicalEthernet
    } else {
        LinkKind::OtherHardware
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn facts(name: &str) -> KindFacts<'_> {
        KindFacts {
            name,
            link_layer_type: ARPHRD_ETHER,
            loopback_flag: false,
            info_kind: None,
        }
    }

    fn fake_sysfs() -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("class/net");
        let devices = dir.path().join("devices/pci0000:00/0000:00:03.0");
        std::fs::create_dir_all(&devices).expect("create fake device");
        let mk = |name: &str, entries: &[&str]| {
            let iface = net.join(name);
            std::fs::create_dir_all(&iface).expect("create fake iface");
            for entry in entries {
                match *entry {
                    "wireless" => std::fs::create_dir(iface.join("wireless")).expect("mkdir"),
                    other => {
                        std::os::unix::fs::symlink(&devices, iface.join(other)).expect("symlink")
                    }
                }
            }
        };
        mk("lo", &[]);
        mk("eth0", &["device"]);
        mk("wlan0", &["device", "wireless"]);
        mk("wlp2s0", &["device", "phy80211"]);
        mk("br0", &[]);
        mk("veth0", &[]);
        mk("eth0.42", &[]);
        mk("ib0", &["device"]);
        // A dangling `device` link still means hardware: the link is the fact.
        std::os::unix::fs::symlink(dir.path().join("nowhere"), net.join("eth1")).expect("symlink");
        std::fs::create_dir_all(net.join("eth2")).expect("mkdir");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), net.join("eth2/device"))
            .expect("symlink");
        dir
    }

    #[test]
    fn physical_ethernet_has_a_device() {
        let sys = fake_sysfs();
        assert_eq!(
            detect(sys.path(), &facts("eth0")),
            LinkKind::PhysicalEthernet
        );
        assert_eq!(
            detect(sys.path(), &facts("eth2")),
            LinkKind::PhysicalEthernet
        );
    }

    #[test]
    fn wireless_is_not_ethernet() {
        let sys = fake_sysfs();
        assert_eq!(detect(sys.path(), &facts("wlan0")), LinkKind::Wireless);
        assert_eq!(detect(sys.path(), &facts("wlp2s0")), LinkKind::Wireless);
    }

    #[test]
    fn software_links_are_virtual() {
        let sys = fake_sysfs();
        for name in ["br0", "veth0", "eth1", "not-in-sysfs"] {
            let f = KindFacts {
                info_kind: Some("veth"),
                ..facts(name)
            };
            assert_eq!(detect(sys.path(), &f), LinkKind::Virtual, "{name}");
        }
    }

    #[test]
    fn loopback_by_type_or_flag() {
        let sys = fake_sysfs();
        let by_type = KindFacts {
            link_layer_type: ARPHRD_LOOPBACK,
            ..facts("lo")
        };
        assert_eq!(detect(sys.path(), &by_type), LinkKind::Loopback);
        let by_flag = KindFacts {
            loopback_flag: true,
            ..facts("lo")
        };
        assert_eq!(detect(sys.path(), &by_flag), LinkKind::Loopback);
    }

    #[test]
    fn vlan_by_info_kind() {
        let sys = fake_sysfs();
        let f = KindFacts {
            info_kind: Some("vlan"),
            ..facts("eth0.42")
        };
        assert_eq!(detect(sys.path(), &f), LinkKind::Vlan);
    }

    #[test]
    fn non_ethernet_hardware() {
        let sys = fake_sysfs();
        let f = KindFacts {
            link_layer_type: 32,
            ..facts("ib0")
        };
        assert_eq!(detect(sys.path(), &f), LinkKind::OtherHardware);
    }

    #[test]
    fn hostile_names_do_not_escape_sysfs() {
        let sys = fake_sysfs();
        for name in ["", ".", "..", "../net/eth0", "a/b"] {
            assert_eq!(
                detect(sys.path(), &facts(name)),
                LinkKind::Virtual,
                "{name:?}"
            );
        }
    }
}
