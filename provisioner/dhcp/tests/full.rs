//! Full DHCP mode on the standard ports in network namespaces: reservations, the pool,
//! NAKs, release, leases across a restart, and a real client (busybox udhcpc).

mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bootkit_dhcp::{FullConfig, Mode, Reservation};
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use support::*;

const POOL_START: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
const POOL_END: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
const RESERVED: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 5);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn full_config(lease_file: Option<PathBuf>) -> FullConfig {
    FullConfig {
        pool_start: POOL_START,
        pool_end: POOL_END,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(ROUTER),
        dns: vec![Ipv4Addr::new(10, 77, 0, 53)],
        lease_time: Duration::from_secs(3600),
        reservations: vec![Reservation {
            mac: mac_text(mac(1)),
            ip: RESERVED,
            hostname: Some("node-1".into()),
        }],
        lease_file,
    }
}

fn full_server(net: &TestNet, lease_file: Option<PathBuf>) -> RunningServer {
    net.start(
        config(Mode::Full(full_config(lease_file))),
        Arc::new(TestPolicy::default()),
    )
}

fn exchange(client: &Endpoint, message: &Message) -> Message {
    client.send(message, broadcast_to_server());
    let (reply, _) = client
        .receive(message.xid())
        .unwrap_or_else(|| panic!("no reply to {:?}", message.opts().msg_type()));
    reply
}

/// DISCOVER, then REQUEST what was offered; returns the OFFER and the ACK.
fn lease(client: &Endpoint, discover: &Message) -> (Message, Message) {
    let offer = exchange(client, discover);
    assert_eq!(message_type(&offer), Some(MessageType::Offer));
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(discover.chaddr());
    let mut request = request(chaddr, offer.yiaddr(), Some(SERVER_IP), discover.xid() + 1);
    // Clients repeat their identity (vendor class, PXE options) in the REQUEST.
    for (code, value) in discover.opts().iter() {
        if *code != OptionCode::MessageType {
            request.opts_mut().insert(value.clone());
        }
    }
    let ack = exchange(client, &request);
    (offer, ack)
}

fn option(message: &Message, code: OptionCode) -> Option<&DhcpOption> {
    message.opts().get(code)
}

