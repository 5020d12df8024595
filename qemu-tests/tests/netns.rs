//! The bootkit's network on a test network each test builds in its own network namespace: a
//! bridge with the host side's address, a tap for QEMU, and the test's servers (Debian's
//! dnsmasq, qemu-nbd, listeners in test threads). Nothing leaves the namespace: it has no
//! route out, and it is deleted (with its servers killed) when the test ends.
//!
//! Needs root (namespaces, taps), dnsmasq (dnsmasq-base) and qemu-nbd (qemu-utils).

// The boots here go through this file's own `boot_on`, so common's user-net `boot` helpers
// are unused in this test binary.
mod common;

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::{BOOT_TIMEOUT, STEP_TIMEOUT, image_with_services, position, service};
use qemu_tests::{Daemon, NetNs, TestImage, Vm, VmConfig};

/// Poll interval of the listener threads' stop flag.
const POLL: Duration = Duration::from_millis(200);

/// A VM on the namespace's taps: each `(tap, mac)` becomes a virtio NIC, eth0 first.
fn boot_on(
    ns: &NetNs,
    name: &str,
    image: &TestImage,
    extra: &str,
    nics: &[(&str, &str)],
) -> Result<Vm> {
    let mut config = VmConfig::new(name, &image.kernel, &image.initrd)
        .append(&image.cmdline)
        .append_more(extra)
        .cpus(2)
        .wrapped_in(&ns.exec_prefix());
    for (index, (tap, mac)) in nics.iter().enumerate() {
        config = config.tap_nic(&format!("n{index}"), tap, mac);
    }
    Ok(Vm::boot(config)?)
}

