//! The DHCP client against a real server: Debian's dnsmasq, across a veth pair between two
//! network namespaces this test creates (one for the server, one for the client), so no
//! packet leaves them and nothing routes out.
//!
//! Needs root, `ip` (package iproute2) and dnsmasq (package dnsmasq-base). Missing any of
//! them fails the test with a message naming the package: a skipped test would hide that the
//! client was never checked against a server.

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bootkit_net::dhcp::{self, Config, LeaseEvent, State};
use bootkit_net::lease::Lease;

const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0xd4, 0x00, 0x07];
const MAC_TEXT: &str = "02:42:ac:d4:00:07";
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// What dnsmasq reserves for client id 01:<MAC>.
const RESERVED: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 142);

/// Whole-test bound: each wait below is shorter.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The namespaces, the temporary directory and dnsmasq; Drop removes them all, whatever
/// happened (a failed assertion unwinds through it).
struct Lab {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    dir: PathBuf,
    dnsmasq: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace destroys the veth end inside it, and with it its peer.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn preflight() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("must run as root (network namespaces, port 67/68)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("`ip` not found: install the iproute2 package".into());
    }
    if Command::new("dnsmasq").arg("--version").output().is_err() {
        return Err("`dnsmasq` not found: install the dnsmasq-base package".into());
    }
    Ok(())
}

impl Lab {
    fn new() -> Result<Self, String> {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("bk-dhcp-{pid}"));
        let lab = Lab {
            server_ns: format!("bk-dhcp-{pid}-s"),
            client_ns: format!("bk-dhcp-{pid}-c"),
            // IFNAMSIZ: at most 15 characters; a pid has at most 7 digits.
            server_if: format!("bkd{pid}s"),
            client_if: format!("bkd{pid}c"),
            dir,
            dnsmasq: None,
        };
        fs::create_dir_all(&lab.dir).map_err(|e| format!("{}: {e}", lab.dir.display()))?;
        let (s, c) = (lab.server_ns.as_str(), lab.client_ns.as_str());
        let (sif, cif) = (lab.server_if.as_str(), lab.client_if.as_str());
        run(&["ip", "netns", "add", s])?;
        run(&["ip", "netns", "add", c])?;
        // Created inside the server namespace with its peer inside the client's: neither end
        // ever exists in the host's namespace.
        run(&[
            "ip", "-n", s, "link", "add", sif, "type", "veth", "peer", "name", cif, "netns", c,
        ])?;
        run(&["ip", "-n", s, "addr", "add", "10.213.0.1/24", "dev", sif])?;
        run(&["ip", "-n", s, "link", "set", sif, "up"])?;
        run(&["ip", "-n", s, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", c, "link", "set", cif, "address", MAC_TEXT])?;
        run(&["ip", "-n", c, "link", "set", cif, "up"])?;
        Ok(lab)
    }

    fn leases(&self) -> PathBuf {
        self.dir.join("leases")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }

    fn start_dnsmasq(&mut self) -> Result<(), String> {
        let log = File::create(self.log()).map_err(|e| format!("dnsmasq log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("dnsmasq log: {e}"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server_ns, "dnsmasq"])
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--bind-interfaces",
                "--dhcp-authoritative",
                "--log-dhcp",
                "--log-facility=-",
                "--domain=lab.example",
                "--dhcp-range=10.213.0.100,10.213.0.150,255.255.255.0,2m",
                "--dhcp-option=option:router,10.213.0.1",
                "--dhcp-option=option:dns-server,10.213.0.53",
                "--dhcp-option=option:ntp-server,10.213.0.123",
                "--dhcp-option=option:domain-search,lab.example,corp.example",
                "--dhcp-option=option:mtu,1400",
            ])
            .arg(format!("--dhcp-host=id:01:{MAC_TEXT},{RESERVED}"))
            .arg(format!("--interface={}", self.server_if))
            .arg(format!("--dhcp-leasefile={}", self.leases().display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("dnsmasq: {e} (install the dnsmasq-base package)"))?;
        self.dnsmasq = Some(child);
        // A bad option makes dnsmasq exit at once: report that rather than a client timeout.
        std::thread::sleep(Duration::from_millis(300));
        let exited = self.dnsmasq.as_mut().map(|child| child.try_wait());
        match exited {
            Some(Ok(Some(status))) => Err(format!(
                "dnsmasq exited ({status}):\n{}",
                fs::read_to_string(self.log()).unwrap_or_default()
            )),
            _ => Ok(()),
        }
    }
}

/// Runs `f` on a new thread that has entered the network namespace at `ns_path` (setns
/// changes only the calling thread's namespace, so the test's other threads stay put), with
/// a current-thread tokio runtime; gives up after `limit`.
fn in_netns<T: Send + 'static>(
    ns_path: PathBuf,
    limit: Duration,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = enter(&ns_path).and_then(|()| f());
        let _ = tx.send(result);
    });
    rx.recv_timeout(limit)
        .map_err(|e| format!("client thread: {e} after {limit:?}"))?
}

