//! Building replies and choosing where they go (RFC 2131 §4.1, PXE spec §2.2).

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};

use crate::boot::BootInfo;
use crate::client::NetbootClass;

pub(crate) const SERVER_PORT: u16 = 67;
pub(crate) const CLIENT_PORT: u16 = 68;

/// PXE vendor option 43, sub-option 6 (PXE_DISCOVERY_CONTROL) = bit 3: "boot the file named
/// in this offer; no boot-server discovery, no menu".
const PXE_USE_OFFERED_BOOT_FILE: [u8; 4] = [6, 1, 0b1000, 255];

/// Lease parameters for an address-carrying reply.
pub(crate) struct AddressInfo<'a> {
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: &'a [Ipv4Addr],
    pub hostname: Option<&'a str>,
}

/// A reply skeleton: the request's xid, flags, giaddr and chaddr, message type, our server
/// id, and the relay's option 82 echoed (RFC 3046 §2.2).
pub(crate) fn reply_to(request: &Message, kind: MessageType, server_ip: Ipv4Addr) -> Message {
    let mut reply = Message::default();
    reply
        .set_opcode(Opcode::BootReply)
        .set_htype(request.htype())
        .set_xid(request.xid())
        .set_flags(request.flags())
        .set_giaddr(request.giaddr())
        .set_chaddr(request.chaddr());
    let options = reply.opts_mut();
    options.insert(DhcpOption::MessageType(kind));
    options.insert(DhcpOption::ServerIdentifier(server_ip));
    if let Some(relay_info) = request.opts().get(OptionCode::RelayAgentInformation) {
        options.insert(relay_info.clone());
    }
    reply
}

pub(crate) fn add_address(
    reply: &mut Message,
    ip: Ipv4Addr,
    lease_seconds: u32,
    info: &AddressInfo,
) {
    reply.set_yiaddr(ip);
    let options = reply.opts_mut();
    options.insert(DhcpOption::AddressLeaseTime(lease_seconds));
    options.insert(DhcpOption::Renewal(lease_seconds / 2));
    options.insert(DhcpOption::Rebinding(lease_seconds / 8 * 7));
    add_network(reply, info);
}

/// Subnet, router, DNS and hostname: in a lease, and in an INFORM's answer.
pub(crate) fn add_network(reply: &mut Message, info: &AddressInfo) {
    let options = reply.opts_mut();
    options.insert(DhcpOption::SubnetMask(info.netmask));
    if let Some(router) = info.router {
        options.insert(DhcpOption::Router(vec![router]));
    }
    if !info.dns.is_empty() {
        options.insert(DhcpOption::DomainNameServer(info.dns.to_vec()));
    }
    if let Some(hostname) = info.hostname {
        options.insert(DhcpOption::Hostname(hostname.to_owned()));
    }
}

pub(crate) fn add_boot(reply: &mut Message, boot: &BootInfo, server_ip: Ipv4Addr) {
    reply.set_siaddr(server_ip);
    // The file field holds 128 bytes; a longer script URL travels in option 67 only, which
    // iPXE prefers anyway.
    if boot.file.len() <= 128 {
        reply.set_fname_str(&boot.file);
    }
    let options = reply.opts_mut();
    options.insert(DhcpOption::BootfileName(boot.file.as_bytes().to_vec()));
    // UEFI HTTP boot (UEFI spec 2.10 §24.7.2) takes the server from the URL; option 66
    // would only suggest TFTP.
    if boot.class == NetbootClass::Pxe {
        options.insert(DhcpOption::TFTPServerName(
            server_ip.to_string().into_bytes(),
        ));
    }
    options.insert(DhcpOption::ClassIdentifier(
        boot.class.vendor_class().to_vec(),
    ));
    if boot.over_tftp && boot.class == NetbootClass::Pxe {
        options.insert(DhcpOption::VendorExtensions(
            PXE_USE_OFFERED_BOOT_FILE.to_vec(),
        ));
    }
    if let Some(identifier) = &boot.machine_identifier {
        options.insert(DhcpOption::ClientMachineIdentifier(identifier.clone()));
    }
}

pub(crate) fn nak(request: &Message, server_ip: Ipv4Addr, reason: &str) -> Message {
    let mut reply = reply_to(request, MessageType::Nak, server_ip);
    reply
        .opts_mut()
        .insert(DhcpOption::Message(reason.to_owned()));
    reply
}

/// Where a reply on port 67 goes: to the relay, to the client's own address, or broadcast
/// (a client without an address cannot receive unicast before ARP knows it; a NAK'd
/// client's address is no good).
pub(crate) fn destination(request: &Message, kind: MessageType) -> SocketAddrV4 {
    let giaddr = request.giaddr();
    let ciaddr = request.ciaddr();
    if giaddr != Ipv4Addr::UNSPECIFIED {
        SocketAddrV4::new(giaddr, SERVER_PORT)
    } else if ciaddr != Ipv4Addr::UNSPECIFIED && kind != MessageType::Nak {
        SocketAddrV4::new(ciaddr, CLIENT_PORT)
    } else {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ciaddr: Ipv4Addr, giaddr: Ipv4Addr) -> Message {
        Message::new(
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            giaddr,
            &[2, 0, 0, 0, 0, 1],
        )
    }

    #[test]
    fn replies_go_to_the_relay_then_the_client_address_then_broadcast() {
        let relay = Ipv4Addr::new(10, 9, 0, 1);
        let client = Ipv4Addr::new(10, 0, 0, 7);
        let none = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            destination(&request(client, relay), MessageType::Ack),
            SocketAddrV4::new(relay, 67)
        );
        assert_eq!(
            destination(&request(client, none), MessageType::Ack),
            SocketAddrV4::new(client, 68)
        );
        assert_eq!(
            destination(&request(client, none), MessageType::Nak),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
        );
        assert_eq!(
            destination(&request(none, none), MessageType::Offer),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
        );
    }
}
