//! The network as a built-in service of PID 1: no dhclient, ip or ntpd in the image.
//!
//! After switch_root a thread runs a small tokio runtime that creates the VLANs the command
//! line asks for, applies static addresses, runs DHCP on the chosen interfaces (the first lease
//! wins unless `bootkit.net.all=1`), writes /etc/resolv.conf, and then reaches the built-in
//! targets: `network-online` with the first address, `time-sync` once SNTP has set the clock,
//! `nbd` once the network block devices are attached. Log lines are forwarded to
//! `syslog_host=` from the start of the boot: buffered until the network is up.

use bootkit_common::error_chain;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bootkit_net::config::{
    self, AddressMethod, InterfaceConfig, InterfaceSelector, InterfaceTarget, NetConfig,
    StaticAddress, StaticRoute,
};
use bootkit_net::dhcp::{self, LeaseEvent};
use bootkit_net::lease::Lease;
use bootkit_net::link::{LinkInfo, LinkKind, Links, format_mac};
use bootkit_net::syslog::{Forwarder, ForwarderConfig, ForwarderTask, Severity, Transport};
use bootkit_net::{nbd, resolv, sntp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::log::Level;
use crate::targets;

const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Between failed attempts to set the clock.
const TIME_SYNC_RETRY: Duration = Duration::from_secs(15);

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
/// image's), and `worker_id=` as the HOSTNAME of every line.
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
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(run(config, syslog, worker_id, nbd_specs)),
                Err(err) => crate::error!("network", "cannot start the network runtime: {err}"),
            }
        });
    if let Err(err) = spawned {
        crate::error!("network", "cannot start the network thread: {err}");
    }
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

/// What the online step needs, gathered while the interfaces come up.
struct Online {
    config: NetConfig,
    worker_id: Option<String>,
    syslog_up: watch::Sender<bool>,
    nbd_specs: Vec<nbd::NbdSpec>,
    reached: bool,
}

async fn run(
    config: NetConfig,
    syslog: Option<ForwarderTask>,
    worker_id: Option<String>,
    nbd_specs: Vec<nbd::NbdSpec>,
) {
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
            crate::error!(
                "network",
                "cannot talk to the kernel's network stack: {err}",
                err = error_chain(&err)
            );
            return;
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
    let mut online = Online {
        config,
        worker_id,
        syslog_up,
        nbd_specs,
        reached: false,
    };
    let dhcp_on = match configure_interfaces(&links, &mut online).await {
        Ok(dhcp_on) => dhcp_on,
        Err(err) => {
            crate::error!("network", "{err}");
            return;
        }
    };
    run_dhcp(&links, dhcp_on, &mut online).await;
    // With static addresses only there is no DHCP loop to wait on, but the tasks it started
    // (time sync, log forwarding) live on this runtime: keep it running for the machine's life.
    std::future::pending::<()>().await;
}

/// Create VLANs and apply static addresses; returns the interfaces to run DHCP on.
async fn configure_interfaces(links: &Links, online: &mut Online) -> Result<Vec<LinkInfo>, String> {
    let all = links
        .list()
        .await
        .map_err(|err| format!("cannot list the interfaces: {err}", err = error_chain(&err)))?;
    let mut dhcp_on = Vec::new();
    let mut vlan_replaces: BTreeMap<u32, LinkInfo> = BTreeMap::new();
    for vlan in online.config.vlans.clone() {
        let Some(parent) = resolve(&all, &vlan.parent, &online.config.selector) else {
            crate::warn!("network", "no interface for VLAN {}: skipping it", vlan.id);
            continue;
        };
        match make_vlan(links, &parent, vlan.id, vlan.name.as_deref()).await {
            Ok(created) if vlan.dhcp_instead_of_parent => {
                vlan_replaces.insert(parent.index, created);
            }
            Ok(_) => {}
            Err(err) => crate::warn!("network", "{err}"),
        }
    }
    let mut failed = false;
    for interface in online.config.interfaces.clone() {
        match configure_one(links, &all, &interface, online).await {
            Ok(Some(dhcp)) => dhcp_on.push(dhcp),
            Ok(None) => {}
            Err(err) => {
                failed = true;
                crate::warn!("network", "{}=: {err}; using DHCP", interface.source_key);
            }
        }
    }
    // No configuration at all, or none that worked: DHCP where the selector allows.
    if online.config.interfaces.is_empty() || (failed && dhcp_on.is_empty() && !online.reached) {
        dhcp_on = select(&all, &online.config.selector);
    }
    for link in &mut dhcp_on {
        if let Some(vlan) = vlan_replaces.get(&link.index) {
            *link = vlan.clone();
        }
    }
    if dhcp_on.is_empty() && !online.reached {
        crate::warn!(
            "network",
            "no interface to configure: the network stays down"
        );
    }
    Ok(dhcp_on)
}

