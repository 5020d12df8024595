//! A TFTP server on 127.0.0.1 serving a temporary root, and a small client that sets the
//! options curl and busybox don't (windowsize, timeout) and misbehaves on purpose.

#![allow(dead_code)] // each test binary uses its own part of the support

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bootkit_tftp::{Config, Counters, Server};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Long enough for a loaded machine; a test only waits this long when it is failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The server task; aborted when dropped, so a failing test does not leave it running.
pub struct TestServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    pub root: tempfile::TempDir,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_serving_outside(Vec::new()).await
    }

    /// A server that follows links out of its root to `outside` (see `Config::outside`).
    pub async fn start_serving_outside(outside: Vec<std::path::PathBuf>) -> Self {
        let root = tempfile::tempdir().expect("temporary root");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            root: root.path().to_path_buf(),
            outside,
        };
        let server = Server::bind(config).await.expect("bind TFTP on loopback");
        let addr = server.local_addr();
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn({
            let counters = Arc::clone(&counters);
            async move {
                server.serve(counters).await.expect("TFTP server");
            }
        });
        Self {
            addr,
            counters,
            root,
            task,
        }
    }

    /// Writes `len` random bytes to `name` in the root and returns them.
    pub fn random_file(&self, name: &str, len: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(len as u64);
        let data: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
        std::fs::write(self.root.path().join(name), &data).expect("write test file");
        data
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.root.path().join(name)
    }

    /// Waits, bounded, until `counter` of the server reaches `value`.
    pub async fn wait_for(&self, counter: impl Fn(&Counters) -> u64, value: u64) {
        for _ in 0..200 {
            if counter(&self.counters) >= value {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server counter never reached {value}: {:?}", self.counters);
    }

    pub fn count(&self, counter: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(&self.counters).load(Ordering::Relaxed)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn rrq(name: &str, mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    request(1, name, mode, options)
}

pub fn request(opcode: u16, name: &str, mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut packet = opcode.to_be_bytes().to_vec();
    for field in [name, mode]
        .into_iter()
        .chain(options.iter().flat_map(|(n, v)| [*n, *v]))
    {
        packet.extend_from_slice(field.as_bytes());
        packet.push(0);
    }
    packet
}

pub fn ack(block: u16) -> [u8; 4] {
    let [high, low] = block.to_be_bytes();
    [0, 4, high, low]
}

/// What the server sent on a transfer's socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Data { block: u16, payload: Vec<u8> },
    Oack(Vec<(String, String)>),
    Error { code: u16, message: String },
}

pub fn decode(packet: &[u8]) -> Received {
    let opcode = u16::from_be_bytes([packet[0], packet[1]]);
    match opcode {
        3 => Received::Data {
            block: u16::from_be_bytes([packet[2], packet[3]]),
            payload: packet[4..].to_vec(),
        },
        5 => Received::Error {
            code: u16::from_be_bytes([packet[2], packet[3]]),
            message: String::from_utf8_lossy(&packet[4..packet.len() - 1]).into_owned(),
        },
        6 => {
            let fields: Vec<String> = packet[2..packet.len() - 1]
                .split(|b| *b == 0)
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            Received::Oack(
                fields
                    .chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            )
        }
        other => panic!("unexpected opcode {other}"),
    }
}

/// A client socket that has sent a request; `server_tid` is learned from the first reply.
pub struct ClientTransfer {
    pub socket: UdpSocket,
    pub server_tid: Option<SocketAddr>,
    server: SocketAddr,
}

impl ClientTransfer {
    pub async fn request(server: SocketAddr, packet: &[u8]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        socket.send_to(packet, server).await.expect("send request");
        Self {
            socket,
            server_tid: None,
            server,
        }
    }

    /// The next packet from the transfer's TID, within `wait`.
    pub async fn receive_within(&mut self, wait: Duration) -> Option<Received> {
        let mut buffer = vec![0u8; 70_000];
        let (len, from) = tokio::time::timeout(wait, self.socket.recv_from(&mut buffer))
            .await
            .ok()?
            .expect("recv");
        assert_ne!(
            from, self.server,
            "replies come from the transfer's own port, not the listening one"
        );
        let tid = *self.server_tid.get_or_insert(from);
        assert_eq!(from, tid, "one transfer, one server port");
        Some(decode(&buffer[..len]))
    }

    pub async fn receive(&mut self) -> Received {
        self.receive_within(WAIT)
            .await
            .expect("a reply from the server in time")
    }

    pub async fn send(&self, packet: &[u8]) {
        let tid = self.server_tid.expect("the server has replied");
        self.socket
            .send_to(packet, tid)
            .await
            .expect("send to server");
    }
}

/// How the client misbehaves during [`fetch`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// Never acknowledge this block the first time it arrives (a lost ACK).
    pub skip_ack_of: Option<u16>,
    /// Pretend this block was lost the first time it arrives (window tests).
    pub drop_block: Option<u16>,
}

pub struct Fetched {
    pub oack: Option<Vec<(String, String)>>,
    pub data: Vec<u8>,
    /// DATA packets that repeated a block already received.
    pub duplicates: u64,
}

/// Reads `name` with `options`, acknowledging as RFC 7440 asks: the last block of each window,
/// or the last block received in order when one is missing.
pub async fn fetch(
    server: SocketAddr,
    name: &str,
    options: &[(&str, &str)],
    faults: Faults,
) -> Fetched {
    let mut transfer = ClientTransfer::request(server, &rrq(name, "octet", options)).await;
    let mut fetched = Fetched {
        oack: None,
        data: Vec::new(),
        duplicates: 0,
    };
    let mut blksize: usize = 512;
    let mut windowsize: u16 = 1;
    let mut faults = faults;
    let mut last_in_order: u16 = 0;
    let mut in_window: u16 = 0;
    // Bounded: a 64 MiB file in 512-byte blocks with some repeats.
    for _ in 0..200_000 {
        match transfer.receive().await {
            Received::Oack(accepted) => {
                for (key, value) in &accepted {
                    match key.as_str() {
                        "blksize" => blksize = value.parse().expect("blksize"),
                        "windowsize" => windowsize = value.parse().expect("windowsize"),
                        _ => {}
                    }
                }
                fetched.oack = Some(accepted);
                transfer.send(&ack(0)).await;
            }
            Received::Error { code, message } => panic!("server error {code}: {message}"),
            Received::Data { block, payload } => {
                if faults.drop_block == Some(block) {
                    faults.drop_block = None;
                    continue;
                }
                if block != last_in_order.wrapping_add(1) {
                    fetched.duplicates += 1;
                    // Out of order or repeated: ask again from the last block held.
                    in_window = 0;
                    transfer.send(&ack(last_in_order)).await;
                    continue;
                }
                let last = payload.len() < blksize;
                fetched.data.extend_from_slice(&payload);
                last_in_order = block;
                in_window += 1;
                if faults.skip_ack_of == Some(block) {
                    faults.skip_ack_of = None;
                    continue;
                }
                if last || in_window == windowsize {
                    in_window = 0;
                    transfer.send(&ack(block)).await;
                }
                if last {
                    return fetched;
                }
            }
        }
    }
    panic!("transfer of {name} did not end");
}

/// Runs a command to completion on a blocking thread; panics with its output on failure.
pub async fn run(program: &str, args: Vec<String>) {
    let program = program.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .arg("120")
            .arg(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"))
    })
    .await
    .expect("command thread");
    assert!(
        output.status.success(),
        "command failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn same_file(path: &Path, expected: &[u8]) {
    let got = std::fs::read(path).expect("downloaded file");
    assert_eq!(got.len(), expected.len(), "size of {}", path.display());
    assert!(got == expected, "content of {} differs", path.display());
}
