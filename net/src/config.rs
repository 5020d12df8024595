//! The kernel command line's network configuration, as a typed [`NetConfig`].
//!
//! The init splits /proc/cmdline into words and hands every `key=value` that is not its own,
//! in order, to [`parse`]. The keys understood here come from three places:
//!
//! - dracut (`man 7 dracut.cmdline`, section "Network"): `ip=` in its three forms (IPv4,
//!   bracketed IPv6, `auto6`), `nameserver=`, `rd.route=`, `vlan=`, `ifname=`, `bond=`,
//!   `bootdev=`, `BOOTIF=` with `rd.bootif=`, `rd.peerdns=`, `rd.net.timeout.carrier=`; plus
//!   `hostname=`.
//! - Tinkerbell's HookOS and smee: `ipam=` (static addressing), `vlan_id=` with `hw_addr=`,
//!   `interface=`, `worker_id=`, and the proxy variables.
//! - the bootkit itself: `bootkit.net.all=`, `bootkit.net.carrier_timeout=`, `ntp=` and
//!   `ntp_servers=`.
//!
//! Parsing never fails and never panics. A malformed value is ignored as a whole (a half
//! applied static address is worse than none) and becomes a [`ConfigWarning`] naming the key
//! and what was expected; the network then comes up as if the key were absent, which in the
//! end means DHCP. Keys that are not about the network are skipped silently: they are the
//! services' business.

mod dracut;
mod hookos;
#[cfg(test)]
mod tests;
pub(crate) mod values;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub use crate::link::BondOption;
pub use values::MacAddr;

/// How long to wait for carrier on an interface before giving up on it, unless
/// `bootkit.net.carrier_timeout=` says otherwise (dracut's `rd.net.timeout.carrier` default).
pub const DEFAULT_CARRIER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `auto6` waits for a global address unless `rd.net.timeout.ipv6auto=` says
/// otherwise (dracut's default).
pub const DEFAULT_IPV6_AUTO_TIMEOUT: Duration = Duration::from_secs(40);

/// How long a static IPv6 address may take to pass duplicate address detection unless
/// `rd.net.timeout.ipv6dad=` says otherwise (dracut's default).
pub const DEFAULT_IPV6_DAD_TIMEOUT: Duration = Duration::from_secs(50);