async fn make_vlan(
    links: &Links,
    parent: &LinkInfo,
    id: u16,
    name: Option<&str>,
) -> Result<LinkInfo, String> {
    let name = name.map_or_else(|| format!("{}.{id}", parent.name), str::to_string);
    let index = links
        .add_vlan(parent.index, id, &name)
        .await
        .map_err(|err| {
            format!(
                "cannot create VLAN {id} on {}: {err}",
                parent.name,
                err = error_chain(&err)
            )
        })?;
    crate::info!("network", "VLAN {id} on {} is {name}", parent.name);
    links
        .get(index)
        .await
        .map_err(|err| format!("VLAN {name}: {err}", err = error_chain(&err)))
}

/// One `ip=`/`ipam=`: static addresses are applied now; DHCP ones are returned.
async fn configure_one(
    links: &Links,
    all: &[LinkInfo],
    interface: &InterfaceConfig,
    online: &mut Online,
) -> Result<Option<LinkInfo>, String> {
    let Some(mut link) = resolve(all, &interface.target, &online.config.selector) else {
        return Err(format!("no interface matches {:?}", interface.target));
    };
    if let Some(id) = interface.vlan_id {
        link = make_vlan(links, &link, id, None).await?;
    }
    let AddressMethod::Static(address) = &interface.method else {
        return Ok(Some(link));
    };
    let lease = static_lease(&link.name, interface, address);
    links.apply(&lease).await.map_err(|err| {
        format!(
            "cannot configure {}: {err}",
            link.name,
            err = error_chain(&err)
        )
    })?;
    crate::info!(
        "network",
        "{}: static address {}/{} from {}=",
        link.name,
        lease.address,
        lease.prefix_len,
        interface.source_key
    );
    go_online(links, &lease, online).await;
    Ok(None)
}

fn static_lease(name: &str, interface: &InterfaceConfig, address: &StaticAddress) -> Lease {
    let mut lease = Lease::new(name, address.address, address.prefix_len);
    lease.routers = address.gateway.into_iter().collect();
    lease.dns = interface.dns.clone();
    lease.search = interface.search.clone();
    lease.hostname = interface.hostname.clone();
    lease.ntp = interface
        .ntp_servers
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    lease.mtu = interface.mtu;
    lease
}

fn resolve(
    all: &[LinkInfo],
    target: &InterfaceTarget,
    selector: &InterfaceSelector,
) -> Option<LinkInfo> {
    match target {
        InterfaceTarget::Any => select(all, selector).into_iter().next(),
        InterfaceTarget::Name(name) => all.iter().find(|l| &l.name == name).cloned(),
        InterfaceTarget::Mac(mac) => all.iter().find(|l| l.mac == Some(mac.0)).cloned(),
    }
}

/// The interfaces DHCP runs on by default: every physical Ethernet one, or the one named.
fn select(all: &[LinkInfo], selector: &InterfaceSelector) -> Vec<LinkInfo> {
    all.iter()
        .filter(|link| match selector {
            InterfaceSelector::AllPhysical => link.kind == LinkKind::PhysicalEthernet,
            InterfaceSelector::Name(name) => &link.name == name,
            InterfaceSelector::Mac(mac) => link.mac == Some(mac.0),
        })
        .cloned()
        .collect()
}

