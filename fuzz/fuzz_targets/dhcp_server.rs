//! Fuzzes the provisioner's DHCP server (`bootkit_dhcp::Answerer`: the same decoding and
//! state machine as the server's receive loop, without sockets) with arbitrary bytes as the
//! requests of the network, in both modes: proxyDHCP and a full server with a pool and a
//! reservation. Whatever arrives, the server must not panic, and what it answers must encode.
//!
//! The input is a sequence of records: one control byte (bit 0: the packet came to proxy
//! mode's PXE boot server port), a two-byte big-endian length, then that many bytes.

#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bootkit_dhcp::{
    Answerer, BootDecision, BootFiles, BootPolicy, Config, FullConfig, Mode, PxeClient, Reservation,
};
use libfuzzer_sys::fuzz_target;

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Boots every client but those whose MAC ends in an odd byte, so both answers are reached.
struct Policy;

impl BootPolicy for Policy {
    fn decide(&self, client: &PxeClient) -> BootDecision {
        if client
            .mac
            .ends_with(['1', '3', '5', '7', '9', 'b', 'd', 'f'])
        {
            BootDecision::Ignore {
                reason: "not registered".into(),
            }
        } else {
            BootDecision::Boot {
                script_url: format!("http://{SERVER_IP}:8080/boot/{}.ipxe", client.mac),
            }
        }
    }
}

fn config(mode: Mode) -> Config {
    Config {
        listen: SocketAddr::from(([0, 0, 0, 0], 67)),
        interface: None,
        server_ip: SERVER_IP,
        mode,
        boot_files: BootFiles {
            other: vec![(11, "snp-arm64.efi".into())],
            ..BootFiles::debian_default()
        },
    }
}

fn full() -> Mode {
    Mode::Full(FullConfig {
        pool_start: Ipv4Addr::new(192, 0, 2, 100),
        pool_end: Ipv4Addr::new(192, 0, 2, 103),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(SERVER_IP),
        dns: vec![SERVER_IP],
        lease_time: Duration::from_secs(3600),
        reservations: vec![Reservation {
            mac: "52:54:00:00:00:02".into(),
            ip: Ipv4Addr::new(192, 0, 2, 50),
            hostname: Some("node-2".into()),
        }],
        lease_file: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut servers = [
        Answerer::new(config(Mode::Proxy)).expect("proxy config"),
        Answerer::new(config(full())).expect("full config"),
    ];
    let mut rest = data;
    while let [control, high, low, tail @ ..] = rest {
        let length = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        let (packet, next) = tail.split_at(length);
        rest = next;
        for server in &mut servers {
            if let Some((Err(error), _to)) = server.answer(packet, control & 1 != 0, &Policy) {
                panic!("the server's reply does not encode: {error}");
            }
        }
    }
});
