//! `provisioner_udp_drops_total` (issue 15 §5): a syslog UDP socket flooded while nothing
//! drains it drops datagrams, and the metric says exactly how many the kernel dropped. The
//! references: `ss -u -m -e` (the socket's `d` skmem field, read over sock_diag netlink, not
//! /proc), and the count itself: every datagram sent on loopback was either queued (drained
//! afterwards) or dropped.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::TestDb;
use provisioner::metrics::Metrics;
use provisioner::udp_drops::size_receive_buffer;

const SENT: usize = 2000;

/// The drops `ss` reports for the UDP socket bound to `port` on 127.0.0.1, and its inode.
fn ss_drops(port: u16) -> (u64, u64) {
    let output = Command::new("ss")
        .args(["-u", "-a", "-n", "-e", "-m", "-H"])
        .arg(format!("src 127.0.0.1:{port}"))
        .output()
        .expect("run ss");
    assert!(output.status.success(), "ss failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str, end: &[char]| -> u64 {
        let start = text
            .find(prefix)
            .unwrap_or_else(|| panic!("no {prefix} in ss output {text:?}"))
            + prefix.len();
        let rest = &text[start..];
        let len = rest.find(end).unwrap_or(rest.len());
        rest[..len]
            .parse()
            .unwrap_or_else(|_| panic!("bad {prefix} in {text:?}"))
    };
    (field(",d", &[')', ',']), field("ino:", &[' ', '\n']))
}

#[tokio::test]
async fn a_flooded_syslog_socket_counts_exactly_the_kernels_drops() {
    let config = bootkit_syslog_receiver::Config {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        tcp: None,
        tls: None,
    };
    // Bound but not served: nothing drains it, as when the receiver is stalled.
    let receiver = bootkit_syslog_receiver::Receiver::bind(config)
        .await
        .unwrap();
    let socket = receiver.udp_socket().unwrap();
    let port = receiver.udp_addr().unwrap().port();
    // The smallest buffer Linux grants: a few datagrams fit, the rest are dropped.
    let granted = size_receive_buffer("syslog", socket, 1).unwrap();
    assert!(granted < 8192, "granted {granted}");
    let metrics = Arc::new(Metrics::default());
    metrics.udp_drops.watch("syslog", socket).unwrap();

    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let line = b"<14>1 2026-12-07T10:00:00Z node app - - - a line of a rack's burst";
    for _ in 0..SENT {
        sender.send_to(line, ("127.0.0.1", port)).unwrap();
    }

    let db = TestDb::new();
    let store = db.open();
    let text = metrics.render(&store).unwrap();
    let reported: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("provisioner_udp_drops_total{socket=\"syslog\"} "))
        .unwrap_or_else(|| panic!("no syslog drops in {text}"))
        .parse()
        .unwrap();
    let (ss_reported, _inode) = ss_drops(port);
    assert_eq!(reported, ss_reported, "the metric against ss");

    let mut queued = 0u64;
    let mut buffer = [0u8; 512];
    // Straight from the descriptor: tokio's try_recv only reads after the reactor saw it
    // readable, which it never had to (nothing served the socket).
    while rustix::net::recv(socket, &mut buffer, rustix::net::RecvFlags::DONTWAIT).is_ok() {
        queued += 1;
    }
    println!("sent {SENT}, queued {queued}, dropped {reported} ({granted}-byte buffer)");
    assert!(reported > 0, "a flood into a {granted}-byte buffer drops");
    assert_eq!(
        reported + queued,
        SENT as u64,
        "each datagram queued or dropped"
    );
}