/// DHCP on every chosen interface at once; the first lease wins unless all are kept.
async fn run_dhcp(links: &Links, interfaces: Vec<LinkInfo>, online: &mut Online) {
    let (events, mut received) = mpsc::channel(32);
    let mut clients: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    for link in interfaces {
        let Some(mac) = link.mac else {
            crate::warn!("network", "{} has no MAC address: no DHCP on it", link.name);
            continue;
        };
        let name = link.name.clone();
        let client = tokio::spawn(start_client(
            links.clone(),
            link,
            mac,
            online.config.carrier_timeout,
            events.clone(),
        ));
        clients.insert(name, client);
    }
    drop(events);
    let mut applied: Vec<String> = Vec::new();
    while let Some(event) = received.recv().await {
        match event {
            LeaseEvent::Acquired(lease) | LeaseEvent::Renewed(lease) => {
                if !online.config.keep_all_leases
                    && !applied.is_empty()
                    && !applied.contains(&lease.interface)
                {
                    continue;
                }
                if let Err(err) = links.apply(&lease).await {
                    crate::error!(
                        "network",
                        "{}: cannot apply the lease {}: {err}",
                        lease.interface,
                        lease.address,
                        err = error_chain(&err)
                    );
                    continue;
                }
                if !applied.contains(&lease.interface) {
                    log_lease(&lease);
                    applied.push(lease.interface.clone());
                }
                if !online.config.keep_all_leases {
                    stop_other_clients(&mut clients, &lease.interface);
                }
                go_online(links, &lease, online).await;
            }
            LeaseEvent::Lost { lease, reason } => {
                crate::warn!(
                    "network",
                    "{}: lease {} lost ({reason:?})",
                    lease.interface,
                    lease.address
                );
                if let Err(err) = links.remove(&lease).await {
                    crate::warn!(
                        "network",
                        "{}: cannot remove {}: {err}",
                        lease.interface,
                        lease.address,
                        err = error_chain(&err)
                    );
                }
                applied.retain(|name| name != &lease.interface);
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

fn stop_other_clients(clients: &mut BTreeMap<String, JoinHandle<()>>, winner: &str) {
    let losers: Vec<String> = clients
        .keys()
        .filter(|name| *name != winner)
        .cloned()
        .collect();
    for name in losers {
        if let Some(client) = clients.remove(&name) {
            client.abort();
            crate::info!(
                "network",
                "{name}: DHCP stopped, {winner} has the lease (bootkit.net.all=1 keeps all)"
            );
        }
    }
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

/// The first address is up: DNS, host name, routes, and everything that waited for it.
async fn go_online(links: &Links, lease: &Lease, online: &mut Online) {
    let config = &online.config;
    let dns: Vec<Ipv4Addr> = if config.nameservers.is_empty() {
        lease.dns.clone()
    } else {
        config.nameservers.clone()
    };
    if let Err(err) = resolv::write(
        Path::new(RESOLV_CONF),
        &dns,
        lease.domain.as_deref(),
        &lease.search,
    ) {
        crate::warn!("network", "{err}", err = error_chain(&err));
    }
    if online.reached {
        return;
    }
    online.reached = true;
    if let Some(name) = config.hostname.as_ref().or(lease.hostname.as_ref()) {
        match resolv::set_hostname_if_unset(name) {
            Ok(true) => crate::info!("network", "host name {name}"),
            Ok(false) => {}
            Err(err) => crate::warn!("network", "{err}", err = error_chain(&err)),
        }
    }
    for route in &config.routes {
        add_route(links, route).await;
    }
    if let Some(forwarder) = FORWARDER.get()
        && online.worker_id.is_none()
        && let Ok(Some(link)) = links.find_by_name(&lease.interface).await
        && let Some(mac) = link.mac
    {
        forwarder.set_hostname(&format_mac(&mac));
    }
    let _ = online.syslog_up.send(true);
    targets::reach(targets::NETWORK_ONLINE);
    let servers: Vec<String> = if config.ntp_servers.is_empty() {
        lease.ntp.iter().map(Ipv4Addr::to_string).collect()
    } else {
        config.ntp_servers.clone()
    };
    tokio::spawn(sync_time(servers));
    attach_nbd(std::mem::take(&mut online.nbd_specs));
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
            Ok(attachment) => ATTACHMENTS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(attachment),
            Err(err) => crate::error!("nbd", "cannot start the attachment of {shown}: {err}"),
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