/// Longest carrier timeout accepted: a day. Anything longer is a typo, and an unbounded
/// value would overflow `Instant` arithmetic in the code that waits.
pub const MAX_CARRIER_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The proxy variables recorded for the services' environment, both spellings, because
/// tools disagree on which one they read (curl reads only lower-case `http_proxy`).
pub const PROXY_KEYS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Everything the command line says about the network. The default (an empty command line)
/// is DHCP on every physical Ethernet interface, first lease wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Explicit per-interface configurations from `ip=` and `ipam=`, in command-line order.
    /// Empty means "DHCP on the interfaces chosen by [`NetConfig::selector`]".
    pub interfaces: Vec<InterfaceConfig>,
    /// VLAN interfaces to create, from `vlan_id=` (with `hw_addr=`) and dracut's `vlan=`.
    /// VLANs asked for inside `ipam=` are in [`InterfaceConfig::vlan_id`] instead.
    pub vlans: Vec<VlanConfig>,
    /// Interfaces to rename, from dracut's `ifname=<name>:<mac>`, in command-line order.
    /// Renames happen before anything else looks interfaces up by name.
    pub renames: Vec<Rename>,
    /// Bonds to create, from dracut's `bond=`, before VLANs (a VLAN may sit on a bond).
    pub bonds: Vec<BondConfig>,
    /// Static routes from `rd.route=`, added once their interface is configured.
    pub routes: Vec<StaticRoute>,
    /// `nameserver=` (repeatable), in order. When any is given they replace the DNS servers
    /// DHCP offers, as in dracut (its ifup writes DHCP's only when nameserver= is absent).
    pub nameservers: Vec<Ipv4Addr>,
    /// dracut's `rd.peerdns=` (default on): whether the DNS servers, domain and search list
    /// a DHCP server offers are written to resolv.conf. Off, only `nameserver=` and the
    /// `ip=` line's own `<dns1>`/`<dns2>` are.
    pub peer_dns: bool,
    /// `hostname=`. Takes precedence over the host name field of `ip=`/`ipam=` and over DHCP;
    /// in any case the image's own host name wins if it has one.
    pub hostname: Option<String>,
    /// Which interfaces DHCP runs on when nothing more specific says so.
    pub selector: InterfaceSelector,
    /// `bootkit.net.all=1`: keep every lease obtained, not only the first.
    pub keep_all_leases: bool,
    /// How long to wait for carrier per interface: `bootkit.net.carrier_timeout=` or dracut's
    /// `rd.net.timeout.carrier=` (whole seconds), default [`DEFAULT_CARRIER_TIMEOUT`]. Zero
    /// means only interfaces that already have carrier are used.
    pub carrier_timeout: Duration,
    /// dracut's `rd.net.timeout.ipv6auto=`: how long `auto6` waits for a global address,
    /// default [`DEFAULT_IPV6_AUTO_TIMEOUT`].
    pub ipv6_auto_timeout: Duration,
    /// dracut's `rd.net.timeout.ipv6dad=`: how long a static IPv6 address may take to pass
    /// duplicate address detection, default [`DEFAULT_IPV6_DAD_TIMEOUT`].
    pub ipv6_dad_timeout: Duration,
    /// `ntp=` and `ntp_servers=` (comma lists, repeatable): IPv4 addresses or host names, in
    /// order. When any is given they replace the servers of DHCP option 42, like
    /// `nameservers`: what the operator wrote wins over what the network offers.
    pub ntp_servers: Vec<String>,
    /// The proxy variables found ([`PROXY_KEYS`]), with the key as written, in order. Only
    /// recorded: the pairs already reach the services' environment through the init.
    pub proxy_env: Vec<(String, String)>,
    /// What could not be used, one entry per ignored value.
    pub warnings: Vec<ConfigWarning>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            interfaces: Vec::new(),
            vlans: Vec::new(),
            renames: Vec::new(),
            bonds: Vec::new(),
            routes: Vec::new(),
            nameservers: Vec::new(),
            peer_dns: true,
            hostname: None,
            selector: InterfaceSelector::AllPhysical,
            keep_all_leases: false,
            carrier_timeout: DEFAULT_CARRIER_TIMEOUT,
            ipv6_auto_timeout: DEFAULT_IPV6_AUTO_TIMEOUT,
            ipv6_dad_timeout: DEFAULT_IPV6_DAD_TIMEOUT,
            ntp_servers: Vec::new(),
            proxy_env: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// The interfaces that DHCP runs on by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceSelector {
    /// Every physical Ethernet interface (not lo, virtual or wireless).
    AllPhysical,
    /// Only this one, from `interface=` or dracut's `bootdev=<name>`.
    Name(String),
    /// Only the one with this MAC, from `hw_addr=`, pxelinux's `BOOTIF=`, `bootdev=<mac>`,
    /// or else from `worker_id=` when the worker id is a MAC (smee sets it to the MAC unless
    /// the machine has an agent id).
    Mac(MacAddr),
}

/// The interface a configuration applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceTarget {
    /// None named (empty interface field or `ip=dhcp`): DHCP runs on every interface the
    /// [`InterfaceSelector`] allows; a static address goes on the first of them with carrier.
    Any,
    /// The interface with this name.
    Name(String),
    /// The interface with this MAC (`ipam=`, `hw_addr=`).
    Mac(MacAddr),
}

/// One interface's configuration from `ip=` or `ipam=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The key this came from (`"ip"` or `"ipam"`), for log lines.
    pub source_key: &'static str,
    /// The interface it applies to: by name, by MAC, or the first one with a link.
    pub target: InterfaceTarget,
    /// `ipam=`'s VLAN: the configuration goes on VLAN `vlan_id` of `target`, which is created
    /// as `<target>.<vlan_id>` (as HookOS does), not on `target` itself.
    pub vlan_id: Option<u16>,
    /// Static address, DHCP, or none.
    pub method: AddressMethod,
    /// Host name to set if the image has none and `hostname=` is absent.
    pub hostname: Option<String>,
    /// MTU to set, in bytes; None: leave the kernel's.
    pub mtu: Option<u16>,
    /// dracut's `<macaddr>`: a MAC to SET on the interface (not to find it by).
    pub set_mac: Option<MacAddr>,
    /// DNS servers for this interface: dracut's `<dns1>`/`<dns2>`, `ipam=`'s list.
    pub dns: Vec<Ipv4Addr>,
    /// DNS search domains (`ipam=`).
    pub search: Vec<String>,
    /// NTP servers (`ipam=`): IPv4 addresses or names.
    pub ntp_servers: Vec<String>,
}