/// A thread serving until dropped: Drop raises the flag and joins it (the loops poll the
/// flag at least every [`POLL`]).
struct Worker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(name: &str, body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(flag))?;
        Ok(Worker {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// A UDP socket bound inside the namespace (to all its addresses: the bridge's address may
/// not be usable before a port has carrier).
fn udp_in(ns: &NetNs, port: u16) -> Result<UdpSocket> {
    let socket = ns.within(move || UdpSocket::bind(("0.0.0.0", port)))??;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Every datagram received on `port` in the namespace (RFC 5424 syslog over UDP: one
/// message per datagram), as text.
fn udp_collector(ns: &NetNs, port: u16) -> Result<(Worker, mpsc::Receiver<String>)> {
    let socket = udp_in(ns, port)?;
    let (sender, lines) = mpsc::channel();
    let worker = Worker::spawn("udp-syslog", move |stop| {
        let mut buffer = [0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            match socket.recv_from(&mut buffer) {
                Ok((len, _)) => {
                    let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
                    if sender.send(text).is_err() {
                        return;
                    }
                }
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    })?;
    Ok((worker, lines))
}

/// 2030-01-01T00:00:00Z in NTP seconds (since 1900): far from any real clock, so the guest's
/// year proves the clock came from this server.
const NTP_2030: u64 = 1_893_456_000 + 2_208_988_800;

/// An SNTP server on port 123 in the namespace that always says it is [`NTP_2030`]: a
/// 48-byte mode 4 (server) stratum 1 reply whose origin is the request's transmit timestamp.
fn sntp_responder(ns: &NetNs) -> Result<Worker> {
    let socket = udp_in(ns, 123)?;
    Worker::spawn("sntp", move |stop| {
        let mut request = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let (len, client) = match socket.recv_from(&mut request) {
                Ok(got) => got,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(_) => return,
            };
            if len < 48 {
                continue;
            }
            let now = (NTP_2030 << 32).to_be_bytes();
            let mut reply = [0u8; 48];
            reply[0] = 0x24; // LI 0, version 4, mode 4
            reply[1] = 1; // stratum 1
            reply[2] = request[2]; // poll, echoed
            reply[3] = 0xec; // precision 2^-20 s
            reply[12..16].copy_from_slice(b"TEST"); // reference id of a stratum 1 source
            reply[16..24].copy_from_slice(&now); // reference
            reply[24..32].copy_from_slice(&request[40..48]); // origin = client's transmit
            reply[32..40].copy_from_slice(&now); // receive
            reply[40..48].copy_from_slice(&now); // transmit
            let _ = socket.send_to(&reply, client);
        }
    })
}

/// A TCP listener in the namespace on `port`: each connection's first line is sent to the
/// receiver, then the connection is closed.
fn tcp_lines(ns: &NetNs, port: u16) -> Result<(Worker, mpsc::Receiver<String>)> {
    let listener = ns.within(move || TcpListener::bind(("0.0.0.0", port)))??;
    // Non-blocking accept, so the stop flag is seen.
    listener.set_nonblocking(true)?;
    let (sender, lines) = mpsc::channel();
    let worker = Worker::spawn("tcp-lines", move |stop| {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut line = String::new();
                    if BufReader::new(stream).read_line(&mut line).is_ok()
                        && sender.send(line.trim_end().to_string()).is_err()
                    {
                        return;
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(_) => return,
            }
        }
    })?;
    Ok((worker, lines))
}

/// Receives from `lines` until `done` holds for what has arrived, or fails after `timeout`
/// showing everything received.
fn collect_until(
    lines: &mpsc::Receiver<String>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + qemu_tests::scaled(timeout);
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => bail!(
                "{what}: not received in time; received:\n{}",
                seen.join("\n")
            ),
        }
    }
    Ok(seen)
}

/// Debian's dnsmasq as the DHCP server on `bridge` (DNS off), logging to `dir/dnsmasq.log`
/// and keeping leases in `dir/dnsmasq.leases`. `range` is dnsmasq's `--dhcp-range` value.
fn dnsmasq(ns: &NetNs, dir: &Path, bridge: &str, range: &str, extra: &[&str]) -> Result<Daemon> {
    let mut args: Vec<String> = [
        "--no-daemon",
        // Nothing from the machine's own /etc/dnsmasq.conf.
        "--conf-file=/dev/null",
        "--pid-file=",
        // Stays root: the lease and log files are in the test's directory.
        "--user=root",
        "--port=0",
        "--bind-interfaces",
        "--except-interface=lo",
        // Offers at once instead of pinging the address for 3 s first.
        "--no-ping",
        "--log-dhcp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--interface={bridge}"));
    args.push(format!("--dhcp-range={range}"));
    args.push(format!(
        "--dhcp-leasefile={}",
        dir.join("dnsmasq.leases").display()
    ));
    args.push(format!(
        "--log-facility={}",
        dir.join("dnsmasq.log").display()
    ));
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut daemon = ns.spawn("dnsmasq", "dnsmasq", &args)?;
    // It reads its options and binds at once: a mistake shows as an early exit.
    std::thread::sleep(Duration::from_millis(300));
    daemon
        .check_running()
        .with_context(|| format!("dnsmasq {}", args.join(" ")))?;
    Ok(daemon)
}

/// Polls a file written by a server until `done` holds for its text (servers write their
/// logs and lease files a moment after the guest has seen the reply).
fn wait_file(path: &Path, timeout: Duration, done: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + qemu_tests::scaled(timeout);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return Ok(text);
        }
        if Instant::now() >= deadline {
            bail!(
                "{}: wanted content not there; it has:\n{text}",
                path.display()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until every pattern has appeared on the console, in any order (unlike
/// `Vm::wait_for`, which expects them in sequence).
fn wait_all(vm: &Vm, patterns: &[&str], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + qemu_tests::scaled(timeout);
    loop {
        let missing: Vec<&&str> = patterns.iter().filter(|p| vm.count(p) == 0).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "VM `{}`: {missing:?} not on the console after {timeout:?}; log {}\n{}",
                vm.name(),
                vm.log_path().display(),
                vm.tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn scratch(name: &str) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("bootkit-{name}-"))
        .tempdir()?)
}

/// The address in a console line `eth0: lease 10.213.1.57/24 router ...`.
fn leased_address(line: &str) -> Result<String> {
    let after = line
        .split_once(": lease ")
        .with_context(|| format!("no lease in {line:?}"))?
        .1;
    Ok(after.split('/').next().unwrap_or_default().to_string())
}

/// dnsmasq on the test network: the lease comes from its range, with client id = MAC as
/// dnsmasq records it; resolv.conf has its DNS option; its NTP option (42) points at the
/// test's SNTP server, which sets the guest's clock before a `time-sync` service runs; the
/// log lines arrive over UDP syslog with HOSTNAME = worker_id and APP-NAME = source, also
/// those from before the network was up. Then the lease is renewed at T1 (dnsmasq's shortest
/// lease, 2 minutes: T1 after 60 s), acknowledged a second time by dnsmasq.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn dnsmasq_lease_dns_ntp_syslog_and_renewal() -> Result<()> {
    const MAC: &str = "52:54:00:21:30:01";
    let ns = NetNs::create("dhcp")?;
    let dir = scratch("dhcp")?;
    ns.add_bridge("br0", "10.213.1.1/24")?;
    ns.add_tap("tap0", "br0")?;
    let _dnsmasq = dnsmasq(
        &ns,
        dir.path(),
        "br0",
        "10.213.1.50,10.213.1.99,255.255.255.0,2m",
        &[
            "--dhcp-option=option:dns-server,10.213.1.53",
            "--dhcp-option=option:ntp-server,10.213.1.1",
        ],
    )?;
    let _sntp = sntp_responder(&ns)?;
    let (_syslog, syslog_lines) = udp_collector(&ns, 5514)?;

    let services = [
        service(
            "netinfo",
            r#"
command = "/bin/sh"
args = ["-c", "cat /etc/resolv.conf"]
requires = ["network-online"]
restart = "never"
"#,
        ),
        service(
            "year",
            r#"
command = "/bin/sh"
args = ["-c", "echo year $(date -u +%Y)"]
requires = ["time-sync"]
restart = "never"
"#,
        ),
    ];
    let image = image_with_services("netns_dhcp", &services)?;
    let mut vm = boot_on(
        &ns,
        "netns_dhcp",
        &image,
        "worker_id=node-ns1 syslog_host=10.213.1.1 syslog_port=5514",
        &[("tap0", MAC)],
    )?;
    let lease_line = vm.wait_for("eth0: lease 10.213.1.", BOOT_TIMEOUT)?;
    let address = leased_address(&lease_line)?;
    let octet: u8 = address
        .rsplit('.')
        .next()
        .and_then(|o| o.parse().ok())
        .with_context(|| format!("address {address}"))?;
    assert!(
        (50..=99).contains(&octet),
        "{address} is from dnsmasq's range: {lease_line}"
    );
    assert!(
        lease_line.contains("router 10.213.1.1 from 10.213.1.1"),
        "dnsmasq's router and server id: {lease_line}"
    );
    vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
    // Services and the clock run concurrently: their lines come in any order.
    wait_all(
        &vm,
        &[
            "netinfo: nameserver 10.213.1.53",
            "time: clock set from 10.213.1.1:123",
            "year: year 2030",
        ],
        STEP_TIMEOUT,
    )?;
    let console = vm.console();
    let clock_at = position(&console, "clock set from").context("clock line")?;
    let year_at = position(&console, "year: started").context("year service start")?;
    assert!(
        clock_at < year_at,
        "the time-sync service started after the clock was set"
    );

    // The server side: dnsmasq keyed the lease by the client identifier 01:<MAC>.
    let leases = dir.path().join("dnsmasq.leases");
    let leases = wait_file(&leases, Duration::from_secs(10), |text| {
        text.contains(&address)
    })?;
    let record = leases
        .lines()
        .find(|l| l.contains(&address))
        .context("lease record")?;
    let fields: Vec<&str> = record.split_whitespace().collect();
    assert_eq!(fields.get(1), Some(&MAC), "lease record: {record}");
    assert_eq!(
        fields.last(),
        Some(&format!("01:{MAC}").as_str()),
        "client id = 01:<MAC> (type 1, Ethernet): {record}"
    );

    // Syslog over UDP: the rootfs line was logged long before the network came up.
    let seen = collect_until(&syslog_lines, STEP_TIMEOUT, "syslog lines", |seen| {
        seen.iter()
            .any(|l| l.contains(" node-ns1 rootfs - - - unpacking"))
            && seen
                .iter()
                .any(|l| l.contains(" node-ns1 year - - - year 2030"))
            && seen.iter().any(|l| l.contains(" node-ns1 network - - - "))
    })?;
    let early = seen
        .iter()
        .find(|l| l.contains(" rootfs - - - unpacking"))
        .context("early line")?;
    assert!(
        early.starts_with("<30>1 "),
        "RFC 5424, daemon.info: {early}"
    );

    // Renewal at T1 (60 s into the 2-minute lease): RENEWING, then BOUND again.
    vm.wait_for("eth0: DHCP RENEWING", Duration::from_secs(100))?;
    vm.wait_for("eth0: DHCP BOUND", STEP_TIMEOUT)?;
    let ack = format!("DHCPACK(br0) {address} {MAC}");
    let log = dir.path().join("dnsmasq.log");
    let log = wait_file(&log, Duration::from_secs(10), |text| {
        text.matches(&ack).count() >= 2
    })?;
    assert_eq!(
        log.matches(&ack).count(),
        2,
        "one ACK for the lease and one for the renewal:\n{log}"
    );
    assert_eq!(vm.count("eth0: lease "), 1, "a renewal is not a new lease");
    Ok(())
}

/// dracut's static `ip=<client>::<gw>:<mask>:<hostname>:eth0:none` with no DHCP server on the
/// network: the address, default route and host name are set, no DHCP runs, a service
/// reaches the host side over TCP, and `time-sync` is reached without an NTP server (the
/// clock stays as it is), so services that need it start.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn static_ip_configures_address_route_and_hostname() -> Result<()> {
    let ns = NetNs::create("static")?;
    ns.add_bridge("br0", "10.213.2.1/24")?;
    ns.add_tap("tap0", "br0")?;
    let (_listener, received) = tcp_lines(&ns, 7000)?;
    let reach = service(
        "reach",
        r#"
command = "/bin/sh"
args = ["-c", "echo name $(hostname); ip -4 addr show dev eth0; ip route; echo static-ok | nc -w 10 10.213.2.1 7000 && echo sent"]
requires = ["network-online"]
restart = "never"
"#,
    );
    let clock = service(
        "clock",
        r#"
command = "/bin/sh"
args = ["-c", "echo time-sync reached"]
requires = ["time-sync"]
restart = "never"
"#,
    );
    let image = image_with_services("netns_static", &[reach, clock])?;
    let mut vm = boot_on(
        &ns,
        "netns_static",
        &image,
        "ip=10.213.2.10::10.213.2.1:255.255.255.0:static-node:eth0:none",
        &[("tap0", "52:54:00:21:30:02")],
    )?;
    vm.wait_for("eth0: static address 10.213.2.10/24 from ip=", BOOT_TIMEOUT)?;
    vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
    vm.wait_for("reach: name static-node", STEP_TIMEOUT)?;
    vm.wait_for("reach:     inet 10.213.2.10/24", STEP_TIMEOUT)?;
    vm.wait_for("reach: default via 10.213.2.1 dev eth0", STEP_TIMEOUT)?;
    let got = collect_until(&received, STEP_TIMEOUT, "the guest's TCP line", |seen| {
        !seen.is_empty()
    })?;
    assert_eq!(got, ["static-ok"]);
    vm.wait_for("reach: sent", STEP_TIMEOUT)?;
    wait_all(
        &vm,
        &[
            "time: no NTP server (DHCP option 42 or ntp=)",
            "clock: time-sync reached",
        ],
        STEP_TIMEOUT,
    )?;
    assert_eq!(
        vm.count("eth0: DHCP"),
        0,
        "`none` means no DHCP:\n{}",
        vm.console()
    );
    Ok(())
}

/// Two NICs, a DHCP server only behind the second: DHCP runs on both, the lease arrives on
/// the second, the first stays without an address, and `network-online` is reached. The
/// kernel's names are looked up by MAC (the probe order decides which NIC is eth0).
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn two_nics_lease_on_the_second_only() -> Result<()> {
    const MAC0: &str = "52:54:00:21:30:03";
    const MAC1: &str = "52:54:00:21:30:13";
    let ns = NetNs::create("twonics")?;
    let dir = scratch("twonics")?;
    // The first NIC's network: a host side, but no DHCP server.
    ns.add_bridge("br0", "10.213.3.1/24")?;
    ns.add_tap("tap0", "br0")?;
    ns.add_bridge("br1", "10.213.13.1/24")?;
    ns.add_tap("tap1", "br1")?;
    let _dnsmasq = dnsmasq(
        &ns,
        dir.path(),
        "br1",
        "10.213.13.50,10.213.13.99,255.255.255.0,10m",
        &[],
    )?;
    // One line: `nics` and, per NIC, `<name> <mac> <number of IPv4 addresses>`.
    let addrs = service(
        "addrs",
        r#"
command = "/bin/sh"
args = ["-c", "echo nics $(for nic in eth0 eth1; do echo $nic $(cat /sys/class/net/$nic/address) $(ip -4 addr show dev $nic | grep -c inet); done)"]
requires = ["network-online"]
restart = "never"
"#,
    );
    let image = image_with_services("netns_two_nics", &[addrs])?;
    let mut vm = boot_on(
        &ns,
        "netns_two_nics",
        &image,
        "",
        &[("tap0", MAC0), ("tap1", MAC1)],
    )?;
    let lease = vm.wait_for("lease 10.213.13.", BOOT_TIMEOUT)?;
    vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
    let nics = vm.wait_for("addrs: nics ", STEP_TIMEOUT)?;
    let (name0, count0) = nic_by_mac(&nics, MAC0)?;
    let (name1, count1) = nic_by_mac(&nics, MAC1)?;
    assert_eq!(
        (count0, count1),
        (0, 1),
        "an address on the second NIC only:\n{}",
        vm.console()
    );
    assert!(
        lease.contains(&format!("{name1}: lease")),
        "the lease is the second NIC's ({name1}): {lease}"
    );
    assert_eq!(
        vm.count(&format!("{name0}: lease")),
        0,
        "no lease on {name0}:\n{}",
        vm.console()
    );
    // DHCP did run on the first NIC too, until the second's lease won.
    assert_eq!(
        vm.count(&format!("{name0}: DHCP stopped, {name1} has the lease")),
        1,
        "{}",
        vm.console()
    );
    // The lease is the second MAC's on the server side too.
    let address = leased_address(&lease)?;
    let leases = dir.path().join("dnsmasq.leases");
    wait_file(&leases, Duration::from_secs(10), |text| {
        text.lines()
            .any(|l| l.contains(&address) && l.contains(MAC1))
    })?;
    let console = vm.console();
    let lease_at = position(&console, "lease 10.213.13.").context("lease line")?;
    let online_at = position(&console, "target network-online reached").context("online line")?;
    assert!(lease_at < online_at, "online after the lease");
    Ok(())
}

/// The kernel's name and the IPv4 address count of the NIC with `mac`, from the `addrs`
/// service's line `addrs: nics <name> <mac> <count> <name> <mac> <count>`.
fn nic_by_mac(line: &str, mac: &str) -> Result<(String, usize)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|word| *word == mac)
        .with_context(|| format!("no {mac} in {line:?}"))?;
    let (Some(name), Some(count)) = (at.checked_sub(1).map(|i| words[i]), words.get(at + 1)) else {
        bail!("{line:?} does not have `<name> {mac} <count>`");
    };
    let count = count
        .parse()
        .with_context(|| format!("address count in {line:?}"))?;
    Ok((name.to_string(), count))
}

