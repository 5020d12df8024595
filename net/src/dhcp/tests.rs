//! State machine tests with a fake clock: time is whatever Duration the test passes.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use dhcproto::Name;
use dhcproto::v4::{DhcpOption, Encodable, Message, MessageType, Opcode, OptionCode};

use super::machine::{Action, Config, Destination, LossReason, Machine, State};
use super::packet::{PARAMETER_REQUEST_LIST, prefix_from_mask};
use crate::lease::Lease;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn machine() -> Machine {
    Machine::with_seed(Config::new("eth0", MAC), 7)
}

/// The messages among `actions`, with their destinations.
fn sent(actions: &[Action]) -> Vec<(Message, Destination)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { message, to } => Some((message.clone(), *to)),
            _ => None,
        })
        .collect()
}

/// The single message among `actions`, checked for its type.
fn only_sent(actions: &[Action], kind: MessageType) -> (Message, Destination) {
    let mut all = sent(actions);
    assert_eq!(all.len(), 1, "expected one message in {actions:?}");
    let (msg, to) = all.remove(0);
    assert_eq!(msg.opts().msg_type(), Some(kind));
    (msg, to)
}

/// A server reply to `xid` with the options every reply of ours carries.
fn reply(kind: MessageType, xid: u32, yiaddr: Ipv4Addr) -> Message {
    let mut msg = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        yiaddr,
        SERVER,
        Ipv4Addr::UNSPECIFIED,
        &MAC,
    );
    msg.set_opcode(Opcode::BootReply);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(SERVER));
    if kind != MessageType::Nak {
        opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        opts.insert(DhcpOption::Router(vec![SERVER]));
        opts.insert(DhcpOption::AddressLeaseTime(3600));
    }
    msg
}

/// DORA up to BOUND: DISCOVER at 0 s, OFFER at 0.5 s, ACK at 0.6 s. Returns the lease.
fn bind(m: &mut Machine) -> Lease {
    let discover = only_sent(&m.start(Duration::ZERO), MessageType::Discover).0;
    let offer = reply(MessageType::Offer, discover.xid(), OFFERED);
    let request = only_sent(&m.on_packet(&offer, secs(0.5)), MessageType::Request).0;
    let ack = reply(MessageType::Ack, request.xid(), OFFERED);
    let actions = m.on_packet(&ack, secs(0.6));
    match actions.as_slice() {
        [Action::Acquired(lease)] => lease.clone(),
        other => panic!("expected Acquired, got {other:?}"),
    }
}

fn assert_client_identity(msg: &Message) {
    let mut id = vec![1u8];
    id.extend_from_slice(&MAC);
    assert_eq!(
        msg.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(id)),
        "option 61 must be type 1 + MAC in {msg}"
    );
    assert_eq!(&msg.chaddr()[..6], &MAC);
    assert_eq!(msg.opcode(), Opcode::BootRequest);
}

#[test]
fn full_dora() {
    let mut m = machine();
    assert_eq!(m.state(), State::Init);
    let (discover, to) = only_sent(&m.start(Duration::ZERO), MessageType::Discover);
    assert_eq!(to, Destination::Broadcast);
    assert!(discover.flags().broadcast());
    assert_eq!(discover.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.state(), State::Selecting);

    let offer = reply(MessageType::Offer, discover.xid(), OFFERED);
    let (request, to) = only_sent(&m.on_packet(&offer, secs(0.5)), MessageType::Request);
    assert_eq!(m.state(), State::Requesting);
    assert_eq!(to, Destination::Broadcast);
    assert!(request.flags().broadcast());
    assert_eq!(
        request.xid(),
        discover.xid(),
        "REQUEST keeps the OFFER's xid"
    );
    assert_eq!(request.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        request.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(OFFERED))
    );
    assert_eq!(
        request.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );

    let ack = reply(MessageType::Ack, request.xid(), OFFERED);
    let actions = m.on_packet(&ack, secs(0.6));
    let [Action::Acquired(lease)] = actions.as_slice() else {
        panic!("expected Acquired, got {actions:?}");
    };
    assert_eq!(lease.address, OFFERED);
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(m.state(), State::Bound);
    assert_eq!(m.lease(), Some(lease));
    // T1 defaults to half the lease, counted from the REQUEST (sent at 0.5 s).
    assert_eq!(m.wake_at(), Some(secs(1800.5)));
    // A second ACK to the same exchange changes nothing.
    assert!(m.on_packet(&ack, secs(0.7)).is_empty());
}

