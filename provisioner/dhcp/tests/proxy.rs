//! proxyDHCP on the standard ports (67 and 4011) in network namespaces: PXE clients get boot
//! information and never an address; everything else is left to the site's DHCP server.

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use bootkit_dhcp::Mode;
use dhcproto::Encodable;
use dhcproto::v4::relay::{RelayAgentInformation, RelayInfo};
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use support::*;

fn proxy_server(net: &TestNet, policy: Arc<TestPolicy>) -> RunningServer {
    net.start(config(Mode::Proxy), policy)
}

/// Broadcasts a DISCOVER from the client side and returns the proxy's OFFER.
fn proxy_offer(net: &TestNet, discover: Message) -> Message {
    net.in_client(|| {
        let client = Endpoint::dhcp_client();
        client.send(&discover, broadcast_to_server());
        client.receive(discover.xid()).expect("no proxy offer").0
    })
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn bios_client_gets_undionly_over_tftp_without_an_address() {
    let net = TestNet::new();
    let policy = Arc::new(TestPolicy::default());
    let server = proxy_server(&net, policy.clone());
    let offer = proxy_offer(&net, pxe_discover(mac(1), 0, 11));
    assert_eq!(message_type(&offer), Some(MessageType::Offer));
    assert_eq!(
        offer.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "proxyDHCP must not hand out addresses"
    );
    assert_eq!(offer.siaddr(), SERVER_IP);
    assert_eq!(boot_file(&offer).as_deref(), Some("undionly.kpxe"));
    assert_eq!(file_field(&offer), "undionly.kpxe");
    let options = offer.opts();
    assert_eq!(
        options.get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER_IP))
    );
    assert_eq!(
        options.get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    assert_eq!(
        options.get(OptionCode::TFTPServerName),
        Some(&DhcpOption::TFTPServerName(b"10.77.0.1".to_vec()))
    );
    assert!(
        options.get(OptionCode::VendorExtensions).is_some(),
        "no PXE discovery control"
    );
    let mut guid = vec![0];
    guid.extend_from_slice(&SMBIOS_UUID_ON_THE_WIRE);
    assert_eq!(
        options.get(OptionCode::ClientMachineIdentifier),
        Some(&DhcpOption::ClientMachineIdentifier(guid)),
        "option 97 must be echoed"
    );
    let asked = policy.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].mac, mac_text(mac(1)));
    assert_eq!(asked[0].arch, Some(0));
    assert_eq!(asked[0].uuid.as_deref(), Some(SMBIOS_UUID));
    assert!(!asked[0].is_ipxe);
    drop(server);
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn uefi_x64_client_gets_ipxe_efi_and_its_boot_server_request_is_acked() {
    let net = TestNet::new();
    let server = proxy_server(&net, Arc::new(TestPolicy::default()));
    let boot_server = SocketAddrV4::new(SERVER_IP, server.boot_server.unwrap().port());
    assert_eq!(boot_server.port(), 4011);
    let (offer, ack, ack_from) = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        client.send(&pxe_discover(mac(2), 7, 21), broadcast_to_server());
        let (offer, _) = client.receive(21).expect("no proxy offer");
        // After the site's DHCP server gave it an address, the firmware asks the boot server.
        let firmware = Endpoint::bind(SocketAddrV4::new(CLIENT_SIDE_IP, 0));
        let mut request = request(mac(2), CLIENT_SIDE_IP, None, 22);
        request.set_ciaddr(CLIENT_SIDE_IP);
        add_pxe_options(&mut request, 7);
        firmware.send(&request, boot_server);
        let (ack, from) = firmware.receive(22).expect("no ACK from the boot server");
        (offer, ack, from)
    });
    assert_eq!(boot_file(&offer).as_deref(), Some("ipxe.efi"));
    assert_eq!(message_type(&ack), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(boot_file(&ack).as_deref(), Some("ipxe.efi"));
    assert_eq!(ack_from, SocketAddr::from(boot_server));
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn ipxe_client_gets_its_script_url_instead_of_another_ipxe() {
    let net = TestNet::new();
    let _server = proxy_server(&net, Arc::new(TestPolicy::default()));
    let offer = proxy_offer(&net, ipxe_discover(mac(3), 7, 31));
    let url = script_url(&mac_text(mac(3)));
    assert_eq!(boot_file(&offer), Some(url.clone()));
    assert_eq!(file_field(&offer), url);
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn request_on_67_naming_us_is_acked_and_one_for_the_site_server_is_not() {
    let net = TestNet::new();
    let server = proxy_server(&net, Arc::new(TestPolicy::default()));
    let (ours, others_reply) = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        let mut to_site = request(
            mac(4),
            CLIENT_SIDE_IP,
            Some(Ipv4Addr::new(10, 77, 0, 254)),
            41,
        );
        add_pxe_options(&mut to_site, 0);
        client.send(&to_site, broadcast_to_server());
        let mut to_us = request(mac(4), CLIENT_SIDE_IP, Some(SERVER_IP), 42);
        add_pxe_options(&mut to_us, 0);
        client.send(&to_us, broadcast_to_server());
        let (ours, _) = client.receive(42).expect("no ACK to a request naming us");
        server.wait_for(received, 2);
        (ours, client.queued_replies())
    });
    assert_eq!(message_type(&ours), Some(MessageType::Ack));
    assert_eq!(ours.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(others_reply.iter().all(|reply| reply.xid() != 41));
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn unknown_architecture_refused_client_and_non_pxe_client_get_no_answer() {
    let net = TestNet::new();
    let policy = Arc::new(TestPolicy {
        refused: vec![mac_text(mac(6))],
        ..TestPolicy::default()
    });
    let server = proxy_server(&net, policy.clone());
    let replies = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        client.send(&pxe_discover(mac(5), 12, 51), broadcast_to_server());
        client.send(&pxe_discover(mac(6), 7, 52), broadcast_to_server());
        client.send(&discover(mac(7), 53), broadcast_to_server());
        server.wait_for(ignored, 3);
        client.queued_replies()
    });
    assert!(replies.is_empty(), "unexpected replies: {replies:?}");
    let asked: Vec<String> = policy
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.mac.clone())
        .collect();
    assert_eq!(
        asked,
        vec![mac_text(mac(6))],
        "only a bootable PXE client reaches the policy"
    );
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn malformed_packets_are_counted_and_the_server_keeps_answering() {
    let net = TestNet::new();
    let server = proxy_server(&net, Arc::new(TestPolicy::default()));
    let offer = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        client.send_bytes(b"\x01\x01\x06\x00garbage", broadcast_to_server());
        let mut long_hardware_address = pxe_discover(mac(8), 0, 61).to_vec().unwrap();
        long_hardware_address[2] = 200;
        client.send_bytes(&long_hardware_address, broadcast_to_server());
        server.wait_for(errors, 2);
        client.send(&pxe_discover(mac(8), 0, 62), broadcast_to_server());
        client.receive(62)
    });
    assert!(
        offer.is_some(),
        "the server stopped answering after bad packets"
    );
    assert_eq!(errors(&server.counters), 2);
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn relayed_request_is_answered_by_unicast_to_the_relay_with_option_82() {
    let net = TestNet::new();
    let _server = proxy_server(&net, Arc::new(TestPolicy::default()));
    let mut relay_info = RelayAgentInformation::default();
    relay_info.insert(RelayInfo::AgentCircuitId(b"rack7-port3".to_vec()));
    let (offer, from, broadcast_copies) = net.in_client(|| {
        let relay = Endpoint::relay();
        let client_port = Endpoint::dhcp_client();
        let mut relayed = pxe_discover(mac(9), 7, 71);
        relayed.set_giaddr(CLIENT_SIDE_IP).set_hops(1);
        relayed
            .opts_mut()
            .insert(DhcpOption::RelayAgentInformation(relay_info.clone()));
        relay.send(&relayed, SocketAddrV4::new(SERVER_IP, 67));
        let (offer, from) = relay.receive(71).expect("the relay got no reply");
        (offer, from, client_port.queued_replies())
    });
    assert_eq!(from, SocketAddr::from((SERVER_IP, 67)));
    assert_eq!(offer.giaddr(), CLIENT_SIDE_IP);
    assert_eq!(boot_file(&offer).as_deref(), Some("ipxe.efi"));
    assert_eq!(
        offer.opts().get(OptionCode::RelayAgentInformation),
        Some(&DhcpOption::RelayAgentInformation(relay_info))
    );
    assert!(
        broadcast_copies.is_empty(),
        "a relayed request must not be answered by broadcast"
    );
}

