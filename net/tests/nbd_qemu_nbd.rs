//! The NBD client against a real server: Debian's qemu-nbd serving a raw image of known
//! bytes on 127.0.0.1, at a free port. The handshake must report the image's size and
//! flags, and reads over the same socket afterwards (the transmission phase the kernel
//! would run) must return the image's bytes. The kernel attach itself needs the nbd
//! module, so it is checked in QEMU, not here.
//!
//! Needs qemu-nbd (package qemu-utils). Without it the test fails with a message naming
//! the package: a skipped test would hide that the client was never checked against a
//! server.

use std::fs::{self, File};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bootkit_net::nbd::attach::plan;
use bootkit_net::nbd::transmission::{self, TransmissionError};
use bootkit_net::nbd::{ExportInfo, HandshakeError, Negotiation, TransmissionFlags, handshake};

const IMAGE_SIZE: usize = 1 << 20;
const EXPORT: &str = "disk";

/// The image's byte at `offset`: varies within a sector and from sector to sector, so a
/// read at the wrong offset cannot pass.
fn pattern(offset: usize) -> u8 {
    offset.to_le_bytes()[0].wrapping_mul(7) ^ (offset >> 9).to_le_bytes()[0]
}

/// qemu-nbd and its image; Drop kills the server and removes the image's directory,
/// whatever happened (a failed assertion unwinds through it).
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start(read_only: bool) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "bootkit-nbd-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&dir).expect("creating the image directory");
        let image = dir.join("disk.raw");
        let bytes: Vec<u8> = (0..IMAGE_SIZE).map(pattern).collect();
        fs::write(&image, bytes).expect("writing the image");
        let port = free_port();
        let mut command = Command::new("qemu-nbd");
        command
            .args(["--persistent", "--shared=2", "--format=raw"])
            .arg(format!("--export-name={EXPORT}"))
            .arg("--bind=127.0.0.1")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Kept out of the test's output (the readiness probe makes qemu-nbd complain),
            // and shown when qemu-nbd fails to start.
            .stderr(File::create(dir.join("qemu-nbd.log")).expect("creating qemu-nbd.log"));
        if read_only {
            command.arg("--read-only");
        }
        let child = match command.arg(&image).spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = fs::remove_dir_all(&dir);
                panic!("qemu-nbd not found: install Debian's package qemu-utils");
            }
            Err(e) => panic!("starting qemu-nbd: {e}"),
        };
        let mut server = Server { child, dir, port };
        server.wait_until_listening();
        server
    }

    /// qemu-nbd has no readiness signal short of --fork; poll until it accepts.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = fs::read_to_string(self.dir.join("qemu-nbd.log")).unwrap_or_default();
                panic!("qemu-nbd exited at start: {status}: {log}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("qemu-nbd did not listen on port {} within 15 s", self.port);
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connecting to qemu-nbd");
        // A misbehaving exchange must fail the test, not hang it.
        let timeout = Some(Duration::from_secs(10));
        stream.set_read_timeout(timeout).unwrap();
        stream.set_write_timeout(timeout).unwrap();
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A port the kernel just gave out and took back: free unless something grabs it within
/// the next moment.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a probe socket");
    listener.local_addr().expect("probe socket address").port()
}

fn read(stream: &mut TcpStream, cookie: u64, offset: usize, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    transmission::read_at(stream, cookie, offset as u64, &mut buf)
        .unwrap_or_else(|e| panic!("reading {len} bytes at {offset}: {e}"));
    buf
}

fn expected(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(pattern).collect()
}

fn check_info(info: &ExportInfo, read_only: bool) {
    assert_eq!(info.size, IMAGE_SIZE as u64);
    assert_eq!(info.negotiation, Negotiation::Go);
    let flags = info.transmission_flags;
    assert!(flags.contains(TransmissionFlags::HAS_FLAGS), "{flags}");
    assert_eq!(flags.read_only(), read_only, "{flags}");
    let sizes = info
        .block_sizes
        .expect("qemu-nbd answers NBD_INFO_BLOCK_SIZE");
    assert!(
        sizes.minimum <= 512 && sizes.preferred >= sizes.minimum,
        "{sizes:?}"
    );
}

#[test]
fn handshake_and_reads_against_qemu_nbd() {
    let server = Server::start(false);
    let mut stream = server.connect();
    let info = handshake(&mut stream, EXPORT).expect("handshake with qemu-nbd");
    check_info(&info, false);
    let plan = plan(&info, false).expect("a kernel plan for a 1 MiB raw image");
    assert_eq!((plan.block_size, plan.size_blocks), (512, 2048));
    assert!(!plan.read_only);

    assert_eq!(read(&mut stream, 1, 0, 4096), expected(0, 4096));
    assert_eq!(
        read(&mut stream, 2, 512 * 777, 1536),
        expected(512 * 777, 1536)
    );
    let tail = IMAGE_SIZE - 512;
    assert_eq!(read(&mut stream, 3, tail, 512), expected(tail, 512));
    // Unaligned and odd-sized: the minimum block size qemu-nbd gives for a file is 1.
    assert_eq!(read(&mut stream, 4, 12345, 321), expected(12345, 321));

    // Past the end: the server's error comes back as an error, and the connection stays
    // usable for the next request.
    let mut buf = [0u8; 512];
    let err = transmission::read_at(&mut stream, 5, IMAGE_SIZE as u64, &mut buf).unwrap_err();
    assert!(matches!(err, TransmissionError::Server { .. }), "{err:?}");
    assert_eq!(read(&mut stream, 6, 0, 16), expected(0, 16));
    transmission::disconnect(&mut stream).expect("NBD_CMD_DISC");
}

#[test]
fn read_only_export() {
    let server = Server::start(true);
    let mut stream = server.connect();
    let info = handshake(&mut stream, EXPORT).expect("handshake with qemu-nbd --read-only");
    check_info(&info, true);
    let plan = plan(&info, false).expect("a kernel plan");
    assert!(
        plan.read_only,
        "the server's READ_ONLY makes the device read-only"
    );
    assert_eq!(read(&mut stream, 1, 4096, 1024), expected(4096, 1024));
    transmission::disconnect(&mut stream).expect("NBD_CMD_DISC");
}

#[test]
fn unknown_export_names_the_export() {
    let server = Server::start(true);
    let mut stream = server.connect();
    let err = handshake(&mut stream, "no-such-export").unwrap_err();
    assert!(
        matches!(err, HandshakeError::UnknownExport { ref export, .. } if export == "no-such-export"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("\"no-such-export\" does not exist"),
        "{err}"
    );
    // --persistent: the refusal left the server up for the next client.
    let mut stream = server.connect();
    check_info(
        &handshake(&mut stream, EXPORT).expect("handshake after a refusal"),
        true,
    );
}
