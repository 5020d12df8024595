//! The bootkit's network in QEMU: DHCP on the user-mode network, and log forwarding and NBD
//! through forwards to servers the test runs on the host's loopback.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::{
    BOOT_TIMEOUT, STEP_TIMEOUT, boot, boot_forwarding, image_with_services, position, service,
};
use qemu_tests::GUEST_FORWARD_ADDRESS;

/// QEMU's user-mode DHCP server hands out 10.0.2.15 (restricted, it offers no router or DNS:
/// `nameserver=` supplies the DNS server); a service that needs the network starts only once
/// the lease is in, and finds resolv.conf written.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn dhcp_lease_brings_the_network_online_before_dependent_services() -> Result<()> {
    let online = service(
        "after-net",
        r#"
command = "/bin/sh"
args = ["-c", "echo network is up; cat /etc/resolv.conf; ip -4 addr show dev eth0"]
requires = ["network-online"]
restart = "never"
"#,
    );
    let image = image_with_services("dhcp_user_net", &[online])?;
    let mut vm = boot("dhcp_user_net", &image, "nameserver=192.0.2.53")?;
    vm.wait_for("eth0: lease 10.0.2.15/24", BOOT_TIMEOUT)?;
    vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
    vm.wait_for("after-net: network is up", STEP_TIMEOUT)?;
    vm.wait_for("after-net: nameserver 192.0.2.53", STEP_TIMEOUT)?;
    vm.wait_for("after-net:     inet 10.0.2.15/24", STEP_TIMEOUT)?;
    let console = vm.console();
    let lease = position(&console, "eth0: lease 10.0.2.15/24").context("lease line")?;
    let started = position(&console, "after-net: started").context("service start")?;
    assert!(lease < started, "the service started after the lease");
    Ok(())
}

/// Accept one TCP connection on `listener` and pass on the RFC 6587 octet-counted syslog
/// frames it carries; reads give up after `deadline`.
fn collect_syslog(listener: TcpListener, deadline: Duration) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(deadline));
        let mut reader = BufReader::new(stream);
        while let Some(frame) = read_frame(&mut reader) {
            if sender.send(frame).is_err() {
                return;
            }
        }
    });
    lines
}

/// One RFC 6587 octet-counted frame (`LEN SP MSG`), or None at the end of the stream.
fn read_frame(reader: &mut impl BufRead) -> Option<String> {
    let mut length = Vec::new();
    if reader.read_until(b' ', &mut length).ok()? == 0 {
        return None;
    }
    let length: usize = String::from_utf8_lossy(&length).trim().parse().ok()?;
    let mut frame = vec![0; length];
    reader.read_exact(&mut frame).ok()?;
    Some(String::from_utf8_lossy(&frame).into_owned())
}

/// `syslog_host=`: lines of the init (also those logged before the network was up) and of a
/// service reach the log host as RFC 5424 with HOSTNAME = worker_id and APP-NAME = source.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn log_lines_reach_the_syslog_host_including_early_ones() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let lines = collect_syslog(listener, Duration::from_secs(120));
    let image = image_with_services("syslog_tcp", &[])?;
    let mut vm = boot_forwarding(
        "syslog_tcp",
        &image,
        &format!(
            "syslog_host={GUEST_FORWARD_ADDRESS} syslog_port=6514 syslog_transport=tcp worker_id=node-7"
        ),
        &[(6514, port)],
    )?;
    vm.wait_for("bootkit: ready in", BOOT_TIMEOUT)?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut seen = Vec::new();
    let wanted = |seen: &[String]| {
        seen.iter()
            .any(|l| l.contains(" node-7 rootfs - - - unpacking"))
            && seen
                .iter()
                .any(|l| l.contains(" node-7 hello - - - hello from the bootkit"))
    };
    while !wanted(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => bail!("syslog lines missing; received:\n{}", seen.join("\n")),
        }
    }
    let early = seen
        .iter()
        .find(|l| l.contains("rootfs - - - unpacking"))
        .context("early")?;
    assert!(
        early.starts_with("<30>1 "),
        "daemon.info, RFC 5424 version 1: {early}"
    );
    Ok(())
}

/// A qemu-nbd server on the host's loopback, stopped when dropped.
struct NbdServer {
    child: Child,
    port: u16,
}

