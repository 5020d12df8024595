//! dracut's network forms (dracut.cmdline(7)) applied by [`bootkit_net::setup`] to real
//! interfaces, checked with iproute2's `ip -j` as the independent oracle: a veth pair
//! between two network namespaces this test creates (the "machine" and its "network"), so
//! nothing leaves them. Where dracut runs an `ip` command (`ip addr add A/M peer P`), the
//! same command run by `ip` on a second pair is the expected result.
//!
//! SLAAC is checked against dnsmasq's router advertisements (`--enable-ra` with an
//! `ra-only` range) sent from the network namespace: a real RA sender, not ours.
//!
//! Needs root, `ip` (iproute2) and dnsmasq (dnsmasq-base). VLAN and bond tests need the
//! kernel's 8021q and bonding support; on a kernel without them they check that the error
//! says so and stop there, saying it on stderr.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bootkit_net::config::{self, NetConfig};
use bootkit_net::link::{LinkError, Links};
use bootkit_net::setup::{self, Applied, Prepared};
use serde_json::Value;

/// Bound for one test body.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Two namespaces joined by veth pairs; Drop removes them (and dnsmasq) whatever happened.
struct Lab {
    machine: String,
    network: String,
    dnsmasq: Option<Child>,
    dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.machine, &self.network] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (install iproute2)", args.join(" ")));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    /// `tag` keeps the namespaces of tests running in parallel apart.
    fn new(tag: &str) -> Lab {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "must run as root");
        let pid = std::process::id();
        let lab = Lab {
            machine: format!("bks-{pid}-{tag}-m"),
            network: format!("bks-{pid}-{tag}-n"),
            dnsmasq: None,
            dir: std::env::temp_dir().join(format!("bks-{pid}-{tag}")),
        };
        fs::create_dir_all(&lab.dir).expect("temp dir");
        run(&["ip", "netns", "add", &lab.machine]);
        run(&["ip", "netns", "add", &lab.network]);
        run(&["ip", "-n", &lab.machine, "link", "set", "lo", "up"]);
        run(&["ip", "-n", &lab.network, "link", "set", "lo", "up"]);
        lab
    }

    /// A veth pair: `machine_if` (with `mac`) in the machine, `network_if` up in the network.
    fn cable(&self, machine_if: &str, mac: &str, network_if: &str) {
        run(&[
            "ip",
            "-n",
            &self.network,
            "link",
            "add",
            network_if,
            "type",
            "veth",
            "peer",
            "name",
            machine_if,
            "netns",
            &self.machine,
        ]);
        run(&[
            "ip",
            "-n",
            &self.machine,
            "link",
            "set",
            machine_if,
            "address",
            mac,
        ]);
        run(&["ip", "-n", &self.network, "link", "set", network_if, "up"]);
    }

    /// `ip -j <args>` in the machine's namespace, parsed.
    fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["ip", "-j", "-n", &self.machine];
        full.extend_from_slice(args);
        serde_json::from_str(&run(&full)).expect("ip -j prints JSON")
    }

    fn link(&self, name: &str) -> Value {
        self.ip_json(&["-d", "link", "show", "dev", name])[0].clone()
    }

    fn addresses(&self, family: &str, name: &str) -> Vec<Value> {
        self.ip_json(&[family, "addr", "show", "dev", name])[0]["addr_info"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Runs `body` with a [`Links`] in the machine's namespace, on a thread of its own.
    fn in_machine<T: Send + 'static>(
        &self,
        body: impl AsyncFnOnce(Links) -> T + Send + 'static,
    ) -> T {
        let path = PathBuf::from("/run/netns").join(&self.machine);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("open the machine's namespace");
            // SAFETY: a valid namespace fd; affects only this thread.
            let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let result = runtime.block_on(async {
                let links = Links::connect_with_sysfs("/nonexistent").expect("netlink");
                tokio::time::timeout(TEST_TIMEOUT, body(links))
                    .await
                    .expect("test body timed out")
            });
            let _ = tx.send(result);
        });
        rx.recv_timeout(TEST_TIMEOUT + Duration::from_secs(5))
            .expect("the machine's thread ended without an answer (it panicked)")
    }
}