/// A qemu-nbd in the namespace, serving `disk` as export `disk` on `10.213.5.1:10809`.
fn qemu_nbd(ns: &NetNs, disk: &Path) -> Result<Daemon> {
    let args: Vec<String> = vec![
        "--persistent".into(),
        "--shared=4".into(),
        "--export-name=disk".into(),
        "--bind=10.213.5.1".into(),
        "--port=10809".into(),
        "--format=raw".into(),
        disk.display().to_string(),
    ];
    let daemon = ns.spawn("qemu-nbd", "qemu-nbd", &args)?;
    ns.wait_for_tcp(
        SocketAddr::from(([10, 213, 5, 1], 10809)),
        Duration::from_secs(10),
    )?;
    Ok(daemon)
}

fn write_disk(path: &PathBuf, payload: &[u8]) -> Result<()> {
    let mut bytes = payload.to_vec();
    bytes.resize(1 << 20, 0);
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))
}

/// `bootkit.nbd=` against qemu-nbd on the test network: a service reads the served bytes;
/// qemu-nbd is killed (the guest sees the disconnect), restarted on the same port serving
/// new bytes, and the reads continue with the new bytes after the bootkit reconnects.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn nbd_reads_continue_after_the_server_comes_back() -> Result<()> {
    let ns = NetNs::create("nbd")?;
    let dir = scratch("nbd")?;
    ns.add_bridge("br0", "10.213.5.1/24")?;
    ns.add_tap("tap0", "br0")?;
    let disk = dir.path().join("disk.raw");
    write_disk(&disk, b"BOOTKIT-NBD-NS-PAYLOAD-1")?;
    let mut server = qemu_nbd(&ns, &disk)?;
    // O_DIRECT: every read goes to the server, none is answered from the page cache.
    let reader = service(
        "reader",
        r#"
command = "/bin/sh"
args = ["-c", "while true; do echo read: $(dd if=/dev/nbd0 bs=4096 count=1 iflag=direct 2>/dev/null | head -c 24); sleep 2; done"]
requires = ["nbd"]
restart = "never"
"#,
    );
    let image = image_with_services("netns_nbd", &[reader])?;
    let mut vm = boot_on(
        &ns,
        "netns_nbd",
        &image,
        "ip=10.213.5.10::10.213.5.1:255.255.255.0:nbd-node:eth0:none \
         bootkit.nbd=nbd0:10.213.5.1:10809/disk",
        &[("tap0", "52:54:00:21:30:05")],
    )?;
    vm.wait_for("target nbd reached", BOOT_TIMEOUT)?;
    vm.wait_for("reader: read: BOOTKIT-NBD-NS-PAYLOAD-1", STEP_TIMEOUT)?;

    server.kill();
    vm.wait_for("nbd0 disconnected", STEP_TIMEOUT)?;
    write_disk(&disk, b"BOOTKIT-NBD-NS-PAYLOAD-2")?;
    let _server = qemu_nbd(&ns, &disk)?;
    vm.wait_for("nbd0 attached to export \"disk\"", STEP_TIMEOUT)?;
    vm.wait_for("reader: read: BOOTKIT-NBD-NS-PAYLOAD-2", STEP_TIMEOUT)?;
    Ok(())
}

