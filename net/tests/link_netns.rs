//! `Links` against the real kernel, each test in a fresh network namespace of its own.
//!
//! unshare(CLONE_NEWNET) moves only the calling thread (namespaces are per task), so each
//! test runs on a dedicated thread that unshares, then runs a current-thread tokio runtime
//! there: the netlink sockets and the `ip` children (forked from that thread) all live in
//! the new namespace, which has no route out and disappears with the thread. Interfaces are
//! made and read back with iproute2's `ip`, independently of the code under test. Needs
//! root (CAP_SYS_ADMIN and CAP_NET_ADMIN); without it the tests say so and pass.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bootkit_net::lease::Lease;
use bootkit_net::link::{LinkError, LinkKind, Links, VlanInfo};

/// Upper bound for any one test body; the kernel answers in milliseconds.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Locally administered (0x02) test MACs.
const MAC_A: [u8; 6] = [0x02, 0xb0, 0, 0, 0, 0x01];
const MAC_B: [u8; 6] = [0x02, 0xb0, 0, 0, 0, 0x02];

fn mac_text(mac: &[u8; 6]) -> String {
    bootkit_net::link::format_mac(mac)
}

fn netns_id(path: &str) -> std::io::Result<PathBuf> {
    std::fs::read_link(path)
}

/// Runs `body` on a new thread in a new network namespace, bounded by [`TEST_TIMEOUT`].
fn in_fresh_netns<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::spawn(move || -> Result<(), String> {
        let before = netns_id("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
        // SAFETY: unshare has no memory-safety preconditions.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            ));
        }
        let after = netns_id("/proc/thread-self/ns/net").expect("read thread netns");
        assert_ne!(
            before, after,
            "this thread must have a new network namespace"
        );
        let process = netns_id("/proc/self/ns/net").expect("read process netns");
        assert_ne!(process, after, "the other threads must keep theirs");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            tokio::time::timeout(TEST_TIMEOUT, body())
                .await
                .expect("test body timed out");
        });
        Ok(())
    });
    match thread.join() {
        Ok(Ok(())) => {}
        // The tests are marked as needing root: run as root, a namespace that cannot be
        // made is a failure, not a skip.
        Ok(Err(e)) => panic!("cannot make a network namespace (run as root): {e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `ip` (in this thread's namespace) and returns its stdout; panics with its stderr.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (install iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn add_veth(name: &str, peer: &str, mac: &[u8; 6], peer_mac: &[u8; 6]) {
    let (mac, peer_mac) = (mac_text(mac), mac_text(peer_mac));
    ip(&[
        "link", "add", name, "address", &mac, "type", "veth", "peer", "name", peer, "address",
        &peer_mac,
    ]);
}

/// A fake sysfs in which `physical` have a `device` link, i.e. look like NICs.
struct FakeSysfs(PathBuf);

impl FakeSysfs {
    fn new(physical: &[&str]) -> FakeSysfs {
        let root = std::env::temp_dir().join(format!(
            "bootkit-net-netns-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for name in physical {
            let dir = root.join("class/net").join(name);
            std::fs::create_dir_all(&dir).expect("fake sysfs dir");
            std::os::unix::fs::symlink(
                "../../../devices/pci0000:00/0000:00:03.0",
                dir.join("device"),
            )
            .expect("fake device link");
        }
        std::fs::create_dir_all(&root).expect("fake sysfs root");
        FakeSysfs(root)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lease(interface: &str, address: Ipv4Addr, prefix_len: u8, router: Option<Ipv4Addr>) -> Lease {
    let mut lease = Lease::new(interface, address, prefix_len);
    lease.routers = router.into_iter().collect();
    lease
}

async fn index_of(links: &Links, name: &str) -> u32 {
    links
        .find_by_name(name)
        .await
        .expect("find_by_name")
        .expect("interface exists")
        .index
}

#[test]
#[ignore = "needs root: network namespace"]
fn list_reports_kinds_macs_state_and_mtu() {
    in_fresh_netns(|| async {
        add_veth("bkv0", "bkv1", &MAC_A, &MAC_B);
        ip(&["link", "add", "bkbr0", "type", "bridge"]);
        let sysfs = FakeSysfs::new(&["bkv0"]);
        let links = Links::connect_with_sysfs(sysfs.path()).expect("connect");

        let all = links.list().await.expect("list");
        let by_name = |n: &str| all.iter().find(|l| l.name == n).cloned().expect(n);
        assert_eq!(by_name("lo").kind, LinkKind::Loopback);
        let nic = by_name("bkv0");
        assert_eq!(nic.kind, LinkKind::PhysicalEthernet);
        assert_eq!(nic.mac, Some(MAC_A));
        assert_eq!(nic.driver_kind.as_deref(), Some("veth"));
        assert!(!nic.admin_up && !nic.carrier);
        assert_eq!(by_name("bkv1").kind, LinkKind::Virtual);
        assert_eq!(by_name("bkv1").mac, Some(MAC_B));
        assert_eq!(by_name("bkbr0").kind, LinkKind::Virtual);
        assert_eq!(by_name("bkbr0").driver_kind.as_deref(), Some("bridge"));

        assert_eq!(
            links
                .find_by_mac(MAC_B)
                .await
                .expect("by mac")
                .map(|l| l.name),
            Some("bkv1".into())
        );
        assert_eq!(
            links
                .find_by_mac([2, 0, 0, 0, 0, 0x99])
                .await
                .expect("by mac"),
            None
        );
        assert_eq!(links.find_by_name("nope0").await.expect("by name"), None);
        assert_eq!(
            links
                .find_by_name("x".repeat(40).as_str())
                .await
                .expect("long name"),
            None
        );
        assert!(matches!(
            links.get(999_999).await,
            Err(LinkError::NoSuchIndex(999_999))
        ));

        links.set_mtu(nic.index, 1400).await.expect("set_mtu");
        assert_eq!(links.get(nic.index).await.expect("get").mtu, 1400);
        assert!(ip(&["link", "show", "bkv0"]).contains("mtu 1400"));
        let err = links
            .set_mtu(nic.index, 20)
            .await
            .expect_err("MTU 20 is invalid");
        assert!(matches!(err, LinkError::Invalid { .. }), "{err}");
        let err = links
            .set_mtu(nic.index, 1_000_000)
            .await
            .expect_err("beyond veth max");
        assert!(err.to_string().contains("MTU 1000000"), "{err}");
    });
}

#[test]
#[ignore = "needs root: network namespace"]
fn set_up_and_wait_for_carrier() {
    in_fresh_netns(|| async {
        add_veth("bkv0", "bkv1", &MAC_A, &MAC_B);
        ip(&["link", "add", "bkbr0", "type", "bridge"]);
        let links = Links::connect_with_sysfs("/nonexistent").expect("connect");
        let (a, b) = (
            index_of(&links, "bkv0").await,
            index_of(&links, "bkv1").await,
        );
        let bridge = index_of(&links, "bkbr0").await;

        // A bridge that is down (and has no ports) has no carrier, and the wait ends at its
        // timeout, not later.
        let start = Instant::now();
        let got = links
            .wait_for_carrier(bridge, Duration::from_millis(300))
            .await
            .expect("wait");
        assert!(!got);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );

        // veth has carrier once both ends are up: bring the peer up later, from another task,
        // so that the wait has to notice a change.
        links.set_up(a).await.expect("set_up a");
        links.set_up(a).await.expect("set_up is idempotent");
        let peer = links.clone();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            peer.set_up(b).await
        });
        let got = links
            .wait_for_carrier(a, Duration::from_secs(10))
            .await
            .expect("wait");
        assert!(got, "veth carrier after the peer came up");
        later.await.expect("join").expect("set_up b");
        let info = links.get(a).await.expect("get");
        assert!(info.admin_up && info.carrier);
        assert!(links.set_up(999_999).await.is_err());
    });
}

#[test]
#[ignore = "needs root: network namespace"]
fn apply_twice_replace_and_remove() {
    in_fresh_netns(|| async {
        add_veth("bkv0", "bkv1", &MAC_A, &MAC_B);
        let links = Links::connect_with_sysfs("/nonexistent").expect("connect");
        let index = index_of(&links, "bkv0").await;
        let metric = format!("metric {}", Links::metric_for(index));

        let router = Ipv4Addr::new(10, 77, 0, 1);
        let mut first = lease("bkv0", Ipv4Addr::new(10, 77, 0, 2), 24, Some(router));
        first.mtu = Some(1400);
        links.apply(&first).await.expect("apply");
        links
            .apply(&first)
            .await
            .expect("applying the same lease again is fine");

        let addrs = ip(&["-4", "-o", "addr", "show", "dev", "bkv0"]);
        assert!(addrs.contains("inet 10.77.0.2/24"), "{addrs}");
        assert_eq!(addrs.lines().count(), 1, "{addrs}");
        let default = ip(&["-4", "route", "show", "default"]);
        assert!(default.contains("via 10.77.0.1 dev bkv0"), "{default}");
        assert!(
            default.contains("proto static") && default.contains(&metric),
            "{default}"
        );
        assert_eq!(default.lines().count(), 1, "{default}");
        let subnet = ip(&["-4", "route", "show", "10.77.0.0/24"]);
        assert!(
            subnet.contains(&metric),
            "subnet route with the interface metric: {subnet}"
        );
        let info = links.get(index).await.expect("get");
        assert_eq!(info.mtu, 1400);
        assert!(info.admin_up, "apply brings the interface up");

        // A renewed lease with another address replaces the old one.
        let second = lease("bkv0", Ipv4Addr::new(10, 77, 0, 3), 24, Some(router));
        links.apply(&second).await.expect("apply new address");
        let addrs = ip(&["-4", "-o", "addr", "show", "dev", "bkv0"]);
        assert!(
            addrs.contains("inet 10.77.0.3/24") && !addrs.contains("10.77.0.2/"),
            "{addrs}"
        );
        let default = ip(&["-4", "route", "show", "default"]);
        assert!(default.contains("via 10.77.0.1 dev bkv0"), "{default}");

        links.remove(&second).await.expect("remove");
        assert_eq!(ip(&["-4", "-o", "addr", "show", "dev", "bkv0"]), "");
        assert_eq!(ip(&["-4", "route", "show", "default"]), "");
        links.remove(&second).await.expect("removing twice is fine");
        links
            .remove(&lease("gone0", second.address, 24, None))
            .await
            .expect("no interface, nothing to remove");

        let missing = links.apply(&lease("nope0", second.address, 24, None)).await;
        assert!(
            matches!(missing, Err(LinkError::NoSuchName(ref n)) if n == "nope0"),
            "{missing:?}"
        );
        let bad = links.apply(&lease("bkv0", second.address, 33, None)).await;
        assert!(matches!(bad, Err(LinkError::Invalid { .. })), "{bad:?}");
    });
}

#[test]
#[ignore = "needs root: network namespace"]
fn router_outside_the_subnet_and_dhcp_protocol() {
    in_fresh_netns(|| async {
        add_veth("bkv0", "bkv1", &MAC_A, &MAC_B);
        let links = Links::connect_with_sysfs("/nonexistent").expect("connect");
        let router = Ipv4Addr::new(10, 88, 0, 1);
        let mut l = lease("bkv0", Ipv4Addr::new(10, 77, 0, 9), 32, Some(router));
        l.server = Some(router);
        links.apply(&l).await.expect("apply /32 lease");
        links.apply(&l).await.expect("again");
        let default = ip(&["-4", "route", "show", "default"]);
        assert!(
            default.contains("via 10.88.0.1 dev bkv0 proto dhcp"),
            "{default}"
        );
        let host = ip(&["-4", "route", "show", "10.88.0.1/32"]);
        assert!(
            host.contains("dev bkv0") && host.contains("scope link"),
            "{host}"
        );

        links.remove(&l).await.expect("remove");
        assert_eq!(ip(&["-4", "route", "show", "default"]), "");
        assert_eq!(ip(&["-4", "route", "show", "10.88.0.1/32"]), "");
    });
}

#[test]
#[ignore = "needs root: network namespace"]
fn two_interfaces_keep_their_own_default_routes() {
    in_fresh_netns(|| async {
        add_veth("bkv0", "bkv1", &MAC_A, &MAC_B);
        add_veth(
            "bkw0",
            "bkw1",
            &[2, 0xb1, 0, 0, 0, 1],
            &[2, 0xb1, 0, 0, 0, 2],
        );
        let links = Links::connect_with_sysfs("/nonexistent").expect("connect");
        let first = lease(
            "bkv0",
            Ipv4Addr::new(10, 77, 0, 2),
            24,
            Some(Ipv4Addr::new(10, 77, 0, 1)),
        );
        let second = lease(
            "bkw0",
            Ipv4Addr::new(10, 78, 0, 2),
            24,
            Some(Ipv4Addr::new(10, 78, 0, 1)),
        );
        links.apply(&first).await.expect("apply first");
        links.apply(&second).await.expect("apply second");
        let default = ip(&["-4", "route", "show", "default"]);
        assert!(default.contains("via 10.77.0.1 dev bkv0"), "{default}");
        assert!(default.contains("via 10.78.0.1 dev bkw0"), "{default}");

        links.remove(&first).await.expect("remove first");
        let default = ip(&["-4", "route", "show", "default"]);
        assert!(
            !default.contains("bkv0") && default.contains("bkw0"),
            "{default}"
        );
    });
}

#[test]
#[ignore = "needs root: network namespace"]
fn add_route_for_rd_route() {
    in_fresh_netns(|| async {
        add_veth("bkv0", "bkv1", &MAC_A, &MAC_B);
        let links = Links::connect_with_sysfs("/nonexistent").expect("connect");
        let index = index_of(&links, "bkv0").await;
        links
            .apply(&lease("bkv0", Ipv4Addr::new(10, 77, 0, 2), 24, None))
            .await
            .expect("apply");

        let gw = Some(Ipv4Addr::new(10, 77, 0, 1));
        links
            .add_route(Ipv4Addr::new(10, 99, 1, 2), 16, gw, Some(index))
            .await
            .expect("add_route");
        links
            .add_route(Ipv4Addr::new(10, 99, 0, 0), 16, gw, Some(index))
            .await
            .expect("again");
        let routes = ip(&["-4", "route", "show", "10.99.0.0/16"]);
        assert!(
            routes.contains("10.99.0.0/16 via 10.77.0.1 dev bkv0"),
            "{routes}"
        );
        assert_eq!(routes.lines().count(), 1, "{routes}");

        links
            .add_route(Ipv4Addr::new(10, 98, 0, 0), 24, None, Some(index))
            .await
            .expect("on-link route");
        let routes = ip(&["-4", "route", "show", "10.98.0.0/24"]);
        assert!(
            routes.contains("dev bkv0") && routes.contains("scope link"),
            "{routes}"
        );

        let err = links
            .add_route(Ipv4Addr::new(10, 97, 0, 0), 16, None, None)
            .await
            .expect_err("nowhere");
        assert!(matches!(err, LinkError::Invalid { .. }), "{err}");
        let err = links
            .add_route(
                Ipv4Addr::new(10, 96, 0, 0),
                16,
                Some(Ipv4Addr::new(192, 0, 2, 1)),
                None,
            )
            .await
            .expect_err("unreachable gateway");
        assert!(
            err.errno().is_some() && err.to_string().contains("10.96.0.0/16"),
            "{err}"
        );
    });
}

#[test]
#[ignore = "needs root: network namespace"]
fn add_vlan_creates_an_8021q_interface() {
    in_fresh_netns(|| async {
        add_veth("bkv0", "bkv1", &MAC_A, &MAC_B);
        let links = Links::connect_with_sysfs("/nonexistent").expect("connect");
        let parent = index_of(&links, "bkv0").await;

        let index = match links.add_vlan(parent, 42, "bkv0.42").await {
            Ok(index) => index,
            // Some CI kernels lack CONFIG_VLAN_8021Q; the error must say so.
            Err(LinkError::Unsupported { what }) => {
                assert!(what.contains("802.1Q"), "{what}");
                eprintln!("skipped: this kernel has no 802.1Q VLAN support");
                return;
            }
            Err(e) => panic!("add_vlan: {e}"),
        };
        let vlan = links.get(index).await.expect("get vlan");
        assert_eq!(vlan.name, "bkv0.42");
        assert_eq!(vlan.kind, LinkKind::Vlan);
        assert_eq!(vlan.vlan, Some(VlanInfo { id: 42, parent }));
        assert_eq!(vlan.mac, Some(MAC_A), "a VLAN shares its parent's MAC");
        assert!(vlan.admin_up && links.get(parent).await.expect("parent").admin_up);
        let shown = ip(&["-d", "link", "show", "bkv0.42"]);
        assert!(shown.contains("vlan protocol 802.1Q id 42"), "{shown}");

        // The MAC is shared, the NIC is what hw_addr= means... here neither is physical, so
        // the lower index (the parent) wins.
        assert_eq!(
            links
                .find_by_mac(MAC_A)
                .await
                .expect("by mac")
                .map(|l| l.index),
            Some(parent)
        );

        assert_eq!(
            links.add_vlan(parent, 42, "bkv0.42").await.expect("again"),
            index
        );
        let err = links
            .add_vlan(parent, 43, "bkv0.42")
            .await
            .expect_err("name taken");
        assert!(matches!(err, LinkError::VlanConflict { .. }), "{err}");
        let err = links
            .add_vlan(999_999, 42, "bkx.42")
            .await
            .expect_err("no parent");
        assert!(matches!(err, LinkError::NoSuchIndex(999_999)), "{err}");
        let err = links
            .add_vlan(parent, 4095, "bkv0.4095")
            .await
            .expect_err("reserved id");
        assert!(matches!(err, LinkError::Invalid { .. }), "{err}");

        // A lease on the VLAN, as ipam= with a VLAN does.
        links
            .apply(&lease(
                "bkv0.42",
                Ipv4Addr::new(10, 42, 0, 2),
                24,
                Some(Ipv4Addr::new(10, 42, 0, 1)),
            ))
            .await
            .expect("apply on the VLAN");
        let default = ip(&["-4", "route", "show", "default"]);
        assert!(default.contains("via 10.42.0.1 dev bkv0.42"), "{default}");
    });
}
