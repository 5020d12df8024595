//! Tests of the client against fake servers on 127.0.0.1. The host's clock is never stepped.

use super::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const HOUR_NANOS: i64 = 3_600_000_000_000;
/// Generous for a loaded CI machine; a test waits this long only when it is failing.
const TIMEOUT: Duration = Duration::from_secs(2);

/// How a fake server answers the n-th request (0-based); `None` stays silent.
type Answer = Box<dyn Fn(usize, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// A UDP server on 127.0.0.1 answering with `answer`; runs until the test's runtime ends.
async fn fake_server(answer: Answer) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind fake server");
    let address = socket.local_addr().expect("fake server address");
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            if let Some(reply) = answer(n, &buffer[..len]) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    address
}

/// A well-formed server reply whose clock is `offset_nanos` ahead of ours.
fn reply_with_offset(request: &[u8], offset_nanos: i64) -> Vec<u8> {
    let origin: [u8; 8] = request[40..48].try_into().expect("48-byte request");
    let now = NtpTimestamp::from_unix_nanos(
        packet::unix_nanos(SystemTime::now()) + i128::from(offset_nanos),
    );
    let mut reply = vec![0u8; PACKET_LEN];
    reply[0] = 0x24; // LI 0, VN 4, mode 4
    reply[1] = 2;
    reply[12..16].copy_from_slice(&[10, 0, 0, 1]);
    reply[24..32].copy_from_slice(&origin);
    reply[32..40].copy_from_slice(&now.0.to_be_bytes());
    reply[40..48].copy_from_slice(&now.0.to_be_bytes());
    reply
}

fn offset_server(offset_nanos: i64) -> Answer {
    Box::new(move |_, request| Some(reply_with_offset(request, offset_nanos)))
}

fn assert_near(offset: Offset, expected_nanos: i64) {
    let error = (offset.as_nanos() - expected_nanos).unsigned_abs();
    assert!(
        error < 1_000_000_000,
        "offset {offset}, expected {expected_nanos} ns ± 1 s"
    );
}

#[tokio::test]
async fn query_measures_the_servers_offset() {
    let server = fake_server(offset_server(HOUR_NANOS)).await;
    let sample = query(server, TIMEOUT).await.expect("a sample");
    assert_near(sample.offset, HOUR_NANOS);
    assert_eq!(sample.server, server);
    assert_eq!(sample.stratum, 2);
    assert_eq!(sample.reference_id, [10, 0, 0, 1]);
    assert!(sample.delay < TIMEOUT, "delay {:?}", sample.delay);

    let behind = fake_server(offset_server(-90 * 1_000_000_000)).await;
    let sample = query(behind, TIMEOUT).await.expect("a sample");
    assert_near(sample.offset, -90 * 1_000_000_000);
}

#[tokio::test]
async fn the_request_is_an_ntpv4_client_packet_with_our_time() {
    let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = fake_server(Box::new(move |_, request| {
        let _ = seen.send(request.to_vec());
        Some(reply_with_offset(request, 0))
    }))
    .await;
    query(server, TIMEOUT).await.expect("a sample");
    let request = seen_rx.recv().await.expect("the request");
    assert_eq!(request.len(), PACKET_LEN);
    assert_eq!(request[0], 0x23);
    assert!(request[1..40].iter().all(|&b| b == 0));
    let transmit = NtpTimestamp(u64::from_be_bytes(request[40..48].try_into().expect("8")));
    let now = NtpTimestamp::from_system_time(SystemTime::now());
    assert!(now.nanos_since(transmit).abs() < 1_000_000_000);
}

#[tokio::test]
async fn a_kiss_o_death_is_an_error_naming_the_code() {
    let server = fake_server(Box::new(|_, request| {
        let mut reply = reply_with_offset(request, 0);
        reply[0] = 0xe4;
        reply[1] = 0;
        reply[12..16].copy_from_slice(b"RATE");
        Some(reply)
    }))
    .await;
    let error = query(server, TIMEOUT).await.expect_err("kiss-o'-death");
    assert!(
        matches!(
            &error,
            SntpError::Invalid { reason: InvalidReply::KissOfDeath { code }, .. } if code == "RATE"
        ),
        "{error}"
    );
    assert!(error.to_string().contains("RATE"), "{error}");
}

#[tokio::test]
async fn garbage_replies_are_errors() {
    let server = fake_server(Box::new(|n, _| {
        let mut rng = fastrand::Rng::with_seed(n as u64);
        Some((0..rng.usize(0..100)).map(|_| rng.u8(..)).collect())
    }))
    .await;
    for _ in 0..50 {
        let error = query(server, TIMEOUT).await.expect_err("random bytes");
        assert!(matches!(error, SntpError::Invalid { .. }), "{error}");
    }
}