fn enter(ns_path: &Path) -> Result<(), String> {
    let ns = File::open(ns_path).map_err(|e| format!("{}: {e}", ns_path.display()))?;
    // SAFETY: a valid namespace fd; affects only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn check_lease(lease: &Lease, interface: &str) {
    assert_eq!(lease.interface, interface);
    let last = lease.address.octets()[3];
    assert!(
        lease.address.octets()[..3] == [10, 213, 0] && (100..=150).contains(&last),
        "address {} outside dnsmasq's range",
        lease.address
    );
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.routers, vec![SERVER]);
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 213, 0, 53)]);
    assert_eq!(lease.ntp, vec![Ipv4Addr::new(10, 213, 0, 123)]);
    assert_eq!(lease.domain.as_deref(), Some("lab.example"));
    assert_eq!(lease.search, vec!["lab.example", "corp.example"]);
    assert_eq!(lease.mtu, Some(1400));
    assert_eq!(lease.server, Some(SERVER));
    assert_eq!(lease.lease_time, Some(Duration::from_secs(120)));
    assert_eq!(lease.renew_after, Some(Duration::from_secs(60)));
    assert_eq!(lease.rebind_after, Some(Duration::from_secs(105)));
}

/// Waits (bounded) for dnsmasq's lease file to list our MAC, and returns that line.
fn lease_file_line(path: &Path) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let text = fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(MAC_TEXT)) {
            return Some(line.to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
#[ignore = "needs root: network namespaces, ports 67/68, dnsmasq"]
fn lease_from_dnsmasq_with_mac_client_id() {
    if let Err(why) = preflight() {
        panic!("DHCP integration test cannot run: {why}");
    }
    let mut lab = Lab::new().unwrap_or_else(|e| panic!("test network: {e}"));
    lab.start_dnsmasq()
        .unwrap_or_else(|e| panic!("dnsmasq: {e}"));
    let ns_path = PathBuf::from("/run/netns").join(&lab.client_ns);
    let interface = lab.client_if.clone();

    // 1. acquire_once: one DORA.
    let config = Config::new(&interface, MAC);
    let lease = in_netns(ns_path.clone(), CLIENT_TIMEOUT * 2, move || {
        runtime()?
            .block_on(dhcp::acquire_once(config, CLIENT_TIMEOUT))
            .map_err(|e| e.to_string())
    });
    let log = || fs::read_to_string(lab.log()).unwrap_or_default();
    let lease = lease.unwrap_or_else(|e| panic!("no lease: {e}\ndnsmasq log:\n{}", log()));
    check_lease(&lease, &interface);

    // The address reserved for client id 01:<mac> (--dhcp-host=id:...), as EMT's servers
    // key theirs: a client without option 61 or with another id gets a pool address.
    assert_eq!(
        lease.address, RESERVED,
        "not the address reserved for our client id"
    );
    // dnsmasq's own record: the lease file's last column is the client id, 01:<mac>.
    let line = lease_file_line(&lab.leases())
        .unwrap_or_else(|| panic!("no lease for {MAC_TEXT} in dnsmasq's lease file"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.get(2), Some(&lease.address.to_string().as_str()));
    assert_eq!(
        fields.get(4),
        Some(&format!("01:{MAC_TEXT}").as_str()),
        "client id in {line:?}"
    );

    // 2. run(): the long-lived client the init uses, seen through its events: each state
    // once, then the same lease (dnsmasq keys it on the client id).
    let config = Config::new(&interface, MAC);
    let events = in_netns(ns_path, CLIENT_TIMEOUT * 2, move || {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        runtime()?.block_on(async move {
            let client = tokio::spawn(dhcp::run(config, tx));
            let mut seen = Vec::new();
            let collect = async {
                while let Some(event) = rx.recv().await {
                    let bound = matches!(
                        event,
                        LeaseEvent::State {
                            state: State::Bound,
                            ..
                        }
                    );
                    seen.push(event);
                    if bound {
                        break;
                    }
                }
            };
            let finished = tokio::time::timeout(CLIENT_TIMEOUT, collect).await;
            client.abort();
            finished.map_err(|_| format!("not BOUND within {CLIENT_TIMEOUT:?}: {seen:?}"))?;
            Ok(seen)
        })
    })
    .unwrap_or_else(|e| panic!("run(): {e}\ndnsmasq log:\n{}", log()));
    let states: Vec<State> = events
        .iter()
        .filter_map(|e| match e {
            LeaseEvent::State { state, .. } => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [State::Selecting, State::Requesting, State::Bound],
        "events: {events:?}"
    );
    let acquired: Vec<&Lease> = events
        .iter()
        .filter_map(|e| match e {
            LeaseEvent::Acquired(lease) => Some(lease),
            _ => None,
        })
        .collect();
    assert_eq!(acquired, [&lease], "events: {events:?}");
}
