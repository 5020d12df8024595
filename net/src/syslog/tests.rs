//! The forwarder against UDP and TCP listeners on 127.0.0.1. Every wait is bounded.

use super::*;

use std::net::SocketAddr;

use bootkit_common::backoff::Backoff;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

/// Long enough for a loaded machine; a test only waits this long when it is failing.
pub(super) const WAIT: Duration = Duration::from_secs(5);

pub(super) fn config(port: u16, transport: Transport) -> ForwarderConfig {
    ForwarderConfig {
        port,
        transport,
        hostname: "52:54:00:12:34:56".into(),
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100))
            .with_jitter(50),
        io_timeout: Duration::from_secs(2),
        ..ForwarderConfig::new("127.0.0.1")
    }
}

/// Start the task, passing its events to the returned channel.
pub(super) fn spawn(task: ForwarderTask) -> mpsc::UnboundedReceiver<Event> {
    let (events, receiver) = mpsc::unbounded_channel();
    tokio::spawn(task.run(move |event| {
        let _ = events.send(event);
    }));
    receiver
}

async fn next_datagram(socket: &UdpSocket) -> String {
    let mut buffer = vec![0u8; 65_536];
    let len = tokio::time::timeout(WAIT, socket.recv(&mut buffer))
        .await
        .expect("a datagram in time")
        .expect("recv");
    String::from_utf8(buffer[..len].to_vec()).expect("UTF-8 line")
}

/// The fields of an RFC 5424 line: PRI+VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID,
/// SD, MSG.
pub(super) fn fields(line: &str) -> Vec<&str> {
    line.splitn(8, ' ').collect()
}

/// Reads octet-counted frames (`LEN SP MSG`) from a TCP or TLS stream.
pub(super) struct FrameReader {
    stream: Box<dyn AsyncRead + Unpin + Send>,
    buffer: Vec<u8>,
}

impl FrameReader {
    pub(super) fn new(stream: impl AsyncRead + Unpin + Send + 'static) -> Self {
        FrameReader {
            stream: Box::new(stream),
            buffer: Vec::new(),
        }
    }