fn cmdline(pairs: &[(&str, &str)]) -> NetConfig {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let config = config::parse(&owned);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    config
}

/// prepare_links, then every ip= of the command line.
async fn apply_all(links: &Links, config: &NetConfig) -> (Prepared, Vec<Result<Applied, String>>) {
    let prepared = setup::prepare_links(links, config).await.expect("prepare");
    let mut applied = Vec::new();
    for interface in &config.interfaces {
        applied.push(setup::apply_interface(links, &prepared.links, interface, config).await);
    }
    (prepared, applied)
}

fn flags(link: &Value) -> Vec<String> {
    link["flags"]
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `ip=<client>::<gw>:<netmask>:<hostname>:<iface>:none:<mtu>:<macaddr>` and
/// `ip=<iface>:dhcp:<mtu>:<macaddr>`: the MAC and MTU are set and the link is up; DHCP is
/// handed the link with its new MAC.
#[test]
#[ignore = "needs root: network namespaces"]
fn ip_sets_mtu_and_mac_static_and_dhcp() {
    let lab = Lab::new("mtu");
    lab.cable("bks0", "02:00:00:00:10:01", "bkn0");
    lab.cable("bks1", "02:00:00:00:10:02", "bkn1");
    let config = cmdline(&[
        (
            "ip",
            "192.168.1.10::192.168.1.1:255.255.255.0:node1:bks0:none:1400:02:aa:bb:cc:dd:ee",
        ),
        ("ip", "bks1:dhcp:1450:02-aa-bb-cc-dd-ff"),
    ]);
    let applied = lab.in_machine(async move |links| apply_all(&links, &config).await.1);

    let static_link = lab.link("bks0");
    assert_eq!(static_link["mtu"], 1400);
    assert_eq!(static_link["address"], "02:aa:bb:cc:dd:ee");
    assert!(
        flags(&static_link).contains(&"UP".to_string()),
        "{static_link}"
    );
    let addresses = lab.addresses("-4", "bks0");
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert_eq!(addresses[0]["local"], "192.168.1.10");
    assert_eq!(addresses[0]["prefixlen"], 24);
    let routes = lab.ip_json(&["-4", "route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "192.168.1.1", "{routes}");
    assert_eq!(routes[0]["dev"], "bks0", "{routes}");

    let dhcp_link = lab.link("bks1");
    assert_eq!(dhcp_link["mtu"], 1450);
    assert_eq!(dhcp_link["address"], "02:aa:bb:cc:dd:ff");
    assert!(flags(&dhcp_link).contains(&"UP".to_string()), "{dhcp_link}");
    match &applied[1] {
        Ok(Applied::Dhcp(link)) => {
            assert_eq!(link.name, "bks1");
            assert_eq!(link.mac, Some([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xff]));
            assert_eq!(link.mtu, 1450);
        }
        other => panic!("expected DHCP on bks1, got {other:?}"),
    }
    assert!(
        matches!(applied[0], Ok(Applied::Static(_))),
        "{:?}",
        applied[0]
    );
}

/// `ip=<client>:<peer>:...`: the same address as dracut's `ip addr add <client>/<mask> peer
/// <peer>`, which `ip` itself runs on a second interface for comparison.
#[test]
#[ignore = "needs root: network namespaces"]
fn ip_peer_is_a_point_to_point_address_as_ip_makes_it() {
    let lab = Lab::new("peer");
    lab.cable("bks0", "02:00:00:00:20:01", "bkn0");
    lab.cable("bkref", "02:00:00:00:20:02", "bknref");
    for (peer, dracut_peer) in [("10.9.0.2", "10.9.0.2"), ("10.9.0.6/30", "10.9.0.6/30")] {
        let value = format!("10.9.0.1:{peer}::255.255.255.0::bks0:none");
        let config = cmdline(&[("ip", &value)]);
        let applied = lab.in_machine(async move |links| apply_all(&links, &config).await.1);
        assert!(
            matches!(applied[0], Ok(Applied::Static(_))),
            "{:?}",
            applied[0]
        );
        run(&["ip", "-n", &lab.machine, "addr", "flush", "dev", "bkref"]);
        run(&[
            "ip",
            "-n",
            &lab.machine,
            "addr",
            "add",
            "10.9.0.1/24",
            "peer",
            dracut_peer,
            "dev",
            "bkref",
        ]);
        let ours = lab.addresses("-4", "bks0");
        let reference = lab.addresses("-4", "bkref");
        assert_eq!(ours.len(), 1, "{ours:?}");
        for field in ["local", "address", "prefixlen", "scope"] {
            assert_eq!(
                ours[0][field], reference[0][field],
                "{field}: {ours:?} vs {reference:?}"
            );
        }
        assert_eq!(ours[0]["local"], "10.9.0.1");
        assert_eq!(
            ours[0]["address"],
            dracut_peer.split('/').next().unwrap_or_default()
        );
    }
}

/// `ifname=<name>:<mac>` renames before anything looks names up: an `ip=` on the new name
/// finds it.
#[test]
#[ignore = "needs root: network namespaces"]
fn ifname_renames_the_nic_with_that_mac_before_ip() {
    let lab = Lab::new("ifname");
    lab.cable("bks0", "02:00:00:00:30:01", "bkn0");
    lab.cable("bks1", "02:00:00:00:30:02", "bkn1");
    let config = cmdline(&[
        ("ifname", "bootnet:02:00:00:00:30:02"),
        ("ip", "10.30.0.5::10.30.0.1:24::bootnet:none"),
    ]);
    let (prepared, applied) = lab.in_machine(async move |links| apply_all(&links, &config).await);
    assert!(prepared.problems.is_empty(), "{:?}", prepared.problems);
    let links = lab.ip_json(&["link", "show"]);
    let names: Vec<&str> = links
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|link| link["ifname"].as_str())
        .collect();
    assert!(
        names.contains(&"bootnet") && !names.contains(&"bks1"),
        "{names:?}"
    );
    assert_eq!(lab.link("bootnet")["address"], "02:00:00:00:30:02");
    assert_eq!(lab.link("bks0")["address"], "02:00:00:00:30:01");
    assert!(
        matches!(applied[0], Ok(Applied::Static(_))),
        "{:?}",
        applied[0]
    );
    assert_eq!(lab.addresses("-4", "bootnet")[0]["local"], "10.30.0.5");
}

/// `vlan=<name>:<phys>` with `ip=<name>:...`, in both of dracut's naming styles: the VLAN
/// exists before `ip=` is resolved, and the address is on the VLAN, not on its parent.
#[test]
#[ignore = "needs root: network namespaces, 802.1Q VLANs"]
fn vlan_named_by_vlan_is_usable_by_ip() {
    let lab = Lab::new("vlan");
    lab.cable("bks0", "02:00:00:00:40:01", "bkn0");
    let config = cmdline(&[
        ("vlan", "vlan0042:bks0"),
        ("vlan", "bks0.7:bks0"),
        ("ip", "10.42.0.5::10.42.0.1:24::vlan0042:none"),
        ("ip", "10.7.0.5:::24::bks0.7:none"),
    ]);
    let (prepared, applied) = lab.in_machine(async move |links| apply_all(&links, &config).await);
    if prepared.problems.iter().any(|p| p.contains("802.1Q")) {
        eprintln!(
            "skipped: this kernel has no 802.1Q VLAN support: {:?}",
            prepared.problems
        );
        return;
    }
    assert!(prepared.problems.is_empty(), "{:?}", prepared.problems);
    for (name, id, address) in [("vlan0042", 42, "10.42.0.5"), ("bks0.7", 7, "10.7.0.5")] {
        let link = lab.link(name);
        assert_eq!(link["link"], "bks0", "{link}");
        assert_eq!(link["linkinfo"]["info_kind"], "vlan", "{link}");
        assert_eq!(link["linkinfo"]["info_data"]["id"], id, "{link}");
        assert_eq!(lab.addresses("-4", name)[0]["local"], address);
    }
    assert!(lab.addresses("-4", "bks0").is_empty());
    assert!(
        applied.iter().all(|a| matches!(a, Ok(Applied::Static(_)))),
        "{applied:?}"
    );
}

/// `bond=<name>:<slaves>:<options>:<mtu>` then `ip=<bond>:...`: the bond exists with its
/// mode and miimon, the slaves are in it, the MTU is set and the address is on the bond.
#[test]
#[ignore = "needs root: network namespaces, bonding"]
fn bond_with_options_slaves_and_mtu_then_ip_on_it() {
    let lab = Lab::new("bond");
    lab.cable("bks0", "02:00:00:00:50:01", "bkn0");
    lab.cable("bks1", "02:00:00:00:50:02", "bkn1");
    let config = cmdline(&[
        (
            "bond",
            "bkbond0:bks0,bks1:mode=active-backup,miimon=100,primary=bks1:1400",
        ),
        ("ip", "10.50.0.5::10.50.0.1:24::bkbond0:none"),
    ]);
    let (prepared, applied) = lab.in_machine(async move |links| apply_all(&links, &config).await);
    if prepared
        .problems
        .iter()
        .any(|p| p.contains("CONFIG_BONDING"))
    {
        eprintln!(
            "skipped: this kernel has no bonding support: {:?}",
            prepared.problems
        );
        return;
    }
    assert!(prepared.problems.is_empty(), "{:?}", prepared.problems);
    let bond = lab.link("bkbond0");
    assert_eq!(bond["linkinfo"]["info_kind"], "bond", "{bond}");
    assert_eq!(
        bond["linkinfo"]["info_data"]["mode"], "active-backup",
        "{bond}"
    );
    assert_eq!(bond["linkinfo"]["info_data"]["miimon"], 100, "{bond}");
    assert_eq!(bond["linkinfo"]["info_data"]["primary"], "bks1", "{bond}");
    assert_eq!(bond["mtu"], 1400);
    for slave in ["bks0", "bks1"] {
        assert_eq!(lab.link(slave)["master"], "bkbond0", "{slave}");
    }
    assert_eq!(lab.addresses("-4", "bkbond0")[0]["local"], "10.50.0.5");
    assert!(matches!(applied[0], Ok(Applied::Static(_))), "{applied:?}");
}

/// On a kernel without bonding (or 802.1Q) the error names the missing kernel option rather
/// than passing in silence.
#[test]
#[ignore = "needs root: network namespaces"]
fn missing_kernel_support_is_named() {
    let lab = Lab::new("kern");
    lab.cable("bks0", "02:00:00:00:60:01", "bkn0");
    let result = lab.in_machine(async move |links| {
        links
            .add_bond("bkbond1", &["bks0".to_string()], &[], None)
            .await
            .map_err(|err| {
                (
                    matches!(err, LinkError::Unsupported { .. }),
                    err.to_string(),
                )
            })
    });
    match result {
        Ok(_) => assert_eq!(lab.link("bks0")["master"], "bkbond1"),
        Err((unsupported, text)) => {
            assert!(unsupported && text.contains("CONFIG_BONDING"), "{text}");
        }
    }
}

/// `ip=[v6]::[v6gw]:<prefixlen>:<hostname>:<iface>:none`: the address (after DAD) and the
/// default route, as `ip -6` shows them.
#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_static_address_and_gateway() {
    let lab = Lab::new("v6s");
    lab.cable("bks0", "02:00:00:00:70:01", "bkn0");
    let config = cmdline(&[(
        "ip",
        "[2001:db8:70::10]::[2001:db8:70::1]:64:node6:bks0:none",
    )]);
    let applied = lab.in_machine(async move |links| apply_all(&links, &config).await.1);
    match &applied[0] {
        Ok(Applied::Ipv6 { interface, address }) => {
            assert_eq!(interface, "bks0");
            assert_eq!(address.address.to_string(), "2001:db8:70::10");
            assert!(!address.tentative);
        }
        other => panic!("expected IPv6 on bks0, got {other:?}"),
    }
    let global: Vec<Value> = lab
        .addresses("-6", "bks0")
        .into_iter()
        .filter(|a| a["scope"] == "global")
        .collect();
    assert_eq!(global.len(), 1, "{global:?}");
    assert_eq!(global[0]["local"], "2001:db8:70::10");
    assert_eq!(global[0]["prefixlen"], 64);
    assert!(global[0].get("tentative").is_none(), "{global:?}");
    let routes = lab.ip_json(&["-6", "route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "2001:db8:70::1", "{routes}");
    assert_eq!(routes[0]["dev"], "bks0", "{routes}");
    let accept_ra = run(&[
        "ip",
        "netns",
        "exec",
        &lab.machine,
        "cat",
        "/proc/sys/net/ipv6/conf/bks0/accept_ra",
    ]);
    assert_eq!(accept_ra.trim(), "1");
}

/// `ip=<iface>:auto6`: a global address made from dnsmasq's router advertisement of
/// 2001:db8:80::/64, with the EUI-64 of the interface's MAC (RFC 4862), as `ip -6` shows.
#[test]
#[ignore = "needs root: network namespaces, dnsmasq"]
fn ipv6_auto6_takes_the_address_from_router_advertisements() {
    let mut lab = Lab::new("v6a");
    lab.cable("bks0", "02:00:00:00:80:01", "bkn0");
    run(&[
        "ip",
        "-n",
        &lab.network,
        "addr",
        "add",
        "2001:db8:80::1/64",
        "dev",
        "bkn0",
        "nodad",
    ]);
    let log = File::create(lab.dir.join("dnsmasq.log")).expect("log");
    let log2 = log.try_clone().expect("log");
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.network, "dnsmasq"])
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            "--interface=bkn0",
            "--enable-ra",
            "--dhcp-range=2001:db8:80::,ra-only,64,1h",
            "--ra-param=bkn0,5",
            "--log-facility=-",
        ])
        .arg(format!(
            "--dhcp-leasefile={}",
            lab.dir.join("leases").display()
        ))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .expect("dnsmasq (install the dnsmasq-base package)");
    lab.dnsmasq = Some(child);
    let config = cmdline(&[("ip", "bks0:auto6"), ("rd.net.timeout.ipv6auto", "20")]);
    assert_eq!(config.ipv6_auto_timeout, Duration::from_secs(20));
    let applied = lab.in_machine(async move |links| apply_all(&links, &config).await.1);
    let log = fs::read_to_string(lab.dir.join("dnsmasq.log")).unwrap_or_default();
    let expected = "2001:db8:80::ff:fe00:8001";
    match &applied[0] {
        Ok(Applied::Ipv6 { interface, address }) => {
            assert_eq!(interface, "bks0");
            assert_eq!(address.address.to_string(), expected, "dnsmasq: {log}");
            assert_eq!(address.prefix_len, 64);
        }
        other => panic!("expected SLAAC on bks0, got {other:?}; dnsmasq: {log}"),
    }
    let global: Vec<Value> = lab
        .addresses("-6", "bks0")
        .into_iter()
        .filter(|a| a["scope"] == "global")
        .collect();
    assert_eq!(global.len(), 1, "{global:?}");
    assert_eq!(global[0]["local"], expected);
    assert!(
        global[0]["dynamic"].as_bool().unwrap_or(false),
        "made from an RA: {global:?}"
    );
    let routes = lab.ip_json(&["-6", "route", "show", "default"]);
    assert_eq!(routes[0]["protocol"], "ra", "{routes}");
}
