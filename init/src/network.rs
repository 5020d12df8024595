//! The network as a built-in service of PID 1: no dhclient, ip or ntpd in the image.
//!
//! After switch_root a thread runs a small tokio runtime that applies the command line in
//! dracut's order ([`bootkit_net::setup`]: renames, bonds, VLANs, then each `ip=` with its MAC
//! and MTU, static IPv4/IPv6 or SLAAC), runs DHCP on the chosen interfaces (the first lease
//! wins unless `bootkit.net.all=1`), writes /etc/resolv.conf, and then reaches the built-in
//! targets: `network-online` with the first address, `time-sync` once SNTP has set the clock,
//! `nbd` once the network block devices are attached. Log lines are forwarded to
//! `syslog_host=` from the start of the boot: buffered until the network is up.
//!
//! What to do is decided by [`bootkit_net::online`] (which interfaces, which lease wins, when
//! the network is online); this module does the I/O it asks for, logs, and reaches targets.
//! The thread owes its targets: if it panics or stops, they fail with the reason.

use bootkit_common::error_chain;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bootkit_net::config::{self, NetConfig, StaticRoute};
use bootkit_net::dhcp::{self, LeaseEvent};
use bootkit_net::lease::Lease;
use bootkit_net::link::{LinkInfo, Links, format_mac};
use bootkit_net::online::{AddressSource, OnlineEvent, Policy, choose};
use bootkit_net::setup::{self, Applied};
use bootkit_net::syslog::{
    ClientIdentity, Forwarder, ForwarderConfig, ForwarderTask, Severity, Transport,
};
use bootkit_net::{nbd, resolv, sntp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::log::Level;
use crate::targets;

const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Between failed attempts to set the clock.
const TIME_SYNC_RETRY: Duration = Duration::from_secs(15);

/// The targets the network thread reaches (`nbd` through the attachments it starts).
const OWED_TARGETS: [&str; 3] = [targets::NETWORK_ONLINE, targets::TIME_SYNC, targets::NBD];

static FORWARDER: OnceLock<Forwarder> = OnceLock::new();

/// Start forwarding log lines to `syslog_host=` (when set): from now on every line is
/// buffered, and sent once [`start`] has the network up.
pub fn forward_logs(env: &[(String, String)]) -> Option<ForwarderTask> {
    let (forwarder, task) = Forwarder::new(forwarder_config(env)?);
    if FORWARDER.set(forwarder).is_ok() {
        crate::log::forward_to(&forward_line);
    }
    Some(task)
}

/// The forwarding the command line asks for: `syslog_host=`, `syslog_port=` (514, or 6514
/// for TLS), `syslog_transport=udp|tcp|tls`, `syslog_ca=` (TLS: the CA bundle, by default the
/// image's; without it `tinkerbell_ca_sha256=` pins the site CA as for gRPC), and
/// `worker_id=` as the HOSTNAME of every line. Over TLS the node's enrollment
/// certificate is presented once device discovery has written it (`tinkerbell_client_cert=`
/// and `tinkerbell_client_key=`, by default /run/bootkit/credentials/node.pem and
/// node-key.pem), so the provisioner files the lines under this node by its certificate.
fn forwarder_config(env: &[(String, String)]) -> Option<ForwarderConfig> {
    let value = |key: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mut config = ForwarderConfig::new(value("syslog_host")?);
    config.transport = match value("syslog_transport").as_deref() {
        None | Some("udp") => Transport::Udp,
        Some("tcp") => Transport::Tcp,
        Some("tls") => Transport::Tls,
        Some(other) => {
            crate::warn!(
                "syslog",
                "ignoring syslog_transport={other:?}: expected udp, tcp or tls"
            );
            Transport::Udp
        }
    };
    config.port = config.transport.default_port();
    if let Some(port) = value("syslog_port") {
        match port.parse() {
            Ok(port) => config.port = port,
            Err(_) => crate::warn!(
                "syslog",
                "ignoring syslog_port={port:?}: expected a port number"
            ),
        }
    }
    config.ca_file = value("syslog_ca").map(std::path::PathBuf::from);
    // The receiver presents the same --tls-cert chain as the provisioner's gRPC, so the
    // boot line's gRPC pin verifies it too; an explicit syslog_ca= wins.
    if config.transport == Transport::Tls
        && config.ca_file.is_none()
        && let Some(pin) = value("tinkerbell_ca_sha256")
    {
        match bootkit_common::checksum::Sha256Digest::parse(&pin) {
            Ok(digest) => config.ca_sha256 = Some(digest.0),
            Err(_) => crate::warn!(
                "syslog",
                "ignoring tinkerbell_ca_sha256={pin:?} for syslog TLS: expected the 64 hex digits of the site CA's SHA-256; the log host is verified against the image's CA bundle instead"
            ),
        }
    }
    if config.transport == Transport::Tls {
        let default = ClientIdentity::node_default();
        config.client_identity = Some(ClientIdentity {
            cert: value("tinkerbell_client_cert").map_or(default.cert, Into::into),
            key: value("tinkerbell_client_key").map_or(default.key, Into::into),
        });
    }
    if let Some(worker) = value("worker_id") {
        config.hostname = worker;
    }
    Some(config)
}

fn forward_line(level: Level, source: &str, message: &str) {
    if let Some(forwarder) = FORWARDER.get() {
        let severity = match level {
            Level::Error => Severity::Error,
            Level::Warn => Severity::Warning,
            Level::Info => Severity::Informational,
        };
        forwarder.push(source, severity, message);
    }
}

/// Bring the network up in the background, as the kernel command line says.
pub fn start(env: &[(String, String)], syslog: Option<ForwarderTask>) {
    let config = config::parse(env);
    for warning in &config.warnings {
        crate::warn!("network", "{warning}; that setting is ignored");
    }
    let worker_id = env
        .iter()
        .rev()
        .find(|(k, _)| k == "worker_id")
        .map(|(_, v)| v.clone());
    let nbd_specs = nbd_specs(env);
    let spawned = std::thread::Builder::new()
        .name("network".to_string())
        .spawn(move || {
            // This thread reaches them: a panic on it, or its end, fails those not reached.
            let owed = targets::global().owe(&OWED_TARGETS);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let stopped = match runtime {
                Ok(runtime) => runtime.block_on(run(config, syslog, worker_id, nbd_specs)),
                Err(err) => format!("cannot start the network runtime: {err}"),
            };
            crate::error!("network", "{stopped}");
            owed.give_up(&format!("the network stopped: {stopped}"));
        });
    if let Err(err) = spawned {
        let reason = format!("cannot start the network thread: {err}");
        crate::error!("network", "{reason}");
        for name in OWED_TARGETS {
            targets::global().fail(name, &reason);
        }
    }
}

/// How many NBD devices the `bootkit.nbd=` parameters name (the highest `/dev/nbdN` plus
/// one), for the nbd module's `nbds_max`. Values that do not parse are skipped here and
/// warned about once, when the network thread reads them ([`nbd_specs`]).
pub fn nbd_devices_needed(env: &[(String, String)]) -> u32 {
    env.iter()
        .filter(|(key, _)| key == nbd::KEY)
        .filter_map(|(_, value)| nbd::NbdSpec::parse(value).ok())
        .map(|spec| spec.index().saturating_add(1))
        .max()
        .unwrap_or(0)
}

fn nbd_specs(env: &[(String, String)]) -> Vec<nbd::NbdSpec> {
    let mut specs = Vec::new();
    for (key, value) in env.iter().filter(|(key, _)| key == "bootkit.nbd") {
        match nbd::NbdSpec::parse(value) {
            Ok(spec) => specs.push(spec),
            Err(err) => crate::warn!("nbd", "ignoring {key}={value:?}: {err}"),
        }
    }
    specs
}

/// The network thread's state: the policy, and what going online needs.
struct Network {
    links: Links,
    config: NetConfig,
    policy: Policy,
    /// The running DHCP clients, by interface.
    clients: BTreeMap<String, JoinHandle<()>>,
    /// The MTU an `ip=<iface>:dhcp:<mtu>` asked for, by interface: it wins over the lease's.
    dhcp_mtu: BTreeMap<String, u16>,
    worker_id: Option<String>,
    syslog_up: watch::Sender<bool>,
    nbd_specs: Vec<nbd::NbdSpec>,
}

/// The network thread's life; returns only if the network cannot be brought up, with why.
async fn run(
    config: NetConfig,
    syslog: Option<ForwarderTask>,
    worker_id: Option<String>,
    nbd_specs: Vec<nbd::NbdSpec>,
) -> String {
    let (syslog_up, syslog_up_rx) = watch::channel(false);
    if let Some(task) = syslog {
        tokio::spawn(task.run_when_up(syslog_up_rx, |event| {
            // To the console only: through the forwarder it would queue behind what it is about.
            println!("[{:>10.6}] syslog: {event}", crate::log::uptime_seconds());
        }));
    }
    let links = match Links::connect() {
        Ok(links) => links,
        Err(err) => {
            return format!(
                "cannot talk to the kernel's network stack: {err}",
                err = error_chain(&err)
            );
        }
    };
    if let Ok(Some(lo)) = links.find_by_name("lo").await
        && let Err(err) = links.set_up(lo.index).await
    {
        crate::warn!(
            "network",
            "cannot bring lo up: {err}",
            err = error_chain(&err)
        );
    }
    let mut network = Network {
        links,
        policy: Policy::new(config.keep_all_leases),
        config,
        clients: BTreeMap::new(),
        dhcp_mtu: BTreeMap::new(),
        worker_id,
        syslog_up,
        nbd_specs,
    };
    let dhcp_on = match network.configure_interfaces().await {
        Ok(dhcp_on) => dhcp_on,
        Err(err) => return err,
    };
    network.run_dhcp(dhcp_on).await;
    // With static addresses only there is no DHCP loop to wait on, but the tasks it started
    // (time sync, log forwarding) live on this runtime: keep it running for the machine's life.
    std::future::pending().await
}

/// What `step` reports, to be acted on in order (acting awaits; the policy does not).
fn reported(step: impl FnOnce(&mut dyn FnMut(OnlineEvent))) -> Vec<OnlineEvent> {
    let mut events = Vec::new();
    step(&mut |event| events.push(event));
    events
}

impl Network {
    /// Renames, bonds and VLANs, then each `ip=`/`ipam=` (MAC, MTU, static IPv4 or IPv6,
    /// SLAAC); returns the interfaces to run DHCP on.
    async fn configure_interfaces(&mut self) -> Result<Vec<LinkInfo>, String> {
        let prepared = setup::prepare_links(&self.links, &self.config)
            .await
            .map_err(|err| format!("cannot list the interfaces: {err}", err = error_chain(&err)))?;
        for line in &prepared.done {
            crate::info!("network", "{line}");
        }
        for problem in &prepared.problems {
            crate::warn!("network", "{problem}");
        }
        let mut dhcp_on = Vec::new();
        for interface in self.config.interfaces.clone() {
            let applied =
                setup::apply_interface(&self.links, &prepared.links, &interface, &self.config)
                    .await;
            match applied {
                Ok(Applied::Dhcp(link)) => {
                    self.policy.explicit_dhcp();
                    if let Some(mtu) = interface.mtu {
                        self.dhcp_mtu.insert(link.name.clone(), mtu);
                    }
                    dhcp_on.push(link);
                }
                Ok(Applied::Static(lease)) => {
                    let policy = &mut self.policy;
                    let events =
                        reported(|emit| policy.static_applied(&lease, interface.source_key, emit));
                    self.act(events).await;
                }
                Ok(Applied::Ipv6 {
                    interface: name,
                    address,
                }) => {
                    let policy = &mut self.policy;
                    let hostname = interface.hostname.clone();
                    let events = reported(|emit| {
                        policy.ipv6_applied(
                            &name,
                            (address.address, address.prefix_len),
                            hostname,
                            emit,
                        )
                    });
                    self.act(events).await;
                }
                Err(err) => {
                    self.policy.explicit_failed();
                    crate::warn!("network", "{}=: {err}; using DHCP", interface.source_key);
                }
            }
        }
        if self.policy.falls_back_to_dhcp() {
            dhcp_on = setup::default_dhcp_links(&prepared, &self.config.selector);
        } else {
            dhcp_on = choose::with_vlans_instead_of_parents(dhcp_on, &prepared.vlan_of_parent);
        }
        let names: Vec<String> = dhcp_on.iter().map(|link| link.name.clone()).collect();
        let policy = &self.policy;
        self.act(reported(|emit| policy.dhcp_planned(&names, emit)))
            .await;
        Ok(dhcp_on)
    }

    /// DHCP on every chosen interface at once; the policy says which leases are applied.
    async fn run_dhcp(&mut self, interfaces: Vec<LinkInfo>) {
        let (events, mut received) = mpsc::channel(32);
        for link in interfaces {
            let Some(mac) = link.mac else {
                crate::warn!("network", "{} has no MAC address: no DHCP on it", link.name);
                continue;
            };
            let name = link.name.clone();
            let client = tokio::spawn(start_client(
                self.links.clone(),
                link,
                mac,
                self.config.carrier_timeout,
                events.clone(),
            ));
            self.policy.client_started(&name);
            self.clients.insert(name, client);
        }
        drop(events);
        while let Some(event) = received.recv().await {
            match event {
                LeaseEvent::Acquired(lease) | LeaseEvent::Renewed(lease) => {
                    let configured_mtu = self.dhcp_mtu.get(&lease.interface).copied();
                    let lease = choose::dhcp_lease_with_overrides(lease, configured_mtu);
                    if !self.policy.should_apply(&lease) {
                        continue;
                    }
                    if let Err(err) = self.links.apply(&lease).await {
                        crate::error!(
                            "network",
                            "{}: cannot apply the lease {}: {err}",
                            lease.interface,
                            lease.address,
                            err = error_chain(&err)
                        );
                        continue;
                    }
                    let policy = &mut self.policy;
                    let events = reported(|emit| policy.lease_applied(&lease, emit));
                    self.act(events).await;
                }
                LeaseEvent::Lost { lease, reason } => {
                    let policy = &mut self.policy;
                    let events = reported(|emit| policy.lease_lost(&lease, reason, emit));
                    self.act(events).await;
                }
                LeaseEvent::State { interface, state } => {
                    crate::info!("network", "{interface}: DHCP {state}")
                }
                LeaseEvent::Error { interface, error } => {
                    crate::warn!(
                        "network",
                        "{interface}: DHCP: {error}",
                        error = error_chain(&error)
                    )
                }
            }
        }
    }

    /// Do what the policy reported, and log it.
    async fn act(&mut self, events: Vec<OnlineEvent>) {
        for event in events {
            match event {
                OnlineEvent::Configured {
                    lease,
                    source: AddressSource::Dhcp,
                } => log_lease(&lease),
                OnlineEvent::Configured {
                    lease,
                    source: AddressSource::Static { key },
                } => crate::info!(
                    "network",
                    "{}: static address {}/{} from {key}=",
                    lease.interface,
                    lease.address,
                    lease.prefix_len,
                ),
                OnlineEvent::Resolver { lease } => self.write_resolv_conf(&lease),
                OnlineEvent::StopClient { interface, winner } => {
                    if let Some(client) = self.clients.remove(&interface) {
                        client.abort();
                    }
                    crate::info!(
                        "network",
                        "{interface}: DHCP stopped, {winner} has the lease (bootkit.net.all=1 keeps all)"
                    );
                }
                OnlineEvent::Online { lease } => {
                    self.go_online(&lease.interface, lease.hostname.as_ref(), &lease.ntp)
                        .await;
                }
                OnlineEvent::Ipv6Configured {
                    interface,
                    address,
                    prefix_len,
                } => crate::info!(
                    "network",
                    "{interface}: IPv6 address {address}/{prefix_len}"
                ),
                OnlineEvent::OnlineIpv6 {
                    interface,
                    hostname,
                } => self.go_online(&interface, hostname.as_ref(), &[]).await,
                OnlineEvent::LeaseLost { lease, reason } => {
                    crate::warn!(
                        "network",
                        "{}: lease {} lost ({reason:?})",
                        lease.interface,
                        lease.address
                    );
                    if let Err(err) = self.links.remove(&lease).await {
                        crate::warn!(
                            "network",
                            "{}: cannot remove {}: {err}",
                            lease.interface,
                            lease.address,
                            err = error_chain(&err)
                        );
                    }
                }
                OnlineEvent::StaysDown => crate::warn!(
                    "network",
                    "no interface to configure: the network stays down"
                ),
            }
        }
    }

    /// DNS from `nameserver=`, or else from the address just applied; with `rd.peerdns=0`
    /// nothing a DHCP server offers (servers, domain, search list) is written.
    fn write_resolv_conf(&self, lease: &Lease) {
        let Some(resolver) =
            choose::resolver_for(lease, &self.config.nameservers, self.config.peer_dns)
        else {
            return;
        };
        if let Err(err) = resolv::write(
            Path::new(RESOLV_CONF),
            &resolver.nameservers,
            resolver.domain.as_deref(),
            &resolver.search,
        ) {
            crate::warn!("network", "{err}", err = error_chain(&err));
        }
    }

    /// The first address is up on `interface`: host name, routes, and everything that
    /// waited for it. `hostname` and `ntp` are what came with the address.
    async fn go_online(&mut self, interface: &str, hostname: Option<&String>, ntp: &[Ipv4Addr]) {
        let config = &self.config;
        if let Some(name) = config.hostname.as_ref().or(hostname) {
            match resolv::set_hostname_if_unset(name) {
                Ok(true) => crate::info!("network", "host name {name}"),
                Ok(false) => {}
                Err(err) => crate::warn!("network", "{err}", err = error_chain(&err)),
            }
        }
        for route in &config.routes {
            add_route(&self.links, route).await;
        }
        if let Some(forwarder) = FORWARDER.get()
            && self.worker_id.is_none()
            && let Ok(Some(link)) = self.links.find_by_name(interface).await
            && let Some(mac) = link.mac
        {
            forwarder.set_hostname(&format_mac(&mac));
        }
        let _ = self.syslog_up.send(true);
        targets::reach(targets::NETWORK_ONLINE);
        let servers: Vec<String> = if config.ntp_servers.is_empty() {
            ntp.iter().map(Ipv4Addr::to_string).collect()
        } else {
            config.ntp_servers.clone()
        };
        tokio::spawn(sync_time(servers));
        attach_nbd(std::mem::take(&mut self.nbd_specs));
    }
}

/// Wait for carrier, then run the DHCP client until the lease loop stops listening.
async fn start_client(
    links: Links,
    link: LinkInfo,
    mac: [u8; 6],
    carrier_timeout: Duration,
    events: mpsc::Sender<LeaseEvent>,
) {
    if let Err(err) = links.set_up(link.index).await {
        crate::warn!(
            "network",
            "cannot bring {} up: {err}",
            link.name,
            err = error_chain(&err)
        );
        return;
    }
    match links.wait_for_carrier(link.index, carrier_timeout).await {
        Ok(true) => {}
        Ok(false) => crate::warn!(
            "network",
            "{}: no carrier after {} s; trying DHCP anyway",
            link.name,
            carrier_timeout.as_secs()
        ),
        Err(err) => crate::warn!(
            "network",
            "{}: cannot watch the carrier: {err}",
            link.name,
            err = error_chain(&err)
        ),
    }
    dhcp::run(dhcp::Config::new(&link.name, mac), events).await;
}

fn log_lease(lease: &Lease) {
    let routers: Vec<String> = lease.routers.iter().map(Ipv4Addr::to_string).collect();
    crate::info!(
        "network",
        "{}: lease {}/{} router {} from {}{}",
        lease.interface,
        lease.address,
        lease.prefix_len,
        if routers.is_empty() {
            "none".to_string()
        } else {
            routers.join(",")
        },
        lease.server.map_or("-".to_string(), |s| s.to_string()),
        lease
            .lease_time
            .map_or(String::new(), |t| format!(" for {} s", t.as_secs())),
    );
}

/// dracut's `rd.route=`.
async fn add_route(links: &Links, route: &StaticRoute) {
    let shown = format!("rd.route={}/{}", route.destination, route.prefix_len);
    let index = match &route.interface {
        Some(name) => match links.find_by_name(name).await {
            Ok(Some(link)) => Some(link.index),
            _ => {
                crate::warn!("network", "{shown}: no interface {name}");
                return;
            }
        },
        None => None,
    };
    if let Err(err) = links
        .add_route(route.destination, route.prefix_len, route.gateway, index)
        .await
    {
        crate::warn!("network", "{shown}: {err}", err = error_chain(&err));
    }
}

/// Set the clock from NTP before services that check certificates start; retried until it
/// works, since a wrong clock makes every TLS connection fail.
async fn sync_time(servers: Vec<String>) {
    if servers.is_empty() {
        crate::info!(
            "time",
            "no NTP server (DHCP option 42 or ntp=): keeping the clock as it is"
        );
        targets::reach(targets::TIME_SYNC);
        return;
    }
    let mut warned = false;
    loop {
        match sntp::sync(&servers, &sntp::SyncOptions::default()).await {
            Ok(sample) => {
                match sntp::step_clock(sample.offset) {
                    Ok(()) => crate::info!(
                        "time",
                        "clock set from {} (offset {})",
                        sample.server,
                        sample.offset
                    ),
                    Err(err) => crate::warn!("time", "{err}", err = error_chain(&err)),
                }
                targets::reach(targets::TIME_SYNC);
                return;
            }
            Err(err) if !warned => {
                warned = true;
                crate::warn!(
                    "time",
                    "{err}; retrying every {} s",
                    TIME_SYNC_RETRY.as_secs()
                );
            }
            Err(_) => {}
        }
        tokio::time::sleep(TIME_SYNC_RETRY).await;
    }
}

/// The attachments live as long as PID 1: each keeps its device connected and reconnects it.
static ATTACHMENTS: Mutex<Vec<nbd::Attachment>> = Mutex::new(Vec::new());

/// Attach the `bootkit.nbd=` devices; `nbd` is reached once every one has been attached.
fn attach_nbd(specs: Vec<nbd::NbdSpec>) {
    if specs.is_empty() {
        targets::reach(targets::NBD);
        return;
    }
    let wanted = specs.len();
    let attached: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    for spec in specs {
        let attached = Arc::clone(&attached);
        let shown = spec.to_string();
        let spawned = nbd::spawn_attachment(spec, move |event| {
            crate::info!("nbd", "{event}");
            if let nbd::NbdEvent::Attached { device, .. } = event {
                let mut done = attached
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if done.insert(device) && done.len() == wanted {
                    targets::reach(targets::NBD);
                }
            }
        });
        match spawned {
            Ok(attachment) => {
                // Its thread reaches `nbd` (with the others): a panic there fails it.
                targets::global().owe_for(attachment.thread_id(), &[targets::NBD]);
                ATTACHMENTS
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(attachment);
            }
            Err(err) => {
                let reason = format!("cannot start the attachment of {shown}: {err}");
                crate::error!("nbd", "{reason}");
                targets::global().fail(targets::NBD, &reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_syslog_host_means_no_forwarding() {
        assert!(forwarder_config(&env(&[("worker_id", "n1")])).is_none());
    }

    #[test]
    fn syslog_keys_choose_transport_port_ca_and_hostname() {
        let udp = forwarder_config(&env(&[("syslog_host", "10.0.0.1")])).unwrap();
        assert_eq!(
            (udp.transport, udp.port, udp.ca_file.is_none()),
            (Transport::Udp, 514, true)
        );
        let tls = forwarder_config(&env(&[
            ("syslog_host", "logs.example"),
            ("syslog_transport", "tls"),
            ("syslog_ca", "/etc/bootkit/ca.pem"),
            ("worker_id", "node-7"),
        ]))
        .unwrap();
        assert_eq!((tls.transport, tls.port), (Transport::Tls, 6514));
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/bootkit/ca.pem"))
        );
        assert_eq!(tls.hostname, "node-7");
        assert_eq!(tls.client_identity, Some(ClientIdentity::node_default()));
        let pin = "ab".repeat(32);
        let pinned = forwarder_config(&env(&[
            ("syslog_host", "10.0.0.1"),
            ("syslog_transport", "tls"),
            ("tinkerbell_ca_sha256", &pin),
        ]))
        .unwrap();
        assert_eq!(
            (pinned.ca_sha256, pinned.ca_file),
            (Some([0xab; 32]), None),
            "without syslog_ca= the gRPC pin verifies the log host"
        );
        let file_wins = forwarder_config(&env(&[
            ("syslog_host", "10.0.0.1"),
            ("syslog_transport", "tls"),
            ("syslog_ca", "/etc/bootkit/ca.pem"),
            ("tinkerbell_ca_sha256", &pin),
        ]))
        .unwrap();
        assert_eq!(file_wins.ca_sha256, None, "syslog_ca= wins over the pin");
        assert_eq!(udp.client_identity, None, "UDP presents no certificate");
        let elsewhere = forwarder_config(&env(&[
            ("syslog_host", "h"),
            ("syslog_transport", "tls"),
            ("tinkerbell_client_cert", "/run/c.pem"),
            ("tinkerbell_client_key", "/run/k.pem"),
        ]))
        .unwrap();
        assert_eq!(
            elsewhere.client_identity,
            Some(ClientIdentity {
                cert: "/run/c.pem".into(),
                key: "/run/k.pem".into(),
            })
        );
        let tcp = forwarder_config(&env(&[
            ("syslog_host", "h"),
            ("syslog_transport", "tcp"),
            ("syslog_port", "1514"),
        ]))
        .unwrap();
        assert_eq!((tcp.transport, tcp.port), (Transport::Tcp, 1514));
    }

    #[test]
    fn bad_syslog_values_fall_back_to_defaults() {
        let config = forwarder_config(&env(&[
            ("syslog_host", "h"),
            ("syslog_transport", "carrier-pigeon"),
            ("syslog_port", "x"),
        ]))
        .unwrap();
        assert_eq!((config.transport, config.port), (Transport::Udp, 514));
    }
}