#[test]
fn every_message_carries_the_mac_as_client_id() {
    let mut m = machine();
    let mut all = sent(&m.start(Duration::ZERO));
    // Retransmitted DISCOVERs.
    for _ in 0..3 {
        let at = m.wake_at().expect("retransmission scheduled");
        all.extend(sent(&m.on_timeout(at)));
    }
    let xid = all[0].0.xid();
    let offer = reply(MessageType::Offer, xid, OFFERED);
    all.extend(sent(&m.on_packet(&offer, secs(10.0))));
    let at = m.wake_at().expect("REQUEST retransmission");
    all.extend(sent(&m.on_timeout(at)));
    let ack = reply(MessageType::Ack, xid, OFFERED);
    assert!(matches!(
        m.on_packet(&ack, at).as_slice(),
        [Action::Acquired(_)]
    ));
    // RENEWING, REBINDING, then expiry and a new DISCOVER.
    while all.len() < 20 {
        let at = m.wake_at().expect("a timer while a lease runs");
        all.extend(sent(&m.on_timeout(at)));
    }
    let kinds: Vec<_> = all
        .iter()
        .filter_map(|(m, _)| m.opts().msg_type())
        .collect();
    assert!(kinds.contains(&MessageType::Discover) && kinds.contains(&MessageType::Request));
    for (msg, _) in &all {
        assert_client_identity(msg);
        let Some(DhcpOption::ParameterRequestList(list)) =
            msg.opts().get(OptionCode::ParameterRequestList)
        else {
            panic!("no parameter request list in {msg}");
        };
        for code in [1u8, 3, 6, 12, 15, 26, 42, 51, 58, 59, 119] {
            assert!(
                list.contains(&OptionCode::from(code)),
                "option {code} not requested"
            );
        }
        // And it survives encoding (what goes on the wire).
        let bytes = msg.to_vec().expect("encodable");
        assert_eq!(bytes[28..34], MAC);
    }
    assert_eq!(PARAMETER_REQUEST_LIST.len(), 12);
}

#[test]
fn retransmission_backoff_with_bounded_jitter() {
    for seed in 0..50 {
        let mut m = Machine::with_seed(Config::new("eth0", MAC), seed);
        let first = only_sent(&m.start(Duration::ZERO), MessageType::Discover).0;
        let mut last = Duration::ZERO;
        for attempt in 0..10u32 {
            let at = m.wake_at().expect("retransmission scheduled");
            let interval = (at - last).as_secs_f64();
            let base = f64::from(1u32 << attempt.min(6)).min(64.0);
            let jitter = (base / 2.0).min(1.0);
            assert!(
                (base - jitter..=base + jitter).contains(&interval),
                "seed {seed} attempt {attempt}: {interval} s not within {base} ± {jitter}"
            );
            // Woken early: nothing happens.
            assert!(m.on_timeout(at - secs(0.001)).is_empty());
            let again = only_sent(&m.on_timeout(at), MessageType::Discover).0;
            assert_eq!(again.xid(), first.xid(), "retransmissions keep the xid");
            assert_eq!(
                u64::from(again.secs()),
                at.as_secs(),
                "secs counts from the first DISCOVER"
            );
            last = at;
        }
        assert_eq!(m.state(), State::Selecting);
    }
}