/// What the VLAN host saw: an IPv4 packet to its address, with the VLAN it came on.
#[derive(Debug)]
struct TaggedPacket {
    vlan: u16,
    /// IP protocol number: 6 TCP, 17 UDP.
    protocol: u8,
    /// The TCP or UDP destination port.
    port: u16,
}

/// The 802.1Q tag of a received frame, from the kernel's auxiliary data (it moves the tag
/// out of the frame on receive) or, failing that, from the frame itself; returns the VLAN id
/// and the frame with any in-band tag removed.
fn untag(frame: &[u8], aux_vlan: Option<u16>) -> Option<(u16, Vec<u8>)> {
    if frame.len() < 14 {
        return None;
    }
    if frame[12..14] == [0x81, 0x00] && frame.len() >= 18 {
        let vlan = u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff;
        let mut untagged = frame[..12].to_vec();
        untagged.extend_from_slice(&frame[16..]);
        return Some((vlan, untagged));
    }
    aux_vlan.map(|vlan| (vlan, frame.to_vec()))
}

/// A raw packet socket bound to `ifname` in `ns` (every ethertype, with the kernel's
/// auxiliary data so that a tag moved out of the frame is still seen), with a receive
/// timeout of [`POLL`] so that its reader can watch a stop flag.
fn packet_socket(ns: &NetNs, ifname: &str) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let ifname = std::ffi::CString::new(ifname)?;
    let socket = ns.within(move || -> std::io::Result<OwnedFd> {
        // SAFETY: plain syscalls; the descriptor is owned at once.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(u16::try_from(libc::ETH_P_ALL).unwrap().to_be()),
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let index = libc::if_nametoindex(ifname.as_ptr());
            if index == 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut address: libc::sockaddr_ll = std::mem::zeroed();
            address.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
            address.sll_protocol = u16::try_from(libc::ETH_P_ALL).unwrap().to_be();
            address.sll_ifindex = index as i32;
            if libc::bind(
                fd.as_raw_fd(),
                (&raw const address).cast(),
                u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let on: libc::c_int = 1;
            let timeout = libc::timeval {
                tv_sec: 0,
                tv_usec: libc::suseconds_t::try_from(POLL.as_micros()).unwrap(),
            };
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&raw const on).cast(),
                u32::try_from(std::mem::size_of::<libc::c_int>()).unwrap(),
            ) != 0
                || libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&raw const timeout).cast(),
                    u32::try_from(std::mem::size_of::<libc::timeval>()).unwrap(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(fd)
        }
    })??;
    Ok(socket)
}

