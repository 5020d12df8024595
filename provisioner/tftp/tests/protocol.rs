//! The protocol with a client that sets every option, loses packets and aborts on purpose.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{ClientTransfer, Faults, Received, TestServer, fetch, request, rrq};

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_option_is_acknowledged_in_the_oack() {
    let server = TestServer::start().await;
    let expected = server.random_file("ipxe.efi", 100_000);
    let options = [
        ("blksize", "1428"),
        ("tsize", "0"),
        ("timeout", "2"),
        ("windowsize", "8"),
    ];
    let fetched = fetch(server.addr, "ipxe.efi", &options, Faults::default()).await;
    let expected_oack = [
        ("blksize", "1428"),
        ("tsize", "100000"),
        ("timeout", "2"),
        ("windowsize", "8"),
    ];
    assert_eq!(fetched.oack, Some(pairs(&expected_oack)));
    assert!(fetched.data == expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_larger_than_an_ethernet_frame_are_clamped() {
    let server = TestServer::start().await;
    let expected = server.random_file("big", 20_000);
    let options = [
        ("blksize", "65464"),
        ("windowsize", "1000"),
        ("unknown", "1"),
    ];
    let fetched = fetch(server.addr, "big", &options, Faults::default()).await;
    let clamped = [("blksize", "1468"), ("windowsize", "64")];
    assert_eq!(fetched.oack, Some(pairs(&clamped)));
    assert!(fetched.data == expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_options_the_transfer_is_plain_rfc_1350() {
    let server = TestServer::start().await;
    // A multiple of 512: the transfer ends with an empty block.
    let expected = server.random_file("exact", 512 * 4);
    let fetched = fetch(server.addr, "exact", &[], Faults::default()).await;
    assert_eq!(fetched.oack, None);
    assert!(fetched.data == expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_past_65535_blocks_wraps_block_numbers() {
    let server = TestServer::start().await;
    let expected = server.random_file("kernel", 65_536 * 512 + 1_000);
    let options = [("blksize", "512"), ("windowsize", "16")];
    let fetched = fetch(server.addr, "kernel", &options, Faults::default()).await;
    assert_eq!(fetched.data.len(), expected.len());
    assert!(fetched.data == expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_transfer_resends_from_a_lost_block() {
    let server = TestServer::start().await;
    let expected = server.random_file("win", 50_000);
    let options = [("blksize", "1000"), ("windowsize", "8")];
    let faults = Faults {
        drop_block: Some(3),
        ..Faults::default()
    };
    let fetched = fetch(server.addr, "win", &options, faults).await;
    assert!(fetched.data == expected);
    // Blocks 4..=8 arrived after the gap and were sent again after the ACK of block 2.
    assert!(
        fetched.duplicates >= 5,
        "duplicates: {}",
        fetched.duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ack_makes_the_server_retransmit() {
    let server = TestServer::start().await;
    let expected = server.random_file("retry", 10_000);
    let faults = Faults {
        skip_ack_of: Some(3),
        ..Faults::default()
    };
    let fetched = fetch(server.addr, "retry", &[("timeout", "1")], faults).await;
    assert!(fetched.data == expected);
    assert_eq!(fetched.duplicates, 1, "block 3 came again");
    server
        .wait_for(|c| c.completed.load(Ordering::Relaxed), 1)
        .await;
    assert_eq!(server.count(|c| &c.retransmitted), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tsize_probe_ended_by_the_client_is_an_abort_not_a_failure() {
    let server = TestServer::start().await;
    server.random_file("ipxe.efi", 4_321);
    let mut transfer =
        ClientTransfer::request(server.addr, &rrq("ipxe.efi", "octet", &[("tsize", "0")])).await;
    assert_eq!(
        transfer.receive().await,
        Received::Oack(pairs(&[("tsize", "4321")]))
    );
    // OVMF: ERROR 8 ("option refused") once the size is known, then a fresh request.
    let mut abort = vec![0, 5, 0, 8];
    abort.extend_from_slice(b"tsize only\0");
    transfer.send(&abort).await;
    server
        .wait_for(|c| c.aborted.load(Ordering::Relaxed), 1)
        .await;
    assert_eq!(server.count(|c| &c.failed), 0);
    let fetched = fetch(
        server.addr,
        "ipxe.efi",
        &[("tsize", "0"), ("blksize", "1432")],
        Faults::default(),
    )
    .await;
    assert_eq!(fetched.data.len(), 4_321);
}

/// Sends `packet` as a request and returns the server's ERROR.
async fn error_for(server: &TestServer, packet: &[u8]) -> (u16, String) {
    let mut transfer = ClientTransfer::request(server.addr, packet).await;
    match transfer.receive().await {
        Received::Error { code, message } => (code, message),
        other => panic!("expected an ERROR, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_climbing_out_of_the_root_are_access_violations() {
    let server = TestServer::start().await;
    std::fs::create_dir(server.path("dir")).expect("mkdir");
    for name in [
        "../etc/passwd",
        "/../../etc/passwd",
        "dir/../x",
        "dir/../../etc/passwd",
        "dir",
    ] {
        let (code, message) = error_for(&server, &rrq(name, "octet", &[])).await;
        assert_eq!(code, 2, "{name}: {message}");
    }
    let (code, _) = error_for(&server, &rrq("missing.efi", "octet", &[])).await;
    assert_eq!(code, 1);
    assert_eq!(server.count(|c| &c.refused), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_netascii_are_refused() {
    let server = TestServer::start().await;
    server.random_file("file", 10);
    let (code, message) = error_for(&server, &request(2, "upload", "octet", &[])).await;
    assert_eq!((code, message.as_str()), (2, "read-only server"));
    let (code, message) = error_for(&server, &rrq("file", "netascii", &[])).await;
    assert_eq!((code, message.as_str()), (0, "only octet mode is served"));
    let (code, _) = error_for(&server, b"\x00\x01no-terminator").await;
    assert_eq!(code, 4);
    assert!(!std::fs::exists(server.path("upload")).expect("stat"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_is_given_up_after_bounded_retries() {
    let server = TestServer::start().await;
    server.random_file("file", 5_000);
    let mut transfer =
        ClientTransfer::request(server.addr, &rrq("file", "octet", &[("timeout", "1")])).await;
    assert!(matches!(transfer.receive().await, Received::Oack(_)));
    // Never acknowledged: the OACK comes MAX_SENDS times, then an ERROR, then nothing.
    let mut oacks = 1;
    let ending = loop {
        match transfer.receive_within(Duration::from_secs(10)).await {
            Some(Received::Oack(_)) => oacks += 1,
            other => break other,
        }
    };
    assert_eq!(oacks, bootkit_tftp::MAX_SENDS);
    assert!(
        matches!(ending, Some(Received::Error { code: 0, .. })),
        "{ending:?}"
    );
    server
        .wait_for(|c| c.failed.load(Ordering::Relaxed), 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_transfers_all_complete() {
    let server = TestServer::start().await;
    let expected = server.random_file("ipxe.efi", 300_000);
    let transfers: Vec<_> = (0..100)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let options = [("blksize", "1428"), ("tsize", "0"), ("windowsize", "4")];
                fetch(addr, "ipxe.efi", &options, Faults::default())
                    .await
                    .data
            })
        })
        .collect();
    for transfer in transfers {
        let data = transfer.await.expect("transfer task");
        assert!(data == expected);
    }
    server
        .wait_for(|c| c.completed.load(Ordering::Relaxed), 100)
        .await;
}