impl InterfaceConfig {
    fn new(source_key: &'static str, target: InterfaceTarget, method: AddressMethod) -> Self {
        InterfaceConfig {
            source_key,
            target,
            vlan_id: None,
            method,
            hostname: None,
            mtu: None,
            set_mac: None,
            dns: Vec::new(),
            search: Vec::new(),
            ntp_servers: Vec::new(),
        }
    }
}

/// How an interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressMethod {
    /// DHCPv4. Addresses written in the same `ip=` (client, peer, gateway, netmask) are not
    /// used, as in dracut.
    Dhcp,
    /// A fixed address: `ip=...:none|off` or `ipam=`.
    Static(StaticAddress),
    /// A fixed IPv6 address: `ip=[<v6>]::[<v6 gateway>]:<prefix>:<hostname>:<iface>:none`.
    Static6(StaticAddress6),
    /// dracut's `auto6`: IPv6 stateless autoconfiguration (SLAAC) from router
    /// advertisements; the interface counts as configured once it has a global address.
    Auto6,
}

/// A statically assigned IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticAddress6 {
    /// The address.
    pub address: Ipv6Addr,
    /// The prefix length, 0-128 (dracut's `<netmask>` field for IPv6).
    pub prefix_len: u8,
    /// Default gateway, if any.
    pub gateway: Option<Ipv6Addr>,
}

/// dracut's `ifname=<name>:<mac>`: the interface with this MAC gets this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The new name.
    pub name: String,
    /// The MAC (current or permanent) of the interface to rename.
    pub mac: MacAddr,
}

/// dracut's `bond=<bondname>[:<bondslaves>[:<options>[:<mtu>]]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondConfig {
    /// The bond's name (`bond0` when `bond=` has no value).
    pub name: String,
    /// The interfaces to enslave, in order (`eth0,eth1` by default, as in dracut).
    pub slaves: Vec<String>,
    /// The bonding options (`mode=active-backup,miimon=100`), in order.
    pub options: Vec<BondOption>,
    /// MTU to set on the bond once its slaves are enslaved.
    pub mtu: Option<u16>,
}

/// A statically assigned IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticAddress {
    /// The address.
    pub address: Ipv4Addr,
    /// Netmask as a prefix length (255.255.255.0 = 24).
    pub prefix_len: u8,
    /// Default gateway, if any (an empty field or 0.0.0.0 means none).
    pub gateway: Option<Ipv4Addr>,
    /// dracut's `<peer>`: the other end of a point-to-point link (`ip addr add <client>
    /// peer <peer>`).
    pub peer: Option<Ipv4Addr>,
    /// The peer's own prefix length when written `<peer>/<len>`; a bare peer is a /32, as
    /// iproute2 makes it.
    pub peer_prefix_len: Option<u8>,
}

/// A VLAN interface to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanConfig {
    /// The physical interface the VLAN is on.
    pub parent: InterfaceTarget,
    /// 802.1Q VLAN id, 1-4094.
    pub id: u16,
    /// The name to give it (dracut's `vlan=` names it); `None` means `<parent>.<id>`.
    pub name: Option<String>,
    /// Tinkerbell's `vlan_id=`: DHCP runs on the VLAN interface instead of on its parent
    /// (HookOS then only lets dhcpcd on VLAN interfaces). dracut's `vlan=` leaves that to
    /// `ip=` naming the VLAN, so this is false for it.
    pub dhcp_instead_of_parent: bool,
}

/// A static route from dracut's `rd.route=<net>/<netmask>:[<gateway>][:<interface>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    /// The destination network's address.
    pub destination: Ipv4Addr,
    /// The destination's prefix length (255.255.0.0 = 16).
    pub prefix_len: u8,
    /// `None`: the destination is on-link on `interface`.
    pub gateway: Option<Ipv4Addr>,
    /// `None`: whichever interface reaches the gateway.
    pub interface: Option<String>,
}

/// A command-line value that was ignored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The command-line key (`ip`, `vlan`, ...).
    pub key: String,
    /// The value as written.
    pub value: String,
    /// What is wrong and what was expected, e.g. `VLAN id "x" is not a number: expected a
    /// VLAN id from 1 to 4094`.
    pub problem: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug-quote the value: it may hold control characters that would garble a console.
        write!(
            f,
            "ignoring {}={:?}: {}",
            self.key, self.value, self.problem
        )
    }
}