/// UEFI spec 2.10 §24.7.2 and EDK2's HttpBootDxe: an offer is an HTTP boot offer only with
/// option 60 `HTTPClient`, and carries the boot URI in option 67 (or the file field); with
/// `yiaddr` 0.0.0.0 it is a "proxy" offer that HttpBootDxe pairs with the site's address offer.
#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn uefi_http_boot_client_gets_the_uki_url_and_httpclient_without_tftp() {
    let net = TestNet::new();
    let policy = Arc::new(TestPolicy {
        http_boot: true,
        ..TestPolicy::default()
    });
    let _server = proxy_server(&net, policy.clone());
    let offer = proxy_offer(&net, http_boot_discover(mac(5), 16, 51));
    let url = http_boot_url(&mac_text(mac(5)));
    assert_eq!(message_type(&offer), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(boot_file(&offer), Some(url.clone()));
    assert_eq!(file_field(&offer), url);
    let options = offer.opts();
    assert_eq!(
        options.get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
    assert_eq!(
        options.get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER_IP))
    );
    assert!(
        options.get(OptionCode::TFTPServerName).is_none(),
        "an HTTP boot offer names no TFTP server"
    );
    assert!(
        options.get(OptionCode::VendorExtensions).is_none(),
        "PXE discovery control is for PXE clients"
    );
    let mut guid = vec![0];
    guid.extend_from_slice(&SMBIOS_UUID_ON_THE_WIRE);
    assert_eq!(
        options.get(OptionCode::ClientMachineIdentifier),
        Some(&DhcpOption::ClientMachineIdentifier(guid))
    );
    // Admission control still applies: the policy saw the client with its architecture.
    let asked = policy.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].arch, Some(16));
    assert_eq!(asked[0].uuid.as_deref(), Some(SMBIOS_UUID));
}

