//! The receiver on loopback: the bootkit's own forwarder, raw UDP and both TCP framings.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bootkit_net::syslog::{Forwarder, ForwarderConfig, Severity, Transport};
use bootkit_syslog_receiver::{MAX_FRAME, Message};
use support::TestReceiver;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// The hostname the forwarder sends: a node's boot MAC, as the bootkit's forwarder does.
const NODE_MAC: &str = "52:54:00:12:34:56";

/// Starts the bootkit's forwarder towards `port` (already listening, so the default reconnect
/// backoff never comes into play); the task stops when the test's runtime ends.
fn forwarder(port: u16, transport: Transport) -> Forwarder {
    let config = ForwarderConfig {
        port,
        transport,
        hostname: NODE_MAC.into(),
        ..ForwarderConfig::new("127.0.0.1")
    };
    let (forwarder, task) = Forwarder::new(config);
    tokio::spawn(task.run(|_event| {}));
    forwarder
}

async fn assert_forwarded(receiver: &mut TestReceiver, forwarder: &Forwarder) {
    forwarder.push(
        "tink-worker",
        Severity::Warning,
        "action \"install\" failed: exit 1",
    );
    forwarder.push("bootkit", Severity::Informational, "eth0 up");
    let first = receiver.next().await;
    assert_eq!(first.app_name.as_deref(), Some("tink-worker"));
    assert_eq!(first.severity, Severity::Warning as u8);
    assert_eq!(first.facility, 3, "daemon");
    assert_eq!(first.hostname.as_deref(), Some(NODE_MAC));
    assert_eq!(first.text, "action \"install\" failed: exit 1");
    assert!(first.timestamp.is_some());
    assert!(first.peer.is_loopback());
    let second = receiver.next().await;
    assert_eq!(
        (second.app_name.as_deref(), second.text.as_str()),
        (Some("bootkit"), "eth0 up")
    );
    assert_eq!(receiver.counters.malformed.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootkit_forwarder_over_udp_parses_into_app_severity_and_text() {
    let mut receiver = TestReceiver::start().await;
    let forwarder = forwarder(receiver.udp.port(), Transport::Udp);
    assert_forwarded(&mut receiver, &forwarder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootkit_forwarder_over_tcp_parses_into_app_severity_and_text() {
    let mut receiver = TestReceiver::start().await;
    let forwarder = forwarder(receiver.tcp.port(), Transport::Tcp);
    assert_forwarded(&mut receiver, &forwarder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_counted_and_lf_framed_tcp_streams() {
    let mut receiver = TestReceiver::start().await;
    let mut stream = TcpStream::connect(receiver.tcp).await.expect("connect");
    let counted = "<14>1 - node app - - - one\nline";
    stream
        .write_all(format!("{} {counted}", counted.len()).as_bytes())
        .await
        .expect("write");
    stream
        .write_all(b"<13>Nov 22 06:00:00 node app[1]: two\n<13>three\r\n")
        .await
        .expect("write");
    stream.shutdown().await.expect("close");
    let texts = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ]
    .map(|m| m.text);
    assert_eq!(texts, ["one\nline", "two", "three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_cut_counted_and_the_next_one_survives() {
    let mut receiver = TestReceiver::start().await;
    let mut stream = TcpStream::connect(receiver.tcp).await.expect("connect");
    let oversized = format!("<13>{}", "x".repeat(MAX_FRAME * 2));
    stream
        .write_all(format!("{} {oversized}12 <13>after it", oversized.len()).as_bytes())
        .await
        .expect("write");
    let cut = receiver.next().await;
    assert_eq!(cut.text.len(), MAX_FRAME - "<13>".len());
    assert_eq!(receiver.next().await.text, "after it");
    assert_eq!(receiver.counters.truncated.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_delivered_and_counted_as_malformed() {
    let mut receiver = TestReceiver::start().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    socket
        .send_to(b"\xffnot syslog at all", receiver.udp)
        .await
        .expect("send");
    let message = receiver.next().await;
    assert_eq!(message.text, "\u{fffd}not syslog at all");
    assert_eq!((message.facility, message.severity), (1, 5));
    assert_eq!(receiver.counters.malformed.load(Ordering::Relaxed), 1);
    assert_eq!(receiver.counters.messages.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_udp_messages_are_all_delivered() {
    let mut receiver = TestReceiver::start().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    for index in 0..1000 {
        let line = format!("<30>1 - node load {index} - - message {index}");
        socket
            .send_to(line.as_bytes(), receiver.udp)
            .await
            .expect("send");
        if index % 50 == 49 {
            // A modest rate: the test is about loss in the receiver, not the socket buffer.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_all_arrive(&mut receiver, 1000, |message| {
        assert_eq!(
            message.text,
            format!("message {}", message.proc_id.as_deref().unwrap_or_default())
        );
    })
    .await;
    assert_eq!(receiver.counters.messages.load(Ordering::Relaxed), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tcp_connections_at_once() {
    let mut receiver = TestReceiver::start().await;
    let mut streams = Vec::new();
    for index in 0..50 {
        let mut stream = TcpStream::connect(receiver.tcp).await.expect("connect");
        stream
            .write_all(format!("<13>node{index}[{index}]: hello\n").as_bytes())
            .await
            .expect("write");
        streams.push(stream);
    }
    assert_all_arrive(&mut receiver, 50, |message| {
        assert_eq!(
            message.app_name,
            Some(format!(
                "node{}",
                message.proc_id.as_deref().unwrap_or_default()
            ))
        );
    })
    .await;
}

/// Receives `count` messages whose PROCID numbers them 0..count, each checked by `check`, and
/// asserts every number came once.
async fn assert_all_arrive(receiver: &mut TestReceiver, count: usize, check: impl Fn(&Message)) {
    let mut seen = vec![false; count];
    for _ in 0..count {
        let message = receiver.next().await;
        check(&message);
        let index: usize = message
            .proc_id
            .as_deref()
            .and_then(|p| p.parse().ok())
            .expect("numbered PROCID");
        assert!(
            !std::mem::replace(&mut seen[index], true),
            "message {index} came twice"
        );
    }
}