/// Parse the network keys among the command line's `key=value` pairs (in command-line order).
/// Never fails: see the module documentation.
pub fn parse(pairs: &[(String, String)]) -> NetConfig {
    let mut parser = Parser::default();
    for (key, value) in pairs {
        parser.apply(key, value);
    }
    parser.finish()
}

/// Values that only mean something together (`vlan_id=` with `hw_addr=`, the three interface
/// selectors) are collected here and combined once the whole command line is read, so that
/// their order on the command line does not matter.
#[derive(Default)]
struct Parser {
    config: NetConfig,
    interface_name: Option<String>,
    hw_addr: Option<MacAddr>,
    worker_mac: Option<MacAddr>,
    /// pxelinux's `BOOTIF=01-<mac>`: the NIC the firmware booted from.
    boot_nic: Option<MacAddr>,
    /// dracut's `rd.bootif=` (default on): whether `BOOTIF=` is used.
    use_boot_nic: Option<bool>,
    /// dracut's `bootdev=`: the primary interface, by name or MAC.
    boot_dev: Option<InterfaceSelector>,
    tinkerbell_vlan_id: Option<u16>,
}

/// dracut network keys (dracut.cmdline(7)) this stack does not apply yet: each is named in a
/// warning rather than passed over in silence, so nobody is left wondering why a bond or a
/// rename did not happen.
const UNSUPPORTED_DRACUT_KEYS: &[&str] = &["team", "bridge"];

impl Parser {
    fn apply(&mut self, key: &str, value: &str) {
        let outcome = match key {
            "ip" => dracut::ip(value).map(|interface| self.config.interfaces.push(interface)),
            "ipam" => hookos::ipam(value).map(|interface| self.config.interfaces.push(interface)),
            "nameserver" => self.nameserver(value),
            "rd.route" => dracut::route(value).map(|route| self.config.routes.push(route)),
            "vlan" => dracut::vlan(value).map(|vlan| self.config.vlans.push(vlan)),
            "hostname" => values::hostname(value).map(|name| self.config.hostname = Some(name)),
            // Later occurrences of these single-valued keys replace earlier ones, as the
            // kernel and dracut treat repeated settings.
            // An empty `vlan_id=` is how smee's template writes "no VLAN".
            "vlan_id" if value.is_empty() => {
                self.tinkerbell_vlan_id = None;
                Ok(())
            }
            "vlan_id" => values::vlan_id(value).map(|id| self.tinkerbell_vlan_id = Some(id)),
            "interface" => {
                values::interface_name(value).map(|name| self.interface_name = Some(name))
            }
            "hw_addr" => values::mac(value).map(|mac| self.hw_addr = Some(mac)),
            "BOOTIF" => boot_nic(value).map(|mac| self.boot_nic = Some(mac)),
            "rd.bootif" => values::boolean(value).map(|on| self.use_boot_nic = Some(on)),
            "bootdev" => boot_dev(value).map(|dev| self.boot_dev = Some(dev)),
            "rd.peerdns" => values::boolean(value).map(|on| self.config.peer_dns = on),
            "ifname" => dracut::ifname(value).map(|rename| self.config.renames.push(rename)),
            "bond" => dracut::bond(value).map(|bond| self.config.bonds.push(bond)),
            _ if UNSUPPORTED_DRACUT_KEYS.contains(&key) => Err(format!(
                "dracut's {key}= is not supported by the bootkit's network stack and is \
                 ignored; expected ip=, vlan=, bond= or ifname= instead"
            )),
            // A worker id that is not a MAC is an agent id: valid, just not about interfaces.
            "worker_id" => {
                self.worker_mac = values::mac(value).ok();
                Ok(())
            }
            "bootkit.net.all" => {
                values::boolean(value).map(|all| self.config.keep_all_leases = all)
            }
            "bootkit.net.carrier_timeout" | "rd.net.timeout.carrier" => {
                carrier_timeout(value).map(|timeout| self.config.carrier_timeout = timeout)
            }
            "rd.net.timeout.ipv6auto" => {
                carrier_timeout(value).map(|timeout| self.config.ipv6_auto_timeout = timeout)
            }
            "rd.net.timeout.ipv6dad" => {
                carrier_timeout(value).map(|timeout| self.config.ipv6_dad_timeout = timeout)
            }
            "ntp" | "ntp_servers" => values::comma_list(value, values::ntp_server)
                .map(|servers| self.config.ntp_servers.extend(servers)),
            _ if PROXY_KEYS.contains(&key) => {
                self.config
                    .proxy_env
                    .push((key.to_string(), value.to_string()));
                Ok(())
            }
            // dracut's other rd.net.* tuning keys (rd.net.timeout.dhcp, rd.net.dhcp.retry...):
            // named, so that nobody wonders why they changed nothing.
            _ if key.starts_with("rd.net.") => Err(format!(
                "dracut's {key}= is not supported by the bootkit's network stack and is \
                 ignored; expected rd.net.timeout.carrier=, rd.net.timeout.ipv6auto= or \
                 rd.net.timeout.ipv6dad= (the tuning keys supported)"
            )),
            // rd.neednet and the rest: the network always comes up here, nothing to record.
            _ => Ok(()),
        };
        if let Err(problem) = outcome {
            self.config.warnings.push(ConfigWarning {
                key: key.to_string(),
                value: value.to_string(),
                problem,
            });
        }
    }

