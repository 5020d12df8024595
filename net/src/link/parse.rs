//! Turning rtnetlink link messages into [`LinkInfo`].

use std::path::Path;

use netlink_packet_route::link::{
    InfoData, InfoVlan, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};

use super::kind::{self, KindFacts, LinkKind};

/// One network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The kernel's interface index (ifindex).
    pub index: u32,
    /// The interface name (`eth0`, `eth0.42`).
    pub name: String,
    /// The current hardware address, when it is a 6-byte MAC.
    pub mac: Option<[u8; 6]>,
    /// The burned-in MAC (IFLA_PERM_ADDRESS, Linux >= 5.6), which differs from `mac` on bond
    /// ports or after a MAC change; `hw_addr=` names this one.
    pub permanent_mac: Option<[u8; 6]>,
    /// 0 when the kernel did not report one.
    pub mtu: u32,
    /// IFF_UP: administratively up.
    pub admin_up: bool,
    /// IFF_LOWER_UP: the driver reports carrier (for veth: the peer is up).
    pub carrier: bool,
    /// What kind of interface it is.
    pub kind: LinkKind,
    /// The rtnetlink kind (IFLA_INFO_KIND: `veth`, `bridge`, `vlan`...), for logs.
    pub driver_kind: Option<String>,
    /// For VLAN interfaces: the 802.1Q id and the parent's index.
    pub vlan: Option<VlanInfo>,
    /// The index of the bond (or bridge) this interface is enslaved to (IFLA_MASTER).
    pub controller: Option<u32>,
}

/// A VLAN interface's 802.1Q id and parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanInfo {
    /// 802.1Q VLAN id, 1-4094.
    pub id: u16,
    /// The parent interface's index.
    pub parent: u32,
}

/// Builds a [`LinkInfo`] from a RTM_NEWLINK message; `sysfs_root` decides the kind.
pub fn link_info(msg: &LinkMessage, sysfs_root: &Path) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        permanent_mac: None,
        mtu: 0,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        kind: LinkKind::Virtual,
        driver_kind: None,
        vlan: None,
        controller: None,
    };
    let mut vlan_id = None;
    let mut parent = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name.clone(),
            LinkAttribute::Address(bytes) => info.mac = mac(bytes),
            LinkAttribute::PermAddress(bytes) => info.permanent_mac = mac(bytes),
            LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
            LinkAttribute::Link(index) => parent = Some(*index),
            LinkAttribute::Controller(index) => info.controller = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                for nested in infos {
                    match nested {
                        NlLinkInfo::Kind(k) => info.driver_kind = Some(k.to_string()),
                        NlLinkInfo::Data(InfoData::Vlan(data)) => vlan_id = vlan_id_of(data),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let facts = KindFacts {
        name: &info.name,
        link_layer_type: u16::from(msg.header.link_layer_type),
        loopback_flag: msg.header.flags.contains(LinkFlags::Loopback),
        info_kind: info.driver_kind.as_deref(),
    };
    info.kind = kind::detect(sysfs_root, &facts);
    if let (Some(id), Some(parent)) = (vlan_id, parent) {
        info.vlan = Some(VlanInfo { id, parent });
    }
    info
}

fn mac(bytes: &[u8]) -> Option<[u8; 6]> {
    // All-zero is what loopback and tun report: no hardware address at all.
    <[u8; 6]>::try_from(bytes).ok().filter(|m| m != &[0; 6])
}

fn vlan_id_of(data: &[InfoVlan]) -> Option<u16> {
    data.iter().find_map(|d| match d {
        InfoVlan::Id(id) => Some(*id),
        _ => None,
    })
}

/// `aa:bb:cc:dd:ee:ff`, for error messages.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{InfoKind, LinkLayerType};

    fn message(attrs: Vec<LinkAttribute>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.link_layer_type = LinkLayerType::Ether;
        msg.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        msg.attributes = attrs;
        msg
    }

    #[test]
    fn vlan_message() {
        let sys = tempfile::tempdir().unwrap();
        let msg = message(vec![
            LinkAttribute::IfName("eth0.42".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Link(2),
            LinkAttribute::LinkInfo(vec![
                NlLinkInfo::Kind(InfoKind::Vlan),
                NlLinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(42)])),
            ]),
        ]);
        let info = link_info(&msg, sys.path());
        assert_eq!(info.index, 7);
        assert_eq!(info.name, "eth0.42");
        assert_eq!(info.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(info.mtu, 1500);
        assert!(info.admin_up && info.carrier);
        assert_eq!(info.kind, LinkKind::Vlan);
        assert_eq!(info.driver_kind.as_deref(), Some("vlan"));
        assert_eq!(info.vlan, Some(VlanInfo { id: 42, parent: 2 }));
    }

    #[test]
    fn zero_or_short_addresses_are_no_mac() {
        assert_eq!(mac(&[0; 6]), None);
        assert_eq!(mac(&[1, 2, 3]), None);
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 0x12, 0x34, 0xab]),
            "52:54:00:12:34:ab"
        );
    }
}
