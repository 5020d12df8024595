//! A second machine on the site network for the spoofing tests (needs root): a network
//! namespace joined to the test's by a veth pair, whose sockets have an address of their own.

use std::net::Ipv4Addr;

/// A network namespace joined to this one by a veth pair: the provisioner on the host side,
/// an attacker's machine inside. Drop deletes it (and with it both veth ends).
pub struct SecondMachine {
    /// The namespace's name (`ip netns exec NAME ...`).
    pub name: String,
    /// The host side's address (the provisioner's, seen from inside).
    pub host: Ipv4Addr,
    /// The machine's own address.
    pub inside: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let output = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl SecondMachine {
    /// Creates the namespace, the veth pair and both addresses (10.215.X.1 and .2).
    pub fn create() -> Self {
        // Unique per test process: parallel runs of the suite do not collide.
        let tag = std::process::id() % 50_000;
        let name = format!("ntg{tag}");
        let (host_if, peer_if) = (format!("ntg{tag}h"), format!("ntg{tag}p"));
        let octet = u8::try_from(tag % 200).unwrap() + 20;
        let host = Ipv4Addr::new(10, 215, octet, 1);
        let inside = Ipv4Addr::new(10, 215, octet, 2);
        ip(&["netns", "add", &name]);
        let machine = Self { name, host, inside };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &machine.name]);
        ip(&["addr", "add", &format!("{host}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        let inside_ip = |args: &[&str]| {
            let mut all = vec!["-n", machine.name.as_str()];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside_ip(&["addr", "add", &format!("{inside}/24"), "dev", &peer_if]);
        inside_ip(&["link", "set", &peer_if, "up"]);
        inside_ip(&["link", "set", "lo", "up"]);
        machine
    }

    /// Runs `body` on a thread inside the namespace (namespaces are per thread: setns moves
    /// only the caller), with its own runtime, so every socket it opens is the machine's.
    pub fn run<T: Send + 'static>(
        &self,
        body: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&namespace),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(body())
        })
    }
}

impl Drop for SecondMachine {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