#[test]
fn replies_to_others_are_ignored() {
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    let wake = m.wake_at();

    let wrong_xid = reply(MessageType::Offer, xid.wrapping_add(1), OFFERED);
    assert!(m.on_packet(&wrong_xid, secs(0.1)).is_empty());

    let mut wrong_mac = reply(MessageType::Offer, xid, OFFERED);
    wrong_mac.set_chaddr(&[2, 0, 0, 0, 0, 1]);
    assert!(m.on_packet(&wrong_mac, secs(0.1)).is_empty());

    let mut a_request = reply(MessageType::Offer, xid, OFFERED);
    a_request.set_opcode(Opcode::BootRequest);
    assert!(m.on_packet(&a_request, secs(0.1)).is_empty());

    let mut no_server_id = reply(MessageType::Offer, xid, OFFERED);
    no_server_id.opts_mut().remove(OptionCode::ServerIdentifier);
    assert!(m.on_packet(&no_server_id, secs(0.1)).is_empty());

    let zero_address = reply(MessageType::Offer, xid, Ipv4Addr::UNSPECIFIED);
    assert!(m.on_packet(&zero_address, secs(0.1)).is_empty());

    // An ACK while SELECTING is not what we wait for.
    let early_ack = reply(MessageType::Ack, xid, OFFERED);
    assert!(m.on_packet(&early_ack, secs(0.1)).is_empty());

    assert_eq!(m.state(), State::Selecting);
    assert_eq!(m.wake_at(), wake);

    // In REQUESTING, an ACK from a server we did not choose is not ours either.
    let offer = reply(MessageType::Offer, xid, OFFERED);
    only_sent(&m.on_packet(&offer, secs(0.2)), MessageType::Request);
    let mut other_server = reply(MessageType::Ack, xid, OFFERED);
    other_server
        .opts_mut()
        .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(192, 0, 2, 99)));
    assert!(m.on_packet(&other_server, secs(0.3)).is_empty());
    assert_eq!(m.state(), State::Requesting);
}

#[test]
fn nak_restarts_with_a_new_exchange() {
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    only_sent(
        &m.on_packet(&reply(MessageType::Offer, xid, OFFERED), secs(0.1)),
        MessageType::Request,
    );
    // First NAK: straight back to a new DISCOVER, with a new xid.
    let actions = m.on_packet(&reply(MessageType::Nak, xid, OFFERED), secs(0.2));
    let (discover, to) = only_sent(&actions, MessageType::Discover);
    assert_eq!(to, Destination::Broadcast);
    assert_ne!(discover.xid(), xid);
    assert_eq!(m.state(), State::Selecting);

    // Second NAK in a row: INIT, and the DISCOVER waits a little.
    let xid = discover.xid();
    only_sent(
        &m.on_packet(&reply(MessageType::Offer, xid, OFFERED), secs(0.3)),
        MessageType::Request,
    );
    assert!(
        m.on_packet(&reply(MessageType::Nak, xid, OFFERED), secs(0.4))
            .is_empty()
    );
    assert_eq!(m.state(), State::Init);
    assert_eq!(m.wake_at(), Some(secs(1.4)));
    let discover = only_sent(&m.on_timeout(secs(1.4)), MessageType::Discover).0;
    assert_ne!(discover.xid(), xid);
    assert_eq!(m.state(), State::Selecting);
}

#[test]
fn request_unanswered_goes_back_to_discover() {
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    only_sent(
        &m.on_packet(&reply(MessageType::Offer, xid, OFFERED), secs(0.1)),
        MessageType::Request,
    );
    // request_attempts = 4: three retransmissions, then a new DISCOVER.
    for _ in 0..3 {
        let at = m.wake_at().expect("scheduled");
        only_sent(&m.on_timeout(at), MessageType::Request);
    }
    let at = m.wake_at().expect("scheduled");
    let discover = only_sent(&m.on_timeout(at), MessageType::Discover).0;
    assert_ne!(discover.xid(), xid);
    assert_eq!(m.state(), State::Selecting);
}