    pub(super) async fn next(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, self.read_frame())
            .await
            .expect("a frame in time")
    }

    async fn read_frame(&mut self) -> Option<String> {
        loop {
            if let Some(space) = self.buffer.iter().position(|&b| b == b' ') {
                let len: usize = std::str::from_utf8(&self.buffer[..space])
                    .expect("ASCII length")
                    .parse()
                    .expect("MSG-LEN is a number");
                assert!(len > 0, "MSG-LEN 0");
                if self.buffer.len() > space + len {
                    let frame: Vec<u8> =
                        self.buffer.drain(..=space + len).skip(space + 1).collect();
                    return Some(String::from_utf8(frame).expect("UTF-8 frame"));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.expect("read");
            if n == 0 {
                assert!(self.buffer.is_empty(), "partial frame at EOF");
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn accept(listener: &TcpListener) -> FrameReader {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a connection in time")
        .expect("accept");
    FrameReader::new(stream)
}

pub(super) async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the task is running")
}

#[tokio::test]
async fn udp_lines_from_before_and_after_the_network_is_up() {
    let listener = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (forwarder, task) = Forwarder::new(config(port, Transport::Udp));

    // The network is "down": nothing runs the task yet.
    forwarder.push("init", Severity::Informational, "mounting /proc");
    forwarder.push("rootfs", Severity::Error, "early failure");
    let (up, up_receiver) = watch::channel(false);
    tokio::spawn(task.run_when_up(up_receiver, |_| {}));
    tokio::time::sleep(Duration::from_millis(50)).await;
    forwarder.push("init", Severity::Warning, "still no network");
    up.send(true).expect("task waiting");
    forwarder.push(
        "tink-worker",
        Severity::Notice,
        "started after network-online",
    );

    let lines = [
        next_datagram(&listener).await,
        next_datagram(&listener).await,
        next_datagram(&listener).await,
        next_datagram(&listener).await,
    ];
    let expected = [
        ("<30>1", "init", "mounting /proc"),
        ("<27>1", "rootfs", "early failure"),
        ("<28>1", "init", "still no network"),
        ("<29>1", "tink-worker", "started after network-online"),
    ];
    for (line, (pri, app, msg)) in lines.iter().zip(expected) {
        let f = fields(line);
        assert_eq!(f.len(), 8, "{line}");
        assert_eq!(
            (f[0], f[2], f[3], f[4], f[5], f[6], f[7]),
            (pri, "52:54:00:12:34:56", app, "-", "-", "-", msg),
            "{line}"
        );
        assert!(
            f[1].ends_with('Z') && f[1].len() == 27,
            "timestamp {}",
            f[1]
        );
    }
}

#[tokio::test]
async fn full_buffer_drops_are_counted_then_reported_first() {
    let listener = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (forwarder, task) = Forwarder::new(ForwarderConfig {
        capacity: 3,
        ..config(port, Transport::Udp)
    });
    for i in 0..10 {
        forwarder.push("init", Severity::Informational, &format!("line {i}"));
    }
    assert_eq!(forwarder.dropped(), 7);

    let mut events = spawn(task);
    let notice = next_datagram(&listener).await;
    assert_eq!(
        fields(&notice)[2..],
        [
            "52:54:00:12:34:56",
            "syslog",
            "-",
            "-",
            "-",
            "syslog forwarding: dropped 7 lines while the network was down"
        ]
    );
    assert!(notice.starts_with("<28>1 "), "{notice}");
    for i in 0..3 {
        let line = next_datagram(&listener).await;
        assert_eq!(
            fields(&line)[7],
            format!("line {i}"),
            "the oldest lines are kept"
        );
    }
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Dropped { count: 7 }
    ));
    assert_eq!(forwarder.dropped(), 0);

    // Once sending, the buffer drains and nothing more is dropped.
    forwarder.push("init", Severity::Informational, "after");
    assert_eq!(fields(&next_datagram(&listener).await)[7], "after");
    assert_eq!(forwarder.dropped(), 0);
}

#[tokio::test]
async fn hostname_set_later_applies_to_buffered_lines() {
    let listener = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (forwarder, task) = Forwarder::new(ForwarderConfig {
        hostname: String::new(),
        ..config(port, Transport::Udp)
    });
    forwarder.push(
        "init",
        Severity::Informational,
        "before the worker id is known",
    );
    forwarder.set_hostname("worker 7");
    spawn(task);
    let line = next_datagram(&listener).await;
    assert_eq!(fields(&line)[2], "worker_7", "{line}");
}

#[tokio::test]
async fn tcp_octet_counted_frames_before_and_after() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (forwarder, task) = Forwarder::new(config(port, Transport::Tcp));
    push_before_connecting(&forwarder);
    let mut events = spawn(task);
    let mut reader = accept(&listener).await;
    push_after_and_check_frames(&forwarder, &mut reader).await;
    let Event::Connected {
        peer, transport, ..
    } = next_event(&mut events).await
    else {
        panic!("first event is the connection");
    };
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(transport, Transport::Tcp);
}

#[tokio::test]
async fn tcp_reconnects_with_backoff_and_keeps_lines() {
    // Nothing listens yet: the port is reserved, then freed.
    let reserved = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = reserved.local_addr().expect("address").port();
    drop(reserved);
    let (forwarder, task) = Forwarder::new(config(port, Transport::Tcp));
    forwarder.push("init", Severity::Informational, "while refused");
    let mut events = spawn(task);
    let Event::Unreachable { error, .. } = next_event(&mut events).await else {
        panic!("the refused connection is reported");
    };
    assert!(matches!(error, ForwardError::Connect { .. }), "{error}");

    // The log host comes up: the buffered line arrives.
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind");
    let mut first = accept(&listener).await;
    assert_eq!(
        fields(&first.next().await.expect("line"))[7],
        "while refused"
    );
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));

    // The log host drops the connection: the forwarder notices while idle and reconnects.
    drop(first);
    assert!(matches!(
        next_event(&mut events).await,
        Event::Unreachable {
            error: ForwardError::Closed { .. },
            ..
        }
    ));
    let mut second = accept(&listener).await;
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    forwarder.push("init", Severity::Informational, "after reconnecting");
    assert_eq!(
        fields(&second.next().await.expect("line"))[7],
        "after reconnecting"
    );
}

#[tokio::test]
async fn the_task_ends_when_every_forwarder_is_dropped() {
    let listener = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (forwarder, task) = Forwarder::new(config(port, Transport::Udp));
    let clone = forwarder.clone();
    forwarder.push("init", Severity::Informational, "last words");
    drop(forwarder);
    drop(clone);
    tokio::time::timeout(WAIT, task.run(|_| {}))
        .await
        .expect("run returns once the buffer is drained");
    assert_eq!(fields(&next_datagram(&listener).await)[7], "last words");
}

#[tokio::test]
async fn run_when_up_returns_if_the_network_never_comes() {
    let (forwarder, task) = Forwarder::new(config(9, Transport::Udp));
    forwarder.push("init", Severity::Informational, "never sent");
    let (up, up_receiver) = watch::channel(false);
    drop(up);
    tokio::time::timeout(WAIT, task.run_when_up(up_receiver, |_| {}))
        .await
        .expect("returns when the signal is gone");
}