/// One received frame: its length in `frame`, the VLAN the kernel's auxiliary data reports,
/// and whether it is one the interface sent (a packet socket sees those too).
struct Received {
    len: usize,
    aux_vlan: Option<u16>,
    outgoing: bool,
}

/// Receives one frame from a [`packet_socket`]; `Ok(None)` when the receive timeout passed.
fn receive_frame(fd: &std::os::fd::OwnedFd, frame: &mut [u8]) -> std::io::Result<Option<Received>> {
    use std::os::fd::AsRawFd;
    let mut control = [0u64; 64];
    // SAFETY: recvmsg into buffers that outlive the call; the control data is read with the
    // CMSG macros within the length the kernel reports.
    unsafe {
        let mut from: libc::sockaddr_ll = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: frame.as_mut_ptr().cast(),
            iov_len: frame.len(),
        };
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_name = (&raw mut from).cast();
        message.msg_namelen = u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap();
        message.msg_iov = &raw mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control);
        let len = libc::recvmsg(fd.as_raw_fd(), &raw mut message, 0);
        if len < 0 {
            let err = std::io::Error::last_os_error();
            if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                return Ok(None);
            }
            return Err(err);
        }
        let mut aux_vlan = None;
        let mut header = libc::CMSG_FIRSTHDR(&raw const message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_PACKET
                && (*header).cmsg_type == libc::PACKET_AUXDATA
            {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    aux_vlan = Some(aux.tp_vlan_tci & 0x0fff);
                }
            }
            header = libc::CMSG_NXTHDR(&raw const message, header);
        }
        Ok(Some(Received {
            len: len as usize,
            aux_vlan,
            outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
        }))
    }
}

fn send_frame(fd: &std::os::fd::OwnedFd, frame: &[u8]) {
    use std::os::fd::AsRawFd;
    // SAFETY: send on the bound socket from a live buffer.
    unsafe {
        libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0);
    }
}

/// A host that exists only on VLAN `vlan` behind `tap`: the host kernel here has neither the
/// 8021q module nor bridge VLAN filtering, so a packet socket on the tap plays the host. It
/// answers ARP for `ip` only when the request is tagged `vlan` (so the guest can reach it
/// only through its VLAN interface), and reports every IPv4 packet sent to `ip`.
fn vlan_host(
    ns: &NetNs,
    tap: &str,
    vlan: u16,
    ip: [u8; 4],
) -> Result<(Worker, mpsc::Receiver<TaggedPacket>, FrameLog)> {
    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x99, 0x00, 0x42];
    let fd = packet_socket(ns, tap)?;
    let (sender, packets) = mpsc::channel();
    let frames = FrameLog::default();
    let log = frames.clone();
    let worker = Worker::spawn("vlan-host", move |stop| {
        let mut frame = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let received = match receive_frame(&fd, &mut frame) {
                Ok(Some(received)) => received,
                Ok(None) => continue,
                Err(err) => {
                    // E.g. ENETDOWN while QEMU attaches the tap: keep listening.
                    log.note(format!("receive error: {err}"));
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            if received.outgoing {
                continue;
            }
            let len = received.len;
            let Some((tag, frame)) = untag(&frame[..len], received.aux_vlan) else {
                if len >= 14 {
                    log.note(format!(
                        "untagged frame, ethertype {:02x}{:02x}",
                        frame[12], frame[13]
                    ));
                }
                continue;
            };
            let ethertype = [frame[12], frame[13]];
            log.note(format!(
                "VLAN {tag} frame, ethertype {:02x}{:02x}, {len} bytes",
                ethertype[0], ethertype[1]
            ));
            let body = &frame[14..];
            if ethertype == [0x08, 0x06]
                && tag == vlan
                && body.len() >= 28
                && body[6..8] == [0, 1]
                && body[24..28] == ip
            {
                // An ARP request for us on our VLAN: reply, tagged the same way.
                let mut reply = Vec::with_capacity(46);
                reply.extend_from_slice(&frame[6..12]);
                reply.extend_from_slice(&MAC);
                reply.extend_from_slice(&[0x81, 0x00]);
                reply.extend_from_slice(&vlan.to_be_bytes());
                reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
                reply.extend_from_slice(&MAC);
                reply.extend_from_slice(&ip);
                reply.extend_from_slice(&body[8..18]);
                send_frame(&fd, &reply);
            } else if ethertype == [0x08, 0x00] && body.len() >= 24 && body[16..20] == ip {
                let header_len = usize::from(body[0] & 0x0f) * 4;
                let Some(ports) = body.get(header_len..header_len + 4) else {
                    continue;
                };
                let packet = TaggedPacket {
                    vlan: tag,
                    protocol: body[9],
                    port: u16::from_be_bytes([ports[2], ports[3]]),
                };
                if sender.send(packet).is_err() {
                    return;
                }
            }
        }
    })?;
    Ok((worker, packets, frames))
}

/// The guest's virtio NIC and the server's veth offload checksums, so a UDP datagram read
/// from either carries a checksum still to be filled in; sent on as it is, the receiving
/// kernel would drop it. Zero
/// means "no checksum" for UDP over IPv4 (RFC 768), which every receiver accepts.
fn clear_udp_checksum(frame: &mut [u8]) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return;
    }
    let udp = 14 + usize::from(frame[14] & 0x0f) * 4;
    if let Some(checksum) = frame.get_mut(udp + 6..udp + 8) {
        checksum.copy_from_slice(&[0, 0]);
    }
}