#[tokio::test]
async fn a_silent_server_times_out_in_time() {
    let server = fake_server(Box::new(|_, _| None)).await;
    let started = Instant::now();
    let timeout = Duration::from_millis(200);
    let error = query(server, timeout).await.expect_err("no reply");
    assert!(matches!(error, SntpError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < TIMEOUT);
}

#[tokio::test]
async fn sync_skips_failing_servers() {
    let silent = fake_server(Box::new(|_, _| None)).await;
    let unsynchronised = fake_server(Box::new(|_, request| {
        let mut reply = reply_with_offset(request, 0);
        reply[0] |= 0xc0;
        Some(reply)
    }))
    .await;
    let good = fake_server(offset_server(HOUR_NANOS)).await;
    let options = SyncOptions {
        timeout: Duration::from_millis(300),
        samples: 1,
    };
    let servers = [
        "not a server!".to_string(),
        silent.to_string(),
        unsynchronised.to_string(),
        good.to_string(),
    ];
    let sample = sync(&servers, &options).await.expect("the good server");
    assert_eq!(sample.server, good);
    assert_near(sample.offset, HOUR_NANOS);
}

#[tokio::test]
async fn sync_reports_every_failure_when_none_answers() {
    let silent = fake_server(Box::new(|_, _| None)).await;
    let options = SyncOptions {
        timeout: Duration::from_millis(200),
        samples: 1,
    };
    let servers = [silent.to_string(), "host:notaport".to_string()];
    let error = sync(&servers, &options)
        .await
        .expect_err("no server answers");
    let SyncError::AllFailed(failures) = &error else {
        panic!("{error}");
    };
    assert_eq!(failures.len(), 2, "{error}");
    assert!(matches!(
        failures[0].error,
        ServerError::Query(SntpError::Timeout { .. })
    ));
    assert!(matches!(failures[1].error, ServerError::BadAddress { .. }));
    let message = error.to_string();
    assert!(
        message.contains(&silent.to_string()) && message.contains("host:notaport"),
        "{message}"
    );

    let none: [&str; 0] = [];
    assert!(matches!(
        sync(&none, &options).await,
        Err(SyncError::NoServers)
    ));
}

#[tokio::test]
async fn sync_takes_the_median_of_several_samples() {
    // One wild answer among three: the median ignores it.
    let offsets = [10_000_000_000, HOUR_NANOS, 12_000_000_000];
    let server = fake_server(Box::new(move |n, request| {
        Some(reply_with_offset(request, offsets[n % offsets.len()]))
    }))
    .await;
    let options = SyncOptions {
        timeout: TIMEOUT,
        samples: 3,
    };
    let sample = sync(&[server.to_string()], &options)
        .await
        .expect("samples");
    assert_near(sample.offset, 12_000_000_000);
}

#[tokio::test]
async fn sync_resolves_host_names() {
    let server = fake_server(offset_server(HOUR_NANOS)).await;
    let options = SyncOptions {
        timeout: TIMEOUT,
        samples: 1,
    };
    // "localhost" may resolve to ::1 first, where nothing listens: the next address is tried.
    let sample = sync(&[format!("localhost:{}", server.port())], &options)
        .await
        .expect("localhost resolves");
    assert_eq!(sample.server, server);
}

#[test]
fn server_forms() {
    let address = |s: &str| match parse_target(s) {
        Ok(Target::Address(a)) => a,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(address("192.0.2.1"), "192.0.2.1:123".parse().expect("addr"));
    assert_eq!(
        address(" 192.0.2.1:1123 "),
        "192.0.2.1:1123".parse().expect("addr")
    );
    assert_eq!(
        address("2001:db8::1"),
        "[2001:db8::1]:123".parse().expect("addr")
    );
    assert_eq!(
        address("[2001:db8::1]"),
        "[2001:db8::1]:123".parse().expect("addr")
    );
    assert_eq!(
        address("[2001:db8::1]:9"),
        "[2001:db8::1]:9".parse().expect("addr")
    );
    assert_eq!(
        parse_target("pool.ntp.org").ok(),
        Some(Target::Name("pool.ntp.org".into(), 123))
    );
    assert_eq!(
        parse_target("ntp1:4123").ok(),
        Some(Target::Name("ntp1".into(), 4123))
    );
    for bad in [
        "",
        "  ",
        "host:",
        "host:70000",
        ":123",
        "a b",
        "[::1",
        "1.2.3.4:x",
    ] {
        assert!(
            matches!(parse_target(bad), Err(ServerError::BadAddress { .. })),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn median_picks_the_middle_offset() {
    let at = |nanos| Sample {
        server: "127.0.0.1:123".parse().expect("addr"),
        offset: Offset::from_nanos(nanos),
        delay: Duration::ZERO,
        stratum: 1,
        leap: LeapIndicator::NoWarning,
        reference_id: *b"GPS\0",
    };
    assert_eq!(median(vec![]), None);
    assert_eq!(median(vec![at(5)]), Some(at(5)));
    assert_eq!(median(vec![at(9), at(-3), at(5)]), Some(at(5)));
    assert_eq!(median(vec![at(9), at(-3), at(5), at(7)]), Some(at(5)));
}

#[test]
fn step_arithmetic() {
    let now = libc::timespec {
        tv_sec: 1_000,
        tv_nsec: 900_000_000,
    };
    let plus = shifted(now, Offset::from_nanos(HOUR_NANOS + 200_000_000)).expect("in range");
    assert_eq!((plus.tv_sec, plus.tv_nsec), (4_601, 100_000_000));
    let minus = shifted(now, Offset::from_nanos(-950_000_000)).expect("in range");
    assert_eq!((minus.tv_sec, minus.tv_nsec), (999, 950_000_000));
    assert!(matches!(
        shifted(now, Offset::from_nanos(-2_000_000_000_000)),
        Err(StepError::OutOfRange(_))
    ));
}

#[test]
fn sample_display() {
    let sample = Sample {
        server: "192.0.2.1:123".parse().expect("addr"),
        offset: Offset::from_nanos(HOUR_NANOS),
        delay: Duration::from_micros(1_240),
        stratum: 2,
        leap: LeapIndicator::NoWarning,
        reference_id: [0; 4],
    };
    assert_eq!(
        sample.to_string(),
        "offset +3600.000000s from 192.0.2.1:123 (stratum 2, round trip 1.2 ms)"
    );
}