#[test]
#[ignore = "needs root: network namespace, port 67"]
fn reserved_pxe_client_gets_its_address_hostname_network_and_boot_file() {
    let net = TestNet::new();
    let _server = full_server(&net, None);
    let (offer, ack) =
        net.in_client(|| lease(&Endpoint::dhcp_client(), &pxe_discover(mac(1), 7, 100)));
    for reply in [&offer, &ack] {
        assert_eq!(reply.yiaddr(), RESERVED);
        assert_eq!(reply.siaddr(), SERVER_IP);
        assert_eq!(boot_file(reply).as_deref(), Some("ipxe.efi"));
        assert_eq!(
            option(reply, OptionCode::Hostname),
            Some(&DhcpOption::Hostname("node-1".into()))
        );
        assert_eq!(
            option(reply, OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(
            option(reply, OptionCode::Router),
            Some(&DhcpOption::Router(vec![ROUTER]))
        );
        assert_eq!(
            option(reply, OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(3600))
        );
        assert_eq!(
            option(reply, OptionCode::Renewal),
            Some(&DhcpOption::Renewal(1800))
        );
        assert_eq!(
            option(reply, OptionCode::Rebinding),
            Some(&DhcpOption::Rebinding(3150))
        );
    }
    assert_eq!(message_type(&ack), Some(MessageType::Ack));
}

/// Full mode (UEFI spec 2.10 §24.7.2, "DHCP server with HTTP boot extension"): the address
/// and the boot URI in one offer, option 60 `HTTPClient`, no TFTP server.
#[test]
#[ignore = "needs root: network namespace, port 67"]
fn uefi_http_boot_client_gets_an_address_and_the_uki_url() {
    let net = TestNet::new();
    let _server = net.start(
        config(Mode::Full(full_config(None))),
        Arc::new(TestPolicy {
            http_boot: true,
            ..TestPolicy::default()
        }),
    );
    let (offer, ack) = net.in_client(|| {
        lease(
            &Endpoint::dhcp_client(),
            &http_boot_discover(mac(9), 16, 900),
        )
    });
    let url = http_boot_url(&mac_text(mac(9)));
    for reply in [&offer, &ack] {
        assert!(
            (POOL_START..=POOL_END).contains(&reply.yiaddr()),
            "{}",
            reply.yiaddr()
        );
        assert_eq!(boot_file(reply), Some(url.clone()));
        assert_eq!(file_field(reply), url);
        assert_eq!(
            option(reply, OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
        );
        assert_eq!(option(reply, OptionCode::TFTPServerName), None);
        assert_eq!(
            option(reply, OptionCode::Router),
            Some(&DhcpOption::Router(vec![ROUTER]))
        );
    }
    assert_eq!(message_type(&ack), Some(MessageType::Ack));
}

#[test]
#[ignore = "needs root: network namespace, port 67"]
fn two_hundred_clients_get_distinct_pool_addresses_and_no_boot_file() {
    let net = TestNet::new();
    let _server = full_server(&net, None);
    let acks = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        (0..200u16)
            .map(|n| lease(&client, &discover(mac(1000 + n), 10_000 + u32::from(n) * 2)).1)
            .collect::<Vec<_>>()
    });
    let pool = u32::from(POOL_START)..=u32::from(POOL_END);
    let mut addresses = HashSet::new();
    for ack in &acks {
        assert_eq!(message_type(ack), Some(MessageType::Ack));
        assert!(
            pool.contains(&u32::from(ack.yiaddr())),
            "{} outside the pool",
            ack.yiaddr()
        );
        assert!(
            addresses.insert(ack.yiaddr()),
            "{} handed out twice",
            ack.yiaddr()
        );
        assert_eq!(boot_file(ack), None, "a plain DHCP client got a boot file");
    }
}

#[test]
#[ignore = "needs root: network namespace, port 67"]
fn taken_or_foreign_addresses_are_refused_until_released() {
    let net = TestNet::new();
    let server = full_server(&net, None);
    net.in_client(|| {
        let client = Endpoint::dhcp_client();
        let (_, ack) = lease(&client, &discover(mac(2), 200));
        let taken = ack.yiaddr();
        let nak = exchange(&client, &request(mac(3), taken, None, 210));
        assert_eq!(message_type(&nak), Some(MessageType::Nak));
        let foreign = exchange(
            &client,
            &request(mac(3), Ipv4Addr::new(192, 168, 9, 9), None, 211),
        );
        assert_eq!(message_type(&foreign), Some(MessageType::Nak));
        let reserved = exchange(&client, &request(mac(3), RESERVED, None, 212));
        assert_eq!(message_type(&reserved), Some(MessageType::Nak));

        client.send(&release(mac(2), taken, 220), broadcast_to_server());
        server.wait_for(received, 6);
        let after_release = exchange(&client, &request(mac(3), taken, None, 230));
        assert_eq!(message_type(&after_release), Some(MessageType::Ack));
        assert_eq!(after_release.yiaddr(), taken);
    });
}

#[test]
#[ignore = "needs root: network namespace, port 67"]
fn bound_leases_survive_a_restart() {
    let net = TestNet::new();
    let directory = tempfile::tempdir().unwrap();
    let lease_file = directory.path().join("dhcp.leases");
    let first = full_server(&net, Some(lease_file.clone()));
    let held = net.in_client(|| {
        lease(&Endpoint::dhcp_client(), &discover(mac(4), 300))
            .1
            .yiaddr()
    });
    drop(first);

    let _second = full_server(&net, Some(lease_file));
    net.in_client(|| {
        let client = Endpoint::dhcp_client();
        let other = exchange(&client, &discover(mac(5), 310));
        assert_ne!(
            other.yiaddr(),
            held,
            "a restarted server gave away a bound lease"
        );
        let stolen = exchange(&client, &request(mac(5), held, None, 320));
        assert_eq!(message_type(&stolen), Some(MessageType::Nak));
        let again = exchange(&client, &discover(mac(4), 330));
        assert_eq!(
            again.yiaddr(),
            held,
            "the client lost its lease over the restart"
        );
    });
}

#[test]
#[ignore = "needs root: network namespace, port 67"]
fn refused_pxe_client_gets_no_address_either() {
    let net = TestNet::new();
    let server = net.start(
        config(Mode::Full(full_config(None))),
        Arc::new(TestPolicy {
            refused: vec![mac_text(mac(6))],
            ..TestPolicy::default()
        }),
    );
    let replies = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        client.send(&pxe_discover(mac(6), 0, 400), broadcast_to_server());
        server.wait_for(ignored, 1);
        client.queued_replies()
    });
    assert!(replies.is_empty(), "unexpected replies: {replies:?}");
}

#[test]
#[ignore = "needs root: network namespace, port 67"]
fn busybox_udhcpc_gets_a_lease() {
    let net = TestNet::new();
    let _server = full_server(&net, None);
    let directory = tempfile::tempdir().unwrap();
    let result = directory.path().join("lease");
    let script = directory.path().join("udhcpc.script");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $subnet $router\" > {}\nexit 0\n",
            result.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let status = Command::new("timeout")
        .args([
            "30",
            "ip",
            "netns",
            "exec",
            net.client_ns(),
            "busybox",
            "udhcpc",
        ])
        .args([
            "-i",
            CLIENT_INTERFACE,
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
        ])
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success(), "udhcpc got no lease: {status}");
    let lease = std::fs::read_to_string(&result).unwrap();
    let fields: Vec<&str> = lease.split_whitespace().collect();
    let ip: Ipv4Addr = fields[0].parse().unwrap();
    assert!((u32::from(POOL_START)..=u32::from(POOL_END)).contains(&u32::from(ip)));
    assert_eq!(fields[1..], ["255.255.255.0", "10.77.0.1"]);
}

#[test]
#[ignore = "needs root: network namespace, port 67"]
fn inform_from_an_addressed_client_gets_network_options_without_a_lease() {
    let net = TestNet::new();
    let _server = full_server(&net, None);
    let (ack, from) = net.in_client(|| {
        let client = Endpoint::dhcp_client();
        let mut inform = discover(mac(7), 500);
        inform
            .opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Inform));
        inform.set_ciaddr(CLIENT_SIDE_IP);
        client.send(&inform, std::net::SocketAddrV4::new(SERVER_IP, 67));
        client.receive(500).expect("no answer to INFORM")
    });
    assert_eq!(message_type(&ack), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(option(&ack, OptionCode::AddressLeaseTime), None);
    assert_eq!(
        option(&ack, OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            10, 77, 0, 53
        )]))
    );
    assert_eq!(from, std::net::SocketAddr::from((SERVER_IP, 67)));
}