#[test]
fn push_never_blocks_without_a_runtime_and_bounds_the_buffer() {
    let (forwarder, _task) = Forwarder::new(ForwarderConfig {
        capacity: 4,
        ..ForwarderConfig::new("192.0.2.1")
    });
    for _ in 0..1000 {
        forwarder.push("init", Severity::Informational, "x");
    }
    assert_eq!(forwarder.dropped(), 996);
    // From another thread too: the forwarder is shared by every logger in PID 1.
    let other = forwarder.clone();
    std::thread::spawn(move || other.push("svc", Severity::Error, "y"))
        .join()
        .expect("thread");
    assert_eq!(forwarder.dropped(), 997);
}

#[test]
fn push_drops_lines_once_the_task_is_gone() {
    let (forwarder, task) = Forwarder::new(ForwarderConfig::new("192.0.2.1"));
    drop(task);
    forwarder.push("init", Severity::Informational, "x");
    assert_eq!(forwarder.dropped(), 1);
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    assert_eq!(forwarder_truncate("héllo", 2), "h");
    assert_eq!(forwarder_truncate("héllo", 3), "hé");
    assert_eq!(forwarder_truncate("abc", 10), "abc");
    assert_eq!(
        forwarder_truncate(&"é".repeat(2000), MAX_MSG_LEN).len(),
        MAX_MSG_LEN
    );
}

fn forwarder_truncate(s: &str, max: usize) -> &str {
    super::forwarder::truncate(s, max)
}

#[test]
fn config_defaults() {
    let config = ForwarderConfig::new("10.0.0.1");
    assert_eq!(config.port, 514);
    assert_eq!(config.transport, Transport::Udp);
    assert_eq!(config.facility, Facility::Daemon);
    assert_eq!(config.capacity, 4096);
    assert_eq!(config.ca_file, None);
    assert_eq!(
        config.ca_file(),
        std::path::Path::new("/etc/ssl/certs/ca-certificates.crt")
    );
    assert_eq!(Transport::Tls.default_port(), 6514);
    assert_eq!(Transport::Tcp.default_port(), 514);
    assert_eq!(Transport::Tls.to_string(), "tls");
}

#[test]
fn event_messages() {
    assert_eq!(
        Event::Dropped { count: 3 }.to_string(),
        "syslog forwarding: dropped 3 lines while the network was down"
    );
    let unreachable = Event::Unreachable {
        error: ForwardError::NoAddress {
            host: "loghost".into(),
        },
        retry_in: Duration::from_millis(1500),
    };
    assert_eq!(
        unreachable.to_string(),
        "log host unreachable, buffering lines and retrying in 1.5s: loghost resolves to no address"
    );
}

#[tokio::test]
async fn udp_to_a_closed_port_keeps_going_without_reconnecting() {
    let reserved = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = reserved.local_addr().expect("address").port();
    drop(reserved);
    let (forwarder, task) = Forwarder::new(config(port, Transport::Udp));
    let mut events = spawn(task);
    // Nobody listens: these are lost, and the ICMP "port unreachable" they draw must not
    // stop the forwarder.
    forwarder.push("init", Severity::Informational, "lost 1");
    forwarder.push("init", Severity::Informational, "lost 2");
    forwarder.push("init", Severity::Informational, "lost 3");
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let listener = UdpSocket::bind(("127.0.0.1", port)).await.expect("rebind");
    forwarder.push("init", Severity::Informational, "heard");
    assert_eq!(fields(&next_datagram(&listener).await)[7], "heard");
    assert!(events.try_recv().is_err(), "no outage reported for UDP");
}

/// Lines pushed before the connection exists, for [`push_after_and_check_frames`]. One holds a
/// newline and non-ASCII: octet counting, not newline framing, must delimit it.
pub(super) fn push_before_connecting(forwarder: &Forwarder) {
    forwarder.push("init", Severity::Informational, "before");
    forwarder.push("svc", Severity::Debug, "two\nlines, ünïcode");
}

/// Push one more line once connected, then check that a stream transport delivered all three
/// whole and in order.
pub(super) async fn push_after_and_check_frames(forwarder: &Forwarder, reader: &mut FrameReader) {
    forwarder.push("svc", Severity::Error, "after");
    let frames = [
        reader.next().await.expect("frame 1"),
        reader.next().await.expect("frame 2"),
        reader.next().await.expect("frame 3"),
    ];
    assert_eq!(fields(&frames[0])[3..], ["init", "-", "-", "-", "before"]);
    assert_eq!(fields(&frames[1])[7], "two\nlines, ünïcode");
    assert!(frames[1].starts_with("<31>1 "));
    assert_eq!(fields(&frames[2])[3..], ["svc", "-", "-", "-", "after"]);
    assert!(frames.iter().all(|f| fields(f)[2] == "52:54:00:12:34:56"));
}