impl NbdServer {
    fn start(image: &std::path::Path) -> Result<NbdServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("qemu-nbd")
            .args([
                "--persistent",
                "--shared=4",
                "--export-name=disk",
                "--bind=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .args(["--format=raw"])
            .arg(image)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting qemu-nbd (install qemu-utils with scripts/setup.sh)")?;
        let server = NbdServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("qemu-nbd did not listen on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bootkit.nbd=`: /dev/nbd0 is attached to the test's qemu-nbd before a service that needs
/// `nbd` starts, and that service reads the image's known bytes from it.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn nbd_device_is_attached_and_reads_the_servers_bytes() -> Result<()> {
    let dir = common::images_dir().join("nbd_attach");
    std::fs::create_dir_all(&dir)?;
    let disk = dir.join("disk.raw");
    let mut bytes = b"BOOTKIT-NBD-TEST-PAYLOAD".to_vec();
    bytes.resize(1 << 20, 0);
    std::fs::write(&disk, &bytes)?;
    let server = NbdServer::start(&disk)?;
    let reader = service(
        "reader",
        r#"
command = "/bin/sh"
args = ["-c", "echo read: $(head -c 24 /dev/nbd0)"]
requires = ["nbd"]
restart = "never"
"#,
    );
    let image = image_with_services("nbd_attach", &[reader])?;
    let mut vm = boot_forwarding(
        "nbd_attach",
        &image,
        &format!("bootkit.nbd=nbd0:{GUEST_FORWARD_ADDRESS}:10809/disk"),
        &[(10809, server.port)],
    )?;
    vm.wait_for("target nbd reached", BOOT_TIMEOUT)?;
    vm.wait_for("reader: read: BOOTKIT-NBD-TEST-PAYLOAD", STEP_TIMEOUT)?;
    Ok(())
}

/// A CA and a server certificate for the guest-side forward address, made for this test.
struct TlsLogHost {
    ca_pem: String,
    config: std::sync::Arc<rustls::ServerConfig>,
}

impl TlsLogHost {
    fn new() -> Result<TlsLogHost> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec![GUEST_FORWARD_ADDRESS.to_string()])?
            .signed_by(&key, &ca, &ca_key)?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )?;
        Ok(TlsLogHost {
            ca_pem: ca.pem(),
            config: std::sync::Arc::new(config),
        })
    }

    /// Accept one connection on `listener`, do the TLS handshake, and pass on the octet-counted
    /// frames it carries.
    fn serve(&self, listener: TcpListener, deadline: Duration) -> mpsc::Receiver<String> {
        let (sender, lines) = mpsc::channel();
        let config = self.config.clone();
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_read_timeout(Some(deadline));
            let Ok(connection) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut reader = BufReader::new(rustls::StreamOwned::new(connection, stream));
            while let Some(frame) = read_frame(&mut reader) {
                if sender.send(frame).is_err() {
                    return;
                }
            }
        });
        lines
    }
}

/// `syslog_transport=tls`: the log host's certificate is checked against the CA the image
/// carries (`syslog_ca=`), and the lines arrive over TLS.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn log_lines_reach_the_syslog_host_over_tls_with_the_images_ca() -> Result<()> {
    let host = TlsLogHost::new()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let lines = host.serve(listener, Duration::from_secs(120));
    let mut config = common::base_config()?;
    config.overlay.push(bootkit_builder::Overlay::inline(
        "/etc/bootkit/syslog-ca.pem",
        &host.ca_pem,
    ));
    let image = common::build("syslog_tls", &config)?;
    let mut vm = boot_forwarding(
        "syslog_tls",
        &image,
        &format!(
            "syslog_host={GUEST_FORWARD_ADDRESS} syslog_transport=tls \
             syslog_ca=/etc/bootkit/syslog-ca.pem worker_id=node-tls"
        ),
        &[(6514, port)],
    )?;
    vm.wait_for("bootkit: ready in", BOOT_TIMEOUT)?;
    let line = wait_for_line(&lines, " node-tls hello - - - hello from the bootkit")?;
    assert!(line.starts_with("<30>1 "), "RFC 5424 over TLS: {line}");
    Ok(())
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> Result<String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => bail!(
                "no syslog line with {needle:?}; received:\n{}",
                seen.join("\n")
            ),
        }
    }
}
