//! The server under a low open-files limit, as on a host whose soft limit was never raised:
//! it raises the soft limit to the hard one, sizes its transfer cap from it, answers requests
//! beyond the cap with an ERROR (not silence, not a crash), and serves normally afterwards.
//!
//! The server runs in a child process (this test binary again, `serve_in_a_child`) started
//! under util-linux's `prlimit`, so the limit is the kernel's, not a number passed in.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::net::UdpSocket;

mod support;

use support::{Received, decode, rrq, run, same_file};

/// Where the child serves from; set only in the child.
const CHILD_ROOT: &str = "BOOTKIT_TFTP_TEST_CHILD_ROOT";
const SOFT_LIMIT: u64 = 64;
const HARD_LIMIT: u64 = 200;

/// Not a test of its own: the server the test below runs under `prlimit`. It prints the
/// open-files limit it found and set, its cap and its port, and serves until stdin closes.
#[test]
fn serve_in_a_child() {
    let Some(root) = std::env::var_os(CHILD_ROOT) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let limit = bootkit_tftp::raise_open_files_limit().expect("raise the limit");
        let config = bootkit_tftp::Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            root: root.into(),
            outside: Vec::new(),
        };
        let server = bootkit_tftp::Server::bind(config).await.expect("bind");
        println!("LIMIT {} {}", limit.before, limit.now);
        println!("CAP {}", server.max_transfers());
        println!("PORT {}", server.local_addr().port());
        let counters = std::sync::Arc::default();
        let serving = tokio::spawn(server.serve(counters));
        // The parent closes stdin to stop the server.
        tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
            .await
            .expect("stdin thread")
            .expect("read stdin");
        serving.abort();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_descriptor_limit_is_raised_and_caps_transfers_with_an_error_beyond() {
    let root = tempfile::tempdir().expect("root");
    // Large enough that no transfer ends by itself while held (blocks of 512 unacknowledged).
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.path().join("big"), &big).expect("write");
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={SOFT_LIMIT}:{HARD_LIMIT}"))
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "serve_in_a_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROOT, root.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("prlimit runs (util-linux)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut value = |key: &str| -> Vec<u64> {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                lines.read_line(&mut line).expect("read child") > 0,
                "the child ended before printing {key}"
            );
            // libtest may print `test serve_in_a_child ... ` on the same line first.
            if let Some((_, rest)) = line.split_once(key) {
                return rest
                    .split_whitespace()
                    .map(|n| n.parse().expect("a number"))
                    .collect();
            }
        }
    };
    assert_eq!(
        value("LIMIT "),
        [SOFT_LIMIT, HARD_LIMIT],
        "soft raised to hard"
    );
    let cap = value("CAP ")[0];
    assert_eq!(
        cap,
        (HARD_LIMIT - bootkit_tftp::RESERVED_DESCRIPTORS) / bootkit_tftp::DESCRIPTORS_PER_TRANSFER,
        "the cap is sized from the raised limit"
    );
    let port = u16::try_from(value("PORT ")[0]).expect("a port");
    let server = SocketAddr::from(([127, 0, 0, 1], port));

    // Ten more requests than the cap, each held open by never acknowledging.
    let beyond = 10;
    let mut clients = Vec::new();
    for _ in 0..cap + beyond {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        socket
            .send_to(&rrq("big", "octet", &[]), server)
            .await
            .expect("send");
        clients.push(socket);
        // Paced a little: the listening socket's queue is not what is tested here.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (mut transfers, mut busy) = (Vec::new(), 0);
    for socket in &clients {
        let mut buffer = vec![0u8; 2048];
        let (len, from) = tokio::time::timeout(support::WAIT, socket.recv_from(&mut buffer))
            .await
            .expect("every request is answered")
            .expect("receive");
        match decode(&buffer[..len]) {
            Received::Data { block: 1, .. } => transfers.push((socket, from)),
            Received::Error { code: 0, message } if message.contains("busy") => busy += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(transfers.len() as u64, cap, "the cap's transfers run");
    assert_eq!(busy, beyond, "the rest are told the server is busy");

    // The held transfers end (the clients abort them), and the server serves again.
    for (socket, tid) in &transfers {
        let abort = [0, 5, 0, 0, b'd', b'o', b'n', b'e', 0];
        socket.send_to(&abort, tid).await.expect("abort");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = tempfile::tempdir().expect("output dir");
    let output = out.path().join("big");
    run(
        "curl",
        vec![
            "--silent".into(),
            "--show-error".into(),
            "-o".into(),
            output.display().to_string(),
            format!("tftp://{server}/big"),
        ],
    )
    .await;
    same_file(&output, &big);

    assert!(
        child.try_wait().expect("child status").is_none(),
        "the server is still running"
    );
    drop(child.stdin.take().map(|mut stdin| stdin.write_all(b"\n")));
    let status = child.wait().expect("child ends");
    assert!(status.success(), "the server child failed: {status}");
}