/// An 802.1Q switch port in user space (the host kernel here has no 8021q): frames from
/// `trunk` (the guest's tap) tagged `vlan` go out untagged on `access`, frames from `access`
/// go out on `trunk` tagged `vlan`; untagged and otherwise tagged frames from the trunk are
/// dropped and counted in the log. A server on `access`'s peer is thus reachable only over
/// the guest's VLAN interface.
fn vlan_switch(
    ns: &NetNs,
    trunk: &str,
    access: &str,
    vlan: u16,
) -> Result<(Vec<Worker>, FrameLog)> {
    let trunk_fd = Arc::new(packet_socket(ns, trunk)?);
    let access_fd = Arc::new(packet_socket(ns, access)?);
    let frames = FrameLog::default();
    let (log, to_access, from_trunk) = (
        frames.clone(),
        Arc::clone(&access_fd),
        Arc::clone(&trunk_fd),
    );
    let upstream = Worker::spawn("vlan-switch-up", move |stop| {
        let mut frame = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            match receive_frame(&from_trunk, &mut frame) {
                Ok(Some(received)) if !received.outgoing => {
                    match untag(&frame[..received.len], received.aux_vlan) {
                        Some((tag, mut untagged)) if tag == vlan => {
                            clear_udp_checksum(&mut untagged);
                            log.note(format!(
                                "VLAN {tag} frame to the access port, ethertype {:02x}{:02x}",
                                untagged[12], untagged[13]
                            ));
                            send_frame(&to_access, &untagged);
                        }
                        Some((tag, _)) => log.note(format!("dropped a frame of VLAN {tag}")),
                        None => log.note("dropped an untagged frame".to_string()),
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(POLL),
            }
        }
    })?;
    let (to_trunk, from_access, log) = (trunk_fd, access_fd, frames.clone());
    let downstream = Worker::spawn("vlan-switch-down", move |stop| {
        let mut frame = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            match receive_frame(&from_access, &mut frame) {
                Ok(Some(received)) if !received.outgoing && received.len >= 14 => {
                    clear_udp_checksum(&mut frame[..received.len]);
                    let mut tagged = Vec::with_capacity(received.len + 4);
                    tagged.extend_from_slice(&frame[..12]);
                    tagged.extend_from_slice(&[0x81, 0x00]);
                    tagged.extend_from_slice(&vlan.to_be_bytes());
                    tagged.extend_from_slice(&frame[12..received.len]);
                    log.note(format!(
                        "frame to the trunk tagged {vlan}, ethertype {:02x}{:02x}",
                        frame[12], frame[13]
                    ));
                    send_frame(&to_trunk, &tagged);
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(POLL),
            }
        }
    })?;
    Ok((vec![upstream, downstream], frames))
}

/// The first frames the VLAN host saw, to show in a failure.
#[derive(Clone, Default)]
struct FrameLog(Arc<std::sync::Mutex<Vec<String>>>);

impl FrameLog {
    fn note(&self, what: String) {
        let mut notes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if notes.len() < 100 {
            notes.push(what);
        }
    }

    fn show(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }
}

/// HookOS's `ipam=` with VLAN 42: the bootkit creates eth0.42 with the static address, and
/// a service reaches a host that exists only on VLAN 42: its TCP connection attempt arrives
/// tagged 42, after an ARP exchange that is only answered on VLAN 42.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn ipam_with_a_vlan_reaches_a_host_on_that_vlan() -> Result<()> {
    static_vlan_reaches_the_host(
        "netns_vlan",
        "ipam=52-54-00-21-30-06:42:10.213.6.10:255.255.255.0:10.213.6.1:vlan-node:10.213.6.1::",
        "eth0.42",
        "ipam",
    )
}

/// dracut's `vlan=<name>:<phys>` with a static `ip=` on that VLAN, in dracut's
/// VLAN_PLUS_VID naming (vlan0042): the VLAN exists before `ip=` looks for it, and the
/// address is on the VLAN (the host answers only tagged 42).
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn dracut_vlan_with_static_ip_on_it_reaches_a_host_on_that_vlan() -> Result<()> {
    static_vlan_reaches_the_host(
        "netns_dracut_vlan",
        "vlan=vlan0042:eth0 ip=10.213.6.10::10.213.6.1:255.255.255.0:vlan-node:vlan0042:none",
        "vlan0042",
        "ip",
    )
}

/// Boots with `cmdline`, which puts 10.213.6.10/24 on VLAN 42 of eth0 as `vlan_if`, and
/// checks that a service's TCP connection attempt to a host only on VLAN 42 arrives tagged.
fn static_vlan_reaches_the_host(name: &str, cmdline: &str, vlan_if: &str, key: &str) -> Result<()> {
    let ns = NetNs::create("vlan")?;
    // No bridge: the tap's other end is the VLAN host itself.
    ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"])?;
    ns.ip(&["link", "set", "tap0", "up"])?;
    let (_host, packets, frames) = vlan_host(&ns, "tap0", 42, [10, 213, 6, 1])?;
    // The host side has no TCP stack on VLAN 42, so the connection never completes: what
    // counts is that its SYN reaches the host, tagged.
    let knock = service(
        "knock",
        &format!(
            r#"
command = "/bin/sh"
args = ["-c", "ip -4 addr show dev {vlan_if}; nc -w 5 10.213.6.1 7042 </dev/null; echo knocked"]
requires = ["network-online"]
restart = "never"
"#
        ),
    );
    let image = image_with_services(name, &[knock])?;
    let mut vm = boot_on(&ns, name, &image, cmdline, &[("tap0", "52:54:00:21:30:06")])?;
    let (index, line) = vm.wait_for_any(
        &[
            &format!("VLAN 42 on eth0 is {vlan_if}"),
            "cannot create VLAN 42",
        ],
        BOOT_TIMEOUT,
    )?;
    assert_eq!(index, 0, "the VLAN interface is created: {line}");
    vm.wait_for(
        &format!("{vlan_if}: static address 10.213.6.10/24 from {key}="),
        STEP_TIMEOUT,
    )?;
    vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
    vm.wait_for("knock:     inet 10.213.6.10/24", STEP_TIMEOUT)?;
    let deadline = Instant::now() + qemu_tests::scaled(STEP_TIMEOUT);
    let mut seen = Vec::new();
    let syn = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(packet) = packets.recv_timeout(left) else {
            bail!(
                "no TCP packet to 10.213.6.1:7042; IPv4 packets seen: {seen:?}\nframes on the \
                 tap:\n{}\nconsole:\n{}",
                frames.show(),
                vm.tail()
            );
        };
        if packet.protocol == 6 && packet.port == 7042 {
            break packet;
        }
        seen.push(packet);
    };
    assert_eq!(syn.vlan, 42, "{syn:?}");
    Ok(())
}