    fn nameserver(&mut self, value: &str) -> Result<(), String> {
        if value.contains(',') {
            return Err(
                "expected one IPv4 address per nameserver= (repeat the key for more)".into(),
            );
        }
        let server = values::ipv4("nameserver", value)?;
        self.config.nameservers.push(server);
        Ok(())
    }

    fn finish(mut self) -> NetConfig {
        // An operator's explicit interface= beats the MACs that smee writes for every machine;
        // the NIC the firmware booted from (BOOTIF=, unless rd.bootif=0) beats dracut's
        // bootdev= (dracut's parse-ip-opts.sh sets BOOTDEV from BOOTIF when both are given),
        // which beats the worker id's MAC.
        let boot_nic = self.boot_nic.filter(|_| self.use_boot_nic.unwrap_or(true));
        self.config.selector = match (self.interface_name, self.hw_addr.or(boot_nic)) {
            (Some(name), _) => InterfaceSelector::Name(name),
            (None, Some(mac)) => InterfaceSelector::Mac(mac),
            (None, None) => match (self.boot_dev, self.worker_mac) {
                (Some(dev), _) => dev,
                (None, Some(mac)) => InterfaceSelector::Mac(mac),
                (None, None) => InterfaceSelector::AllPhysical,
            },
        };
        if let Some(id) = self.tinkerbell_vlan_id {
            // Tinkerbell puts the VLAN on the interface with the hw_addr= MAC; without one
            // HookOS assumes eth0, we take whatever the selector chose (all: the first with
            // carrier) rather than guess a name.
            let parent = match (self.hw_addr, &self.config.selector) {
                (Some(mac), _) => InterfaceTarget::Mac(mac),
                (None, InterfaceSelector::Name(name)) => InterfaceTarget::Name(name.clone()),
                (None, InterfaceSelector::Mac(mac)) => InterfaceTarget::Mac(*mac),
                (None, InterfaceSelector::AllPhysical) => InterfaceTarget::Any,
            };
            self.config.vlans.push(VlanConfig {
                parent,
                id,
                name: None,
                dhcp_instead_of_parent: true,
            });
        }
        self.config
    }
}

/// A timeout in whole seconds (`rd.net.timeout.*=`, `bootkit.net.carrier_timeout=`).
fn carrier_timeout(value: &str) -> Result<Duration, String> {
    let expected = format!(
        "expected a whole number of seconds from 0 to {}",
        MAX_CARRIER_TIMEOUT.as_secs()
    );
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{value:?} is not a number of seconds: {expected}"));
    }
    match value.parse::<u64>() {
        Ok(seconds) if seconds <= MAX_CARRIER_TIMEOUT.as_secs() => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("{value:?} seconds is too long: {expected}")),
    }
}

/// dracut's `bootdev=<interface>`: a name, or a MAC (dracut's ifup compares it with both).
fn boot_dev(value: &str) -> Result<InterfaceSelector, String> {
    if let Ok(mac) = values::mac(value) {
        return Ok(InterfaceSelector::Mac(mac));
    }
    values::interface_name(value).map(InterfaceSelector::Name)
}

/// pxelinux's `BOOTIF=01-52-54-00-12-34-56`: the ARP hardware type (01, Ethernet) and the
/// MAC in dashes.
fn boot_nic(value: &str) -> Result<MacAddr, String> {
    let mac = value.strip_prefix("01-").ok_or_else(|| {
        "expected 01-<mac in dashes> (pxelinux's form, e.g. 01-52-54-00-12-34-56)".to_string()
    })?;
    values::mac(mac)
}
