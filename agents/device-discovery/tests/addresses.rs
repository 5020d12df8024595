//! The live address lookup (getifaddrs) inside a network namespace the test creates: a NIC's
//! IPv4 address is found, loopback is not an answer.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;

use device_discovery::identity::{AddressSource, LiveAddresses};
use nix::sched::{CloneFlags, setns};

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

/// A network namespace with a veth NIC `ddlive0` at 10.77.0.5/24 and no route out; deleted
/// when dropped.
struct Namespace(String);

impl Namespace {
    fn create() -> Namespace {
        let name = format!("dd-addr-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let namespace = Namespace(name);
        let run = |args: &[&str]| {
            let mut full = vec!["-n", namespace.0.as_str()];
            full.extend_from_slice(args);
            ip(&full);
        };
        run(&["link", "set", "lo", "up"]);
        run(&[
            "link", "add", "ddlive0", "type", "veth", "peer", "name", "ddpeer0",
        ]);
        run(&["addr", "add", "10.77.0.5/24", "dev", "ddlive0"]);
        run(&["link", "set", "ddlive0", "up"]);
        namespace
    }

    /// `lookup` run on a thread that entered the namespace (setns is per thread).
    fn inside<T: Send + 'static>(&self, lookup: impl FnOnce() -> T + Send + 'static) -> T {
        let handle = File::open(format!("/run/netns/{}", self.0)).unwrap();
        std::thread::spawn(move || {
            setns(handle, CloneFlags::CLONE_NEWNET).unwrap();
            lookup()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
#[ignore = "needs root: network namespace"]
fn finds_the_nics_ipv4_address_and_ignores_loopback() {
    let namespace = Namespace::create();

    let (nic, loopback, absent) = namespace.inside(|| {
        (
            LiveAddresses.ipv4("ddlive0"),
            LiveAddresses.ipv4("lo"),
            LiveAddresses.ipv4("nosuchnic0"),
        )
    });

    assert_eq!(nic, [Ipv4Addr::new(10, 77, 0, 5)]);
    assert!(loopback.is_empty(), "loopback is never the boot address");
    assert!(absent.is_empty());
}