#[test]
#[ignore = "needs root: network namespace, ports 67/4011"]
fn http_boot_clients_get_no_answer_when_http_boot_is_off_or_refused_or_not_x64() {
    let net = TestNet::new();
    let off = proxy_server(&net, Arc::new(TestPolicy::default()));
    let replies = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        client.send(&http_boot_discover(mac(6), 16, 61), broadcast_to_server());
        off.wait_for(ignored, 1);
        client.queued_replies()
    });
    assert!(replies.is_empty(), "HTTP boot is off: {replies:?}");
    drop(off);
    let on = proxy_server(
        &net,
        Arc::new(TestPolicy {
            http_boot: true,
            refused: vec![mac_text(mac(7))],
            ..TestPolicy::default()
        }),
    );
    let replies = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        // Refused by the policy; then x86 (15) and ARM64 (19) HTTP boot, which get no x64 UKI.
        client.send(&http_boot_discover(mac(7), 16, 71), broadcast_to_server());
        client.send(&http_boot_discover(mac(8), 15, 72), broadcast_to_server());
        client.send(&http_boot_discover(mac(8), 19, 73), broadcast_to_server());
        on.wait_for(ignored, 3);
        client.queued_replies()
    });
    assert!(replies.is_empty(), "{replies:?}");
}
