//! Test networks inside network namespaces the test creates: bridges, tap devices for QEMU,
//! and servers (dnsmasq, qemu-nbd, the test's own listeners) that only exist in there.
//!
//! Rules this module keeps, so tests cannot disturb the machine or each other:
//! - every namespace has a unique name (process id + counter) and gets no route out;
//! - [`NetNs`]'s `Drop` deletes the namespace, [`Daemon`]'s kills the server's process group;
//! - servers get `PR_SET_PDEATHSIG=SIGKILL`, so they die with the test process even when
//!   `Drop` never runs.
//!
//! ```no_run
//! use qemu_tests::{NetNs, VmConfig, Vm};
//!
//! # fn main() -> qemu_tests::Result<()> {
//! let ns = NetNs::create("doc")?;
//! ns.add_bridge("br0", "10.213.0.1/24")?;
//! ns.add_tap("tap0", "br0")?;
//! let vm = Vm::boot(
//!     VmConfig::test_image("doc")?
//!         .wrapped_in(&ns.exec_prefix())
//!         .tap_nic("n1", "tap0", "52:54:00:00:00:01"),
//! )?;
//! # Ok(()) }
//! ```
//!
//! (`test_image` adds a user-mode NIC too; tests on a namespace build their `VmConfig` with
//! [`crate::VmConfig::new`].)

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted when dropped. Drop it last: after the VM and the servers
/// that run in it (declare it first in the test).
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `bk-<tag>-<pid>-<n>` with only `lo` in it, up.
    pub fn create(tag: &str) -> Result<NetNs> {
        let name = format!(
            "bk-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on Drop removes it, also when a later step fails.
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, for `ip netns exec NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME`: put it before a program to run that program in the namespace
    /// (`ip` execs it, so the process id is the program's own).
    pub fn exec_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Runs `ip -n NAME <args>` and fails with its stderr if it fails.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs `bridge -n NAME <args>` (VLAN filtering of a bridge).
    pub fn bridge(&self, args: &[&str]) -> Result<()> {
        run(Command::new("bridge").args(["-n", &self.name]).args(args))
    }

    /// A bridge with the host side's address (`cidr`, e.g. `10.213.1.1/24`), up. No STP
    /// and no forwarding delay: a port forwards as soon as it is up. `extra` goes to
    /// `ip link add ... type bridge` (e.g. `vlan_filtering 1`).
    pub fn add_bridge_with(&self, bridge: &str, cidr: &str, extra: &[&str]) -> Result<()> {
        let mut add = vec![
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ];
        add.extend_from_slice(extra);
        self.ip(&add)?;
        self.ip(&["addr", "add", cidr, "dev", bridge])?;
        self.ip(&["link", "set", bridge, "up"])
    }

    /// [`NetNs::add_bridge_with`] without extra bridge options.
    pub fn add_bridge(&self, bridge: &str, cidr: &str) -> Result<()> {
        self.add_bridge_with(bridge, cidr, &[])
    }

    /// A tap device for QEMU (`-netdev tap,ifname=<tap>`), a port of `bridge`, up.
    pub fn add_tap(&self, tap: &str, bridge: &str) -> Result<()> {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        self.ip(&["link", "set", tap, "master", bridge])?;
        self.ip(&["link", "set", tap, "up"])
    }

    /// Puts another namespace on `bridge` like a second machine on the same wire: a veth
    /// pair whose one end is a port of `bridge` here and whose other end is `peer_if` in
    /// `peer`, with `cidr` on it, up. `peer` gets no route either.
    pub fn add_veth_to(&self, bridge: &str, peer: &NetNs, peer_if: &str, cidr: &str) -> Result<()> {
        // Interface names are at most 15 bytes; the peer's namespace name is unique here.
        let port = format!("v{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", peer_if, "netns", &peer.name,
        ])?;
        self.ip(&["link", "set", &port, "master", bridge])?;
        self.ip(&["link", "set", &port, "up"])?;
        peer.ip(&["addr", "add", cidr, "dev", peer_if])?;
        peer.ip(&["link", "set", peer_if, "up"])
    }

    /// Starts `program args` in the namespace; the returned guard kills it.
    pub fn spawn(&self, what: &str, program: &str, args: &[String]) -> Result<Daemon> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so Drop also kills anything it started.
            .process_group(0);
        crate::child::die_with_this_process(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(Error::io(format!("starting {program} in {}", self.name)))?;
        Ok(Daemon {
            what: what.to_string(),
            child: Some(child),
        })
    }

    /// Runs `f` on a fresh thread that has joined the namespace, and returns what it
    /// returns. Sockets `f` creates belong to the namespace for good, so any thread can use
    /// them afterwards; the calling thread stays where it was.
    pub fn within<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.name);
        let handle = std::thread::Builder::new()
            .name(format!("in-{}", self.name))
            .spawn(move || -> Result<T> {
                let file = File::open(&path).map_err(Error::io(format!("opening {path}")))?;
                // SAFETY: plain syscall on a valid descriptor; CLONE_NEWNET changes only this
                // thread's network namespace (threads of one process may differ in it).
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::Io {
                        context: format!("joining {path}"),
                        source: std::io::Error::last_os_error(),
                    });
                }
                Ok(f())
            })
            .map_err(Error::io("spawning a thread for the namespace"))?;
        handle
            .join()
            .map_err(|_| Error::Other(format!("the thread in {} panicked", self.name)))?
    }

    /// Waits until a TCP connection to `addr` inside the namespace succeeds (a server has
    /// started listening), for at most `timeout`.
    pub fn wait_for_tcp(&self, addr: std::net::SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let connected = self.within(move || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            })?;
            if connected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "nothing listens on {addr} in {} after {timeout:?}",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the name also removes its bridges and taps once no process is left in it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A server started with [`NetNs::spawn`]; dropping it kills its process group and reaps it.
#[derive(Debug)]
pub struct Daemon {
    what: String,
    child: Option<Child>,
}

impl Daemon {
    /// Kills the server now (Drop does the same).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The group while its leader is unreaped, so the id cannot have been reused.
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: plain syscall; a stale group only yields ESRCH.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `Err` if the server has already exited (a bad option, a port in use).
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::Other(format!("{} was stopped", self.what)));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Other(format!(
                "{} exited early: {status}",
                self.what
            ))),
            Err(err) => Err(Error::Io {
                context: format!("checking on {}", self.what),
                source: err,
            }),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("running {shown}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