/// dracut's `vlan=` with `ip=<vlan>:dhcp`, in both naming styles (eth0.42 and vlan0042):
/// DHCP runs tagged on the VLAN, against dnsmasq behind an 802.1Q switch port that passes
/// only VLAN 42, and the lease lands on the VLAN interface, not on its parent.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn dracut_vlan_with_dhcp_on_it_gets_the_lease_over_the_vlan() -> Result<()> {
    for (name, vlan_if) in [
        ("netns_vlan_dhcp_dev", "eth0.42"),
        ("netns_vlan_dhcp_vid", "vlan0042"),
    ] {
        let ns = NetNs::create("vlandhcp")?;
        let dir = scratch(name)?;
        ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"])?;
        ns.ip(&["link", "set", "tap0", "up"])?;
        ns.ip(&[
            "link", "add", "vsw0", "type", "veth", "peer", "name", "vsrv0",
        ])?;
        ns.ip(&["addr", "add", "10.213.7.1/24", "dev", "vsrv0"])?;
        ns.ip(&["link", "set", "vsw0", "up"])?;
        ns.ip(&["link", "set", "vsrv0", "up"])?;
        let (_switch, frames) = vlan_switch(&ns, "tap0", "vsw0", 42)?;
        let _dnsmasq = dnsmasq(
            &ns,
            dir.path(),
            "vsrv0",
            "10.213.7.100,10.213.7.150,255.255.255.0,2m",
            &["--dhcp-option=option:router,10.213.7.1"],
        )?;
        let image = image_with_services(name, &[])?;
        let mut vm = boot_on(
            &ns,
            name,
            &image,
            &format!("vlan={vlan_if}:eth0 ip={vlan_if}:dhcp"),
            &[("tap0", "52:54:00:21:30:07")],
        )?;
        let (index, line) = vm.wait_for_any(
            &[
                &format!("VLAN 42 on eth0 is {vlan_if}"),
                "cannot create VLAN 42",
            ],
            BOOT_TIMEOUT,
        )?;
        assert_eq!(index, 0, "the VLAN interface is created: {line}");
        let lease = vm
            .wait_for(&format!("{vlan_if}: lease 10.213.7."), STEP_TIMEOUT)
            .with_context(|| {
                format!(
                    "frames at the switch:\n{}\ndnsmasq:\n{}",
                    frames.show(),
                    std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap_or_default()
                )
            })?;
        let address = leased_address(&lease)?;
        vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
        let leases = wait_file(&dir.path().join("dnsmasq.leases"), STEP_TIMEOUT, |text| {
            text.contains("52:54:00:21:30:07")
        })?;
        assert!(leases.contains(&address), "{leases}");
        assert_eq!(
            vm.count("eth0: DHCP"),
            0,
            "no DHCP on the untagged parent:\n{}",
            vm.console()
        );
    }
    Ok(())
}

/// dracut's `bond=` with options, and `ip=<bond>:dhcp`: the image ships the bonding module
/// without loading it (`shipped_modules`), the init loads it because the command line has
/// `bond=` (loading it makes a `bond0` of its own, which gets the options), the bond enslaves both
/// NICs in active-backup mode with miimon 100 as the kernel's sysfs reports them, and the
/// DHCP lease (from dnsmasq, for the first slave's MAC, which the bond takes) is on the bond.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn dracut_bond_with_options_gets_the_lease_on_the_bond() -> Result<()> {
    const MAC0: &str = "52:54:00:21:30:08";
    const MAC1: &str = "52:54:00:21:30:18";
    let ns = NetNs::create("bond")?;
    let dir = scratch("bond")?;
    ns.add_bridge("br0", "10.213.8.1/24")?;
    ns.add_tap("tap0", "br0")?;
    ns.add_tap("tap1", "br0")?;
    let _dnsmasq = dnsmasq(
        &ns,
        dir.path(),
        "br0",
        "10.213.8.50,10.213.8.99,255.255.255.0,10m",
        &[],
    )?;
    let show = service(
        "bondinfo",
        r#"
command = "/bin/sh"
args = ["-c", "cd /sys/class/net/bond0/bonding && echo bond mode=$(cat mode) miimon=$(cat miimon) slaves=$(cat slaves) mtu=$(cat ../mtu) inet=$(ip -4 addr show dev bond0 | grep -c inet)"]
requires = ["network-online"]
restart = "never"
"#,
    );
    let mut config = common::base_config()?;
    config.kernel.shipped_modules.push("bonding".to_string());
    config.overlay.push(show);
    let image = common::build("netns_bond", &config)?;
    let mut vm = boot_on(
        &ns,
        "netns_bond",
        &image,
        "bond=bond0:eth0,eth1:mode=active-backup,miimon=100:1400 ip=bond0:dhcp",
        &[("tap0", MAC0), ("tap1", MAC1)],
    )?;
    let (index, line) = vm.wait_for_any(
        &[
            "bond bond0 with slaves eth0,eth1",
            "cannot create bond bond0",
        ],
        BOOT_TIMEOUT,
    )?;
    assert_eq!(index, 0, "the bond is made: {line}\n{}", vm.console());
    let lease = vm.wait_for("bond0: lease 10.213.8.", STEP_TIMEOUT)?;
    let address = leased_address(&lease)?;
    vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
    let info = vm.wait_for("bondinfo: bond ", STEP_TIMEOUT)?;
    assert!(
        info.contains("mode=active-backup 1")
            && info.contains("miimon=100")
            && info.contains("slaves=eth0 eth1")
            && info.contains("mtu=1400")
            && info.contains("inet=1"),
        "{info}"
    );
    let leases = wait_file(&dir.path().join("dnsmasq.leases"), STEP_TIMEOUT, |text| {
        text.contains(MAC0)
    })?;
    assert!(leases.contains(&address), "{leases}");
    for slave in ["eth0", "eth1"] {
        assert_eq!(vm.count(&format!("{slave}: DHCP")), 0, "no DHCP on {slave}");
    }
    Ok(())
}