#[test]
fn renews_at_t1_by_unicast() {
    let mut m = machine();
    let lease = bind(&mut m);
    // Nothing before T1.
    assert!(m.on_timeout(secs(1800.0)).is_empty());
    assert_eq!(m.state(), State::Bound);

    let (renew, to) = only_sent(&m.on_timeout(secs(1800.5)), MessageType::Request);
    assert_eq!(m.state(), State::Renewing);
    assert_eq!(to, Destination::Unicast(SERVER));
    assert_eq!(renew.ciaddr(), OFFERED);
    assert!(!renew.flags().broadcast(), "unicast reply to ciaddr");
    assert!(!renew.opts().contains(OptionCode::RequestedIpAddress));
    assert!(!renew.opts().contains(OptionCode::ServerIdentifier));
    assert_client_identity(&renew);
    // Next retransmission: half the time to T2 (3150.5), here more than the 60 s minimum.
    assert_eq!(m.wake_at(), Some(secs(1800.5 + 675.0)));

    let mut ack = reply(MessageType::Ack, renew.xid(), OFFERED);
    ack.opts_mut()
        .insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            192, 0, 2, 53,
        )]));
    let actions = m.on_packet(&ack, secs(1801.0));
    let [Action::Renewed(renewed)] = actions.as_slice() else {
        panic!("expected Renewed, got {actions:?}");
    };
    assert_eq!(renewed.address, lease.address);
    assert_eq!(renewed.dns, vec![Ipv4Addr::new(192, 0, 2, 53)]);
    assert_eq!(m.state(), State::Bound);
    // The new T1 counts from the renewal REQUEST.
    assert_eq!(m.wake_at(), Some(secs(1800.5 + 1800.0)));
}

#[test]
fn rebinds_at_t2_by_broadcast_then_expires() {
    let mut m = machine();
    bind(&mut m);
    let renew = only_sent(&m.on_timeout(secs(1800.5)), MessageType::Request).0;
    // Renewal retransmissions until T2, never past it, at least 60 s apart.
    let mut last = secs(1800.5);
    let mut renews = 1;
    loop {
        let at = m.wake_at().expect("scheduled");
        let actions = m.on_timeout(at);
        if m.state() == State::Rebinding {
            assert_eq!(at, secs(3150.5), "REBINDING starts at T2 = 0.875 × lease");
            let (rebind, to) = only_sent(&actions, MessageType::Request);
            assert_eq!(to, Destination::Broadcast);
            assert_eq!(rebind.ciaddr(), OFFERED);
            assert_ne!(rebind.xid(), renew.xid());
            assert!(!rebind.opts().contains(OptionCode::ServerIdentifier));
            assert_client_identity(&rebind);
            break;
        }
        assert!(at - last >= secs(60.0) || at == secs(3150.5));
        let (_, to) = only_sent(&actions, MessageType::Request);
        assert_eq!(to, Destination::Unicast(SERVER));
        last = at;
        renews += 1;
    }
    assert!(renews >= 3, "only {renews} renewal attempts");

    // Rebinding retransmissions until expiry at 3600.5, then the lease is lost.
    let mut lost = None;
    for _ in 0..20 {
        let at = m.wake_at().expect("scheduled");
        assert!(at <= secs(3600.5));
        let actions = m.on_timeout(at);
        if let Some(Action::Lost { lease, reason }) = actions.first() {
            assert_eq!(at, secs(3600.5));
            lost = Some((lease.clone(), *reason));
            let (discover, to) = only_sent(&actions, MessageType::Discover);
            assert_eq!(to, Destination::Broadcast);
            assert_eq!(discover.ciaddr(), Ipv4Addr::UNSPECIFIED);
            assert_client_identity(&discover);
            break;
        }
        only_sent(&actions, MessageType::Request);
    }
    let (lease, reason) = lost.expect("the lease expired");
    assert_eq!(lease.address, OFFERED);
    assert_eq!(reason, LossReason::Expired);
    assert_eq!(m.state(), State::Selecting);
    assert_eq!(m.lease(), None);
}

#[test]
fn ack_while_rebinding_keeps_the_lease() {
    let mut m = machine();
    bind(&mut m);
    only_sent(&m.on_timeout(secs(3150.5)), MessageType::Request);
    assert_eq!(
        m.state(),
        State::Rebinding,
        "a late wake-up lands in the right state"
    );
    let xid = sent(&m.on_timeout(m.wake_at().expect("scheduled")))[0]
        .0
        .xid();
    let actions = m.on_packet(&reply(MessageType::Ack, xid, OFFERED), secs(3200.0));
    assert!(matches!(actions.as_slice(), [Action::Renewed(_)]));
    assert_eq!(m.state(), State::Bound);
}