/// `ip=<iface>:dhcp:<mtu>:<macaddr>`: the MAC is set before DHCP (dnsmasq leases to the new
/// MAC), and the `ip=` MTU wins over the lease's option 26 (9000 here), as in dracut.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn dracut_ip_dhcp_sets_the_mac_and_keeps_its_mtu() -> Result<()> {
    const NIC_MAC: &str = "52:54:00:21:30:09";
    const SET_MAC: &str = "52:54:00:aa:bb:09";
    let ns = NetNs::create("mtumac")?;
    let dir = scratch("mtumac")?;
    ns.add_bridge("br0", "10.213.9.1/24")?;
    ns.add_tap("tap0", "br0")?;
    let _dnsmasq = dnsmasq(
        &ns,
        dir.path(),
        "br0",
        "10.213.9.50,10.213.9.99,255.255.255.0,10m",
        &["--dhcp-option=option:mtu,9000"],
    )?;
    let show = service(
        "linkinfo",
        r#"
command = "/bin/sh"
args = ["-c", "echo link mtu=$(cat /sys/class/net/eth0/mtu) mac=$(cat /sys/class/net/eth0/address)"]
requires = ["network-online"]
restart = "never"
"#,
    );
    let image = image_with_services("netns_mtu_mac", &[show])?;
    let mut vm = boot_on(
        &ns,
        "netns_mtu_mac",
        &image,
        &format!("ip=eth0:dhcp:1400:{SET_MAC}"),
        &[("tap0", NIC_MAC)],
    )?;
    let lease = vm.wait_for("eth0: lease 10.213.9.", BOOT_TIMEOUT)?;
    let address = leased_address(&lease)?;
    let info = vm.wait_for("linkinfo: link ", STEP_TIMEOUT)?;
    assert!(info.contains(&format!("mtu=1400 mac={SET_MAC}")), "{info}");
    let leases = wait_file(&dir.path().join("dnsmasq.leases"), STEP_TIMEOUT, |text| {
        text.contains(SET_MAC)
    })?;
    assert!(leases.contains(&address), "{leases}");
    Ok(())
}

/// `ip=<iface>:auto6`: with only dnsmasq's router advertisements on the network (no DHCPv4
/// server), the bootkit makes its SLAAC address from the advertised prefix and the NIC's
/// EUI-64, and that is what brings the network online.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn dracut_ip_auto6_goes_online_with_a_slaac_address() -> Result<()> {
    let ns = NetNs::create("auto6")?;
    let dir = scratch("auto6")?;
    ns.add_bridge("br0", "10.213.10.1/24")?;
    ns.ip(&["addr", "add", "2001:db8:10::1/64", "dev", "br0", "nodad"])?;
    ns.add_tap("tap0", "br0")?;
    let _dnsmasq = dnsmasq(
        &ns,
        dir.path(),
        "br0",
        "2001:db8:10::,ra-only,64,1h",
        &["--enable-ra", "--ra-param=br0,5"],
    )?;
    let show = service(
        "v6",
        r#"
command = "/bin/sh"
args = ["-c", "echo v6 $(ip -6 addr show dev eth0 scope global | grep inet6)"]
requires = ["network-online"]
restart = "never"
"#,
    );
    let image = image_with_services("netns_auto6", &[show])?;
    let mut vm = boot_on(
        &ns,
        "netns_auto6",
        &image,
        "ip=eth0:auto6",
        &[("tap0", "52:54:00:21:30:0a")],
    )?;
    vm.wait_for(
        "eth0: IPv6 address 2001:db8:10:0:5054:ff:fe21:300a/64",
        BOOT_TIMEOUT,
    )?;
    vm.wait_for("target network-online reached", STEP_TIMEOUT)?;
    let shown = vm.wait_for("v6: v6 ", STEP_TIMEOUT)?;
    assert!(
        shown.contains("2001:db8:10:0:5054:ff:fe21:300a/64"),
        "{shown}"
    );
    Ok(())
}

/// `rd.peerdns=0`: "Disable DNS setting of DHCP parameters." dnsmasq offers a DNS server and
/// a domain; resolv.conf has neither, only the `nameserver=` of the command line.
#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn dracut_rd_peerdns_0_keeps_dhcp_dns_out_of_resolv_conf() -> Result<()> {
    let ns = NetNs::create("peerdns")?;
    let dir = scratch("peerdns")?;
    ns.add_bridge("br0", "10.213.11.1/24")?;
    ns.add_tap("tap0", "br0")?;
    let _dnsmasq = dnsmasq(
        &ns,
        dir.path(),
        "br0",
        "10.213.11.50,10.213.11.99,255.255.255.0,10m",
        &[
            "--dhcp-option=option:dns-server,10.213.11.53",
            "--domain=lab.example",
        ],
    )?;
    let show = service(
        "resolv",
        r#"
command = "/bin/sh"
args = ["-c", "echo resolv.conf: $(cat /etc/resolv.conf)"]
requires = ["network-online"]
restart = "never"
"#,
    );
    let image = image_with_services("netns_peerdns", &[show])?;
    let mut vm = boot_on(
        &ns,
        "netns_peerdns",
        &image,
        "rd.peerdns=0 nameserver=10.213.11.77",
        &[("tap0", "52:54:00:21:30:0b")],
    )?;
    vm.wait_for("eth0: lease 10.213.11.", BOOT_TIMEOUT)?;
    let shown = vm.wait_for("resolv: resolv.conf:", STEP_TIMEOUT)?;
    assert!(shown.contains("nameserver 10.213.11.77"), "{shown}");
    assert!(
        !shown.contains("10.213.11.53") && !shown.contains("lab.example"),
        "{shown}"
    );
    Ok(())
}