#[test]
fn sleeping_past_expiry_loses_the_lease() {
    let mut m = machine();
    bind(&mut m);
    let actions = m.on_timeout(secs(100_000.0));
    assert!(matches!(
        actions.first(),
        Some(Action::Lost {
            reason: LossReason::Expired,
            ..
        })
    ));
    only_sent(&actions, MessageType::Discover);
}

#[test]
fn nak_while_renewing_loses_the_lease() {
    let mut m = machine();
    bind(&mut m);
    let xid = only_sent(&m.on_timeout(secs(1800.5)), MessageType::Request)
        .0
        .xid();
    let actions = m.on_packet(&reply(MessageType::Nak, xid, OFFERED), secs(1801.0));
    assert!(matches!(
        actions.first(),
        Some(Action::Lost {
            reason: LossReason::Nak,
            ..
        })
    ));
    only_sent(&actions, MessageType::Discover);
    assert_eq!(m.state(), State::Selecting);
}

#[test]
fn renewal_with_another_address_replaces_the_lease() {
    let mut m = machine();
    bind(&mut m);
    let xid = only_sent(&m.on_timeout(secs(1800.5)), MessageType::Request)
        .0
        .xid();
    let other = Ipv4Addr::new(192, 0, 2, 77);
    let actions = m.on_packet(&reply(MessageType::Ack, xid, other), secs(1801.0));
    match actions.as_slice() {
        [
            Action::Lost {
                lease: old,
                reason: LossReason::AddressChanged,
            },
            Action::Acquired(new),
        ] => {
            assert_eq!(old.address, OFFERED);
            assert_eq!(new.address, other);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn ack_maps_to_lease() {
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    only_sent(
        &m.on_packet(&reply(MessageType::Offer, xid, OFFERED), Duration::ZERO),
        MessageType::Request,
    );
    let mut ack = reply(MessageType::Ack, xid, OFFERED);
    let ntp = vec![Ipv4Addr::new(192, 0, 2, 123), Ipv4Addr::new(192, 0, 2, 124)];
    let dns = vec![
        Ipv4Addr::new(192, 0, 2, 53),
        Ipv4Addr::new(198, 51, 100, 53),
    ];
    let name = |s: &str| Name::from_str(s).expect("valid name");
    for opt in [
        DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 252, 0)),
        DhcpOption::Router(vec![SERVER, Ipv4Addr::new(192, 0, 2, 2)]),
        DhcpOption::DomainNameServer(dns.clone()),
        DhcpOption::DomainName("lab.example.".into()),
        DhcpOption::Hostname("worker-7\0".into()),
        DhcpOption::NtpServers(ntp.clone()),
        DhcpOption::InterfaceMtu(9000),
        DhcpOption::AddressLeaseTime(7200),
        DhcpOption::Renewal(1000),
        DhcpOption::Rebinding(5000),
        DhcpOption::DomainSearch(vec![name("lab.example."), name("corp.example.")]),
    ] {
        ack.opts_mut().insert(opt);
    }
    // Through the wire format, as the driver sees it.
    let bytes = ack.to_vec().expect("encodable");
    let actions = m.on_bytes(&bytes, secs(1.0));
    let [Action::Acquired(lease)] = actions.as_slice() else {
        panic!("expected Acquired, got {actions:?}");
    };
    assert_eq!(
        lease,
        &Lease {
            interface: "eth0".into(),
            address: OFFERED,
            prefix_len: 22,
            peer: None,
            routers: vec![SERVER, Ipv4Addr::new(192, 0, 2, 2)],
            dns,
            domain: Some("lab.example".into()),
            search: vec!["lab.example".into(), "corp.example".into()],
            hostname: Some("worker-7".into()),
            ntp,
            mtu: Some(9000),
            lease_time: Some(secs(7200.0)),
            renew_after: Some(secs(1000.0)),
            rebind_after: Some(secs(5000.0)),
            server: Some(SERVER),
        }
    );
    assert_eq!(m.wake_at(), Some(secs(1000.0)));
}

/// Runs DORA with `opts` added to the ACK and returns the lease.
fn lease_with(opts: Vec<DhcpOption>, remove: &[OptionCode]) -> Option<Lease> {
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    m.on_packet(&reply(MessageType::Offer, xid, OFFERED), Duration::ZERO);
    let mut ack = reply(MessageType::Ack, xid, OFFERED);
    for code in remove {
        ack.opts_mut().remove(*code);
    }
    for opt in opts {
        ack.opts_mut().insert(opt);
    }
    match m.on_packet(&ack, Duration::ZERO).as_slice() {
        [Action::Acquired(lease)] => Some(lease.clone()),
        _ => None,
    }
}

#[test]
fn lease_defaults_and_sanity() {
    // T1/T2 default to 0.5 and 0.875 of the lease.
    let lease = lease_with(vec![], &[]).expect("lease");
    assert_eq!(lease.renew_after, Some(secs(1800.0)));
    assert_eq!(lease.rebind_after, Some(secs(3150.0)));
    assert_eq!(lease.mtu, None);
    assert_eq!(lease.hostname, None);

    // T2 > lease and then T1 > T2 from a broken server: defaults instead.
    let lease = lease_with(
        vec![DhcpOption::Renewal(3500), DhcpOption::Rebinding(4000)],
        &[],
    )
    .expect("lease");
    assert_eq!(lease.rebind_after, Some(secs(3150.0)));
    assert_eq!(lease.renew_after, Some(secs(1800.0)));
    // A T1 before a valid T2 is the server's choice.
    let lease = lease_with(vec![DhcpOption::Renewal(3000)], &[]).expect("lease");
    assert_eq!(lease.renew_after, Some(secs(3000.0)));

    // No subnet mask: the classful prefix (192.0.2.x is class C).
    let lease = lease_with(vec![], &[OptionCode::SubnetMask]).expect("lease");
    assert_eq!(lease.prefix_len, 24);

    // An MTU below the legal minimum of 68 is ignored.
    let lease = lease_with(vec![DhcpOption::InterfaceMtu(40)], &[]).expect("lease");
    assert_eq!(lease.mtu, None);

    // Infinite lease: no timers at all.
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    m.on_packet(&reply(MessageType::Offer, xid, OFFERED), Duration::ZERO);
    let mut ack = reply(MessageType::Ack, xid, OFFERED);
    ack.opts_mut()
        .insert(DhcpOption::AddressLeaseTime(u32::MAX));
    let actions = m.on_packet(&ack, Duration::ZERO);
    let [Action::Acquired(lease)] = actions.as_slice() else {
        panic!("expected Acquired, got {actions:?}");
    };
    assert_eq!(lease.lease_time, None);
    assert_eq!(m.wake_at(), None);
    assert!(m.on_timeout(secs(1e9)).is_empty());

    // No lease time: not a usable ACK (RFC 2131 Table 3), ignored.
    assert_eq!(lease_with(vec![], &[OptionCode::AddressLeaseTime]), None);
}

#[test]
fn prefix_lengths() {
    for (mask, len) in [
        ([0, 0, 0, 0], 0),
        ([255, 0, 0, 0], 8),
        ([255, 255, 255, 0], 24),
        ([255, 255, 255, 252], 30),
        ([255, 255, 255, 255], 32),
        ([255, 255, 128, 0], 17),
    ] {
        assert_eq!(prefix_from_mask(Ipv4Addr::from(mask)), len, "{mask:?}");
    }
}

/// Random and corrupted datagrams in every state: ignored or handled, never a panic.
#[test]
fn malformed_packets_never_panic() {
    let mut rng = fastrand::Rng::with_seed(42);
    for round in 0..200u64 {
        let mut m = Machine::with_seed(Config::new("eth0", MAC), round);
        let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
            .0
            .xid();
        // Put the machine in a state chosen by the round.
        let mut now = secs(0.1);
        if round % 3 > 0 {
            m.on_packet(&reply(MessageType::Offer, xid, OFFERED), now);
        }
        if round % 3 == 2 {
            m.on_packet(&reply(MessageType::Ack, xid, OFFERED), now);
        }
        let valid = [
            reply(MessageType::Offer, xid, OFFERED),
            reply(MessageType::Ack, xid, OFFERED),
            reply(MessageType::Nak, xid, OFFERED),
        ]
        .map(|msg| msg.to_vec().expect("encodable"));
        for _ in 0..200 {
            now += secs(0.01);
            let bytes = if rng.bool() {
                // Pure noise of any length, including empty and truncated headers.
                let len = rng.usize(0..700);
                (0..len).map(|_| rng.u8(..)).collect::<Vec<_>>()
            } else {
                // A valid reply with a few bytes flipped, truncated or extended: gets past
                // the header checks and into the option parsing.
                let mut bytes = valid[rng.usize(..valid.len())].clone();
                for _ in 0..rng.usize(1..8) {
                    let i = rng.usize(..bytes.len());
                    bytes[i] = rng.u8(..);
                }
                if rng.bool() {
                    bytes.truncate(rng.usize(..bytes.len()));
                }
                bytes
            };
            for action in m.on_bytes(&bytes, now) {
                if let Action::Send { message, .. } = action {
                    assert_client_identity(&message);
                }
            }
            if let Some(at) = m.wake_at().filter(|at| *at <= now) {
                m.on_timeout(at);
            }
        }
    }
}

/// Regressions from the fuzz test above: inputs that panic inside dhcproto if handed to it
/// as they are.
#[test]
fn decoder_traps_are_avoided() {
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    let offer = reply(MessageType::Offer, xid, OFFERED)
        .to_vec()
        .expect("encodable");
    // hlen 200: Message::chaddr() would slice past its 16 bytes.
    let mut bytes = offer.clone();
    bytes[2] = 200;
    assert!(m.on_bytes(&bytes, secs(0.1)).is_empty());
    // Options with lengths dhcproto debug-asserts on: rapid commit (80) with a value, client
    // FQDN (81) shorter than 3, bulk lease query time (152) not 4 bytes. The OFFER itself is
    // fine and must still be taken.
    let end = bytes.len() - 1;
    let mut bytes = offer[..end].to_vec();
    bytes.extend_from_slice(&[80, 1, 0, 81, 1, 0, 152, 2, 0, 0, 91, 1, 0, 94, 1, 0, 255]);
    only_sent(&m.on_bytes(&bytes, secs(0.1)), MessageType::Request);
}

#[test]
fn a_bad_option_does_not_hide_the_others() {
    let mut m = machine();
    let xid = only_sent(&m.start(Duration::ZERO), MessageType::Discover)
        .0
        .xid();
    m.on_packet(&reply(MessageType::Offer, xid, OFFERED), Duration::ZERO);
    let ack = reply(MessageType::Ack, xid, OFFERED)
        .to_vec()
        .expect("encodable");
    // Hostname that is not UTF-8 and a 3-byte MTU first, then (RFC 3396) a DNS list
    // split across two instances of option 6, then the lease's options.
    let mut bytes = ack[..240].to_vec();
    bytes.extend_from_slice(&[12, 2, 0xff, 0xfe, 26, 3, 5, 220, 0]);
    bytes.extend_from_slice(&[6, 4, 192, 0, 2, 53, 6, 4, 192, 0, 2, 54]);
    bytes.extend_from_slice(&ack[240..]);
    let actions = m.on_bytes(&bytes, secs(0.1));
    let [Action::Acquired(lease)] = actions.as_slice() else {
        panic!("expected Acquired, got {actions:?}");
    };
    assert_eq!(lease.hostname, None);
    assert_eq!(lease.mtu, None);
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(
        lease.dns,
        vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)]
    );
    assert_eq!(lease.lease_time, Some(secs(3600.0)));
}
