//! dracut's network keys, as `man 7 dracut.cmdline` ("Network") documents them and dracut's
//! `ip_to_var` (modules.d/40network/net-lib.sh) splits them:
//!
//! - `ip={dhcp|on|any|single-dhcp|auto6}`: DHCP (or SLAAC) on all interfaces.
//! - `ip=<interface>:{dhcp|on|any|auto6}[:[<mtu>][:<macaddr>]]`: on one interface.
//! - `ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<client_hostname>:<interface>:
//!   {none|off|dhcp|on|any}[:[<mtu>][:<macaddr>]]`, or with `[:[<dns1>][:<dns2>]]` as tail.
//!   IPv6 addresses are written in brackets (`[2001:db8::10]`), the netmask is then a prefix
//!   length.
//! - `rd.route=<net>/<netmask>:<gateway>[:<interface>]`.
//! - `vlan=<vlanname>:<phydevice>`.
//! - `ifname=<interface>:<MAC>`.
//! - `bond=<bondname>[:<bondslaves>[:<options>[:<mtu>]]]`.
//!
//! DHCPv6 (`dhcp6`, `either6`) and `link6` are reported rather than silently skipped.

use std::net::Ipv6Addr;

use super::values::{self, MacAddr};
use super::{
    AddressMethod, BondConfig, InterfaceConfig, InterfaceTarget, Rename, StaticAddress,
    StaticAddress6, StaticRoute, VlanConfig,
};

const IPV6_UNSUPPORTED: &str =
    "IPv6 is not supported here (the bootkit takes IPv6 in ip= only): expected an IPv4 value";
const DHCP6_UNSUPPORTED: &str = "DHCPv6 is not supported by the bootkit's network stack: \
     expected auto6 (SLAAC from router advertisements) or a static [<IPv6>] address";
const STATIC_FORM: &str = "<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<interface>:{none|off|dhcp}[:<mtu>][:<macaddr>]";

/// What the method field of `ip=` asks for.
enum Method {
    Dhcp,
    Static,
    Auto6,
}

/// The method words dracut knows. `None` for a word that is not one, so that the caller can
/// tell the short form `<interface>:dhcp` from the long one (whose second field is a peer).
fn method(word: &str) -> Option<Result<Method, String>> {
    match word {
        // single-dhcp (DHCP on all interfaces at once, first answer wins) is what the bootkit
        // does anyway.
        "dhcp" | "on" | "any" | "single-dhcp" => Some(Ok(Method::Dhcp)),
        "none" | "off" => Some(Ok(Method::Static)),
        "auto6" => Some(Ok(Method::Auto6)),
        "dhcp6" | "either6" => Some(Err(format!("{word}: {DHCP6_UNSUPPORTED}"))),
        "link6" => Some(Err(
            "link6 (IPv6 link-local only) is not supported: expected auto6 or a static \
             [<IPv6>] address"
                .to_string(),
        )),
        "ibft" => Some(Err(
            "ibft (addresses from the iSCSI boot firmware table) is not supported: expected \
             none, off, dhcp, on, any or auto6"
                .to_string(),
        )),
        _ => None,
    }
}

/// Splits at `:` as dracut's `ip_to_var` does: a bracketed IPv6 address followed by `:`
/// (or ending the value) is one field, without its brackets.
fn split_fields(value: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = value;
    loop {
        if let Some(inner) = rest.strip_prefix('[')
            && let Some(end) = inner.find(']')
            && inner[..end].contains(':')
            && (inner[end + 1..].is_empty() || inner[end + 1..].starts_with(':'))
        {
            fields.push(&inner[..end]);
            match inner[end + 1..].strip_prefix(':') {
                Some(after) => rest = after,
                None => return fields,
            }
            continue;
        }
        match rest.split_once(':') {
            Some((field, after)) => {
                fields.push(field);
                rest = after;
            }
            None => {
                fields.push(rest);
                return fields;
            }
        }
    }
}

pub fn ip(value: &str) -> Result<InterfaceConfig, String> {
    let fields = split_fields(value);
    match fields.as_slice() {
        [word] => ip_single_word(word),
        [interface, second, tail @ ..] if method(second).is_some() => {
            ip_interface_method(interface, second, tail)
        }
        _ => ip_explicit(&fields),
    }
}

/// `ip=dhcp` and its synonyms.
fn ip_single_word(word: &str) -> Result<InterfaceConfig, String> {
    match method(word) {
        Some(Ok(Method::Dhcp)) => Ok(InterfaceConfig::new(
            "ip",
            InterfaceTarget::Any,
            AddressMethod::Dhcp,
        )),
        Some(Ok(Method::Auto6)) => Ok(InterfaceConfig::new(
            "ip",
            InterfaceTarget::Any,
            AddressMethod::Auto6,
        )),
        Some(Ok(Method::Static)) => Err(format!(
            "{word} without a static address means nothing (as in dracut): expected {STATIC_FORM}"
        )),
        Some(Err(problem)) => Err(problem),
        None => Err(format!(
            "expected dhcp, on, any, <interface>:dhcp or {STATIC_FORM}"
        )),
    }
}

/// `ip=<interface>:{dhcp|on|any}[:[<mtu>][:<macaddr>]]`.
fn ip_interface_method(
    interface: &str,
    method_word: &str,
    tail: &[&str],
) -> Result<InterfaceConfig, String> {
    let method = match method(method_word) {
        Some(Ok(Method::Dhcp)) => AddressMethod::Dhcp,
        Some(Ok(Method::Auto6)) => AddressMethod::Auto6,
        Some(Ok(Method::Static)) => {
            return Err(format!(
                "{method_word} needs a static address: expected {STATIC_FORM}"
            ));
        }
        Some(Err(problem)) => return Err(problem),
        None => return Err(format!("expected <interface>:dhcp or {STATIC_FORM}")),
    };
    let target = target(interface)?;
    let mut config = InterfaceConfig::new("ip", target, method);
    let (mtu, mac_fields) = match tail {
        [] => ("", &[][..]),
        [mtu, mac_fields @ ..] => (*mtu, mac_fields),
    };
    config.mtu = values::optional_mtu(mtu)?;
    config.set_mac = mac_tail(mac_fields, "<interface>:dhcp[:<mtu>][:<macaddr>]")?;
    Ok(config)
}

/// `ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<interface>:<method>[...]`.
/// Trailing fields may be left out, as the kernel's own `ip=` allows; a missing method means
/// static when a client address is given, else DHCP.
fn ip_explicit(fields: &[&str]) -> Result<InterfaceConfig, String> {
    let field = |index: usize| fields.get(index).copied().unwrap_or("");
    let (client, peer, gateway, netmask) = (field(0), field(1), field(2), field(3));
    let (hostname, interface, method_word) = (field(4), field(5), field(6));
    let tail = fields.get(7..).unwrap_or(&[]);

    let method = match method(method_word) {
        Some(result) => result?,
        None if method_word.is_empty() && client.is_empty() => Method::Dhcp,
        None if method_word.is_empty() => Method::Static,
        None => {
            return Err(format!(
                "method {method_word:?} is unknown: expected none, off, dhcp, on or any in {STATIC_FORM}"
            ));
        }
    };

    if client.contains(':') {
        return ip_explicit6(fields, method);
    }
    // Every field is checked even when DHCP will not use it: a typo there means the line does
    // not say what its author thinks, and the warning is the only way they will find out.
    let client = client_address(client)?;
    let (peer, peer_prefix_len) = peer_address(peer)?;
    let peer = non_zero(peer);
    let gateway = non_zero(values::optional_ipv4("gateway", gateway)?);
    let netmask = if netmask.is_empty() {
        None
    } else {
        Some(values::prefix_len("netmask", netmask)?)
    };
    let hostname = values::optional_hostname(hostname)?;
    let target = target(interface)?;

    let method = match method {
        Method::Dhcp => AddressMethod::Dhcp,
        Method::Auto6 => AddressMethod::Auto6,
        Method::Static => {
            let Some((address, cidr_prefix)) = client else {
                return Err(format!(
                    "none/off needs a client IP (as in dracut): expected {STATIC_FORM}"
                ));
            };
            let prefix_len = match (cidr_prefix, netmask) {
                (Some(from_address), Some(from_mask)) if from_address != from_mask => {
                    return Err(format!(
                        "the client IP's /{from_address} and the netmask's /{from_mask} disagree: \
                         expected one prefix"
                    ));
                }
                (_, Some(prefix)) | (Some(prefix), None) => prefix,
                (None, None) => {
                    return Err(format!(
                        "a static address needs a netmask (dracut does not guess one): expected \
                         {STATIC_FORM} with e.g. 255.255.255.0 or 24"
                    ));
                }
            };
            AddressMethod::Static(StaticAddress {
                address,
                prefix_len,
                gateway,
                peer,
                peer_prefix_len: peer.and(peer_prefix_len),
            })
        }
    };

    let mut config = InterfaceConfig::new("ip", target, method);
    config.hostname = hostname;
    apply_explicit_tail(&mut config, tail)?;
    Ok(config)
}

/// The long form with a bracketed IPv6 client:
/// `ip=[<v6>]::[<v6 gateway>]:<prefix length>:<hostname>:<interface>:none`.
fn ip_explicit6(fields: &[&str], method: Method) -> Result<InterfaceConfig, String> {
    const FORM6: &str = "[<IPv6>]::[<IPv6 gateway>]:<prefix length>:<hostname>:<interface>:none, \
         e.g. [2001:db8::10]::[2001:db8::1]:64:node1:eth0:none";
    let field = |index: usize| fields.get(index).copied().unwrap_or("");
    let (client, peer, gateway, netmask) = (field(0), field(1), field(2), field(3));
    let (hostname, interface) = (field(4), field(5));
    let tail = fields.get(7..).unwrap_or(&[]);
    let (address, cidr_prefix) = match client.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix6(prefix)?)),
        None => (client, None),
    };
    let address = ipv6("client IP", address)?;
    if !peer.is_empty() {
        return Err(format!(
            "a point-to-point peer is supported for IPv4 only: expected {FORM6}"
        ));
    }
    let gateway = if gateway.is_empty() {
        None
    } else {
        Some(ipv6("gateway", gateway)?).filter(|gateway| !gateway.is_unspecified())
    };
    let netmask = if netmask.is_empty() {
        None
    } else {
        Some(prefix6(netmask)?)
    };
    let hostname = values::optional_hostname(hostname)?;
    let target = target(interface)?;
    let method = match method {
        Method::Dhcp => AddressMethod::Dhcp,
        Method::Auto6 => AddressMethod::Auto6,
        Method::Static => {
            let prefix_len = match (cidr_prefix, netmask) {
                (Some(from_address), Some(from_mask)) if from_address != from_mask => {
                    return Err(format!(
                        "the client IP's /{from_address} and the prefix length /{from_mask} \
                         disagree: expected one prefix"
                    ));
                }
                (_, Some(prefix)) | (Some(prefix), None) => prefix,
                (None, None) => {
                    return Err(format!(
                        "a static address needs a prefix length: expected {FORM6}"
                    ));
                }
            };
            AddressMethod::Static6(StaticAddress6 {
                address,
                prefix_len,
                gateway,
            })
        }
    };
    let mut config = InterfaceConfig::new("ip", target, method);
    config.hostname = hostname;
    match tail.split_first() {
        None => {}
        Some((first, _)) if first.contains(':') || first.contains('.') => {
            return Err(format!(
                "DNS servers in ip= are taken as IPv4 only; use nameserver= for IPv4 ones: \
                 expected {FORM6}[:<mtu>[:<macaddr>]]"
            ));
        }
        Some((first, rest)) => {
            config.mtu = values::optional_mtu(first)?;
            config.set_mac = mac_tail(rest, FORM6)?;
        }
    }
    Ok(config)
}

fn ipv6(what: &str, text: &str) -> Result<Ipv6Addr, String> {
    text.parse::<Ipv6Addr>().map_err(|_| {
        format!("{what} {text:?} is not an IPv6 address: expected e.g. [2001:db8::10]")
    })
}

fn prefix6(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(len) if len <= 128 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(len),
        _ => Err(format!(
            "prefix length {text:?} is not valid for IPv6: expected a number from 0 to 128, e.g. 64"
        )),
    }
}

/// After the method comes either `[<mtu>][:<macaddr>]` or `[<dns1>][:<dns2>]`; dracut tells
/// them apart by the first field looking like an address.
fn apply_explicit_tail(config: &mut InterfaceConfig, tail: &[&str]) -> Result<(), String> {
    let Some((first, rest)) = tail.split_first() else {
        return Ok(());
    };
    if first.contains(':') {
        return Err(format!(
            "IPv6 DNS servers are not supported in ip=: expected IPv4 <dns1>:<dns2> or \
             <mtu>:<macaddr> after the method in {STATIC_FORM}"
        ));
    }
    if first.contains('.') {
        let dns2 = match rest {
            [] => "",
            [dns2] => *dns2,
            _ => {
                return Err(format!(
                    "too many fields after the DNS servers: expected {STATIC_FORM} or \
                     ...:<method>:<dns1>:<dns2>"
                ));
            }
        };
        config.dns.push(values::ipv4("dns1", first)?);
        if let Some(server) = values::optional_ipv4("dns2", dns2)? {
            config.dns.push(server);
        }
        return Ok(());
    }
    config.mtu = values::optional_mtu(first)?;
    config.set_mac = mac_tail(rest, STATIC_FORM)?;
    Ok(())
}

/// The `<macaddr>` at the end of `ip=`: absent, one field in dash form, or six fields because
/// its colons were split like the rest (dracut joins them back the same way).
fn mac_tail(fields: &[&str], form: &str) -> Result<Option<MacAddr>, String> {
    match fields {
        [] | [""] => Ok(None),
        [mac] => values::mac(mac).map(Some),
        [_, _, _, _, _, _] => values::mac(&fields.join(":")).map(Some),
        _ => Err(format!(
            "too many fields (or a MAC that is not six octets): expected {form}"
        )),
    }
}

fn target(interface: &str) -> Result<InterfaceTarget, String> {
    Ok(match values::optional_interface_name(interface)? {
        Some(name) => InterfaceTarget::Name(name),
        None => InterfaceTarget::Any,
    })
}

/// The client IP, optionally with a prefix (`10.0.0.5/24`), which dracut also accepts.
fn client_address(text: &str) -> Result<Option<(std::net::Ipv4Addr, Option<u8>)>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains('/') {
        let (address, prefix) = values::address_with_prefix("client IP", text)?;
        return Ok(Some((address, Some(prefix))));
    }
    Ok(Some((values::ipv4("client IP", text)?, None)))
}

/// The peer "may be followed by a slash and a decimal number" (the prefix length, which
/// iproute2 then gives the address; without one it is a /32).
fn peer_address(text: &str) -> Result<(Option<std::net::Ipv4Addr>, Option<u8>), String> {
    if text.contains('/') {
        values::address_with_prefix("peer", text)
            .map(|(address, prefix)| (Some(address), Some(prefix)))
    } else {
        values::optional_ipv4("peer", text).map(|address| (address, None))
    }
}

/// Kernel-style `ip=` lines often write 0.0.0.0 for "no peer" / "no gateway".
fn non_zero(address: Option<std::net::Ipv4Addr>) -> Option<std::net::Ipv4Addr> {
    address.filter(|address| !address.is_unspecified())
}

/// `rd.route=<net>/<netmask>:<gateway>[:<interface>]`; the gateway may be empty for an on-link
/// route (`rd.route=192.168.200.0/24::ens10`).
pub fn route(value: &str) -> Result<StaticRoute, String> {
    const FORM: &str =
        "<net>/<netmask>:<gateway>[:<interface>], e.g. 192.168.200.0/24:192.168.100.222:ens10";
    if value.contains('[') {
        return Err(IPV6_UNSUPPORTED.to_string());
    }
    let (network, gateway, interface) = match value.split(':').collect::<Vec<_>>().as_slice() {
        [network, gateway] => (*network, *gateway, ""),
        [network, gateway, interface] => (*network, *gateway, *interface),
        [_] => {
            return Err(format!(
                "a gateway or an interface is missing: expected {FORM}"
            ));
        }
        _ => return Err(format!("too many fields: expected {FORM}")),
    };
    let (destination, prefix_len) = values::address_with_prefix("network", network)?;
    let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    if u32::from(destination) & host_bits != 0 {
        return Err(format!(
            "network {network:?} has host bits set: expected the network's first address, e.g. \
             192.168.200.0/24"
        ));
    }
    let gateway = values::optional_ipv4("gateway", gateway)?;
    let interface = values::optional_interface_name(interface)?;
    if gateway.is_none() && interface.is_none() {
        return Err(format!(
            "a route needs a gateway, an interface or both: expected {FORM}"
        ));
    }
    Ok(StaticRoute {
        destination,
        prefix_len,
        gateway,
        interface,
    })
}

/// `vlan=<vlanname>:<phydevice>`. The id is in the name, in one of the four styles dracut
/// supports: vlan0005, vlan5, eth0.0005, eth0.5.
pub fn vlan(value: &str) -> Result<VlanConfig, String> {
    const FORM: &str = "<vlanname>:<phydevice>, e.g. eth0.42:eth0 or vlan0042:eth0";
    let (name, parent) = match value.split(':').collect::<Vec<_>>().as_slice() {
        [name, parent] => (*name, *parent),
        [_] => return Err(format!("the physical device is missing: expected {FORM}")),
        _ => return Err(format!("too many fields: expected {FORM}")),
    };
    let name = values::interface_name(name)?;
    let parent = values::interface_name(parent)?;
    let id = vlan_id_from_name(&name)?;
    Ok(VlanConfig {
        parent: InterfaceTarget::Name(parent),
        id,
        name: Some(name),
        dhcp_instead_of_parent: false,
    })
}

fn vlan_id_from_name(name: &str) -> Result<u16, String> {
    let digits = match name.strip_prefix("vlan") {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits,
        _ => match name.rsplit_once('.') {
            Some((device, digits)) if !device.is_empty() => digits,
            _ => {
                return Err(format!(
                    "VLAN name {name:?} carries no id: expected vlan0005, vlan5, eth0.0005 or eth0.5"
                ));
            }
        },
    };
    values::vlan_id(digits)
}

/// `ifname=<interface>:<MAC>`; the MAC's colons split it into seven fields.
pub fn ifname(value: &str) -> Result<Rename, String> {
    const FORM: &str = "<interface>:<MAC>, e.g. bootnet:52:54:00:12:34:56";
    let Some((name, mac)) = value.split_once(':') else {
        return Err(format!("the MAC is missing: expected {FORM}"));
    };
    let name = values::interface_name(name)?;
    let mac = values::mac(mac).map_err(|problem| format!("{problem}: expected {FORM}"))?;
    Ok(Rename { name, mac })
}

/// `bond=<bondname>[:<bondslaves>[:<options>[:<mtu>]]]`, with dracut's defaults: an empty
/// value is `bond0` on `eth0,eth1`; the options are comma-separated `key=value` pairs in the
/// kernel's sysfs names, `arp_ip_target`'s addresses separated by `;`.
pub fn bond(value: &str) -> Result<BondConfig, String> {
    const FORM: &str = "<bondname>[:<bondslaves>[:<options>[:<mtu>]]], e.g. \
         bond0:eth0,eth1:mode=active-backup,miimon=100:9000";
    let fields: Vec<&str> = if value.is_empty() {
        Vec::new()
    } else {
        value.split(':').collect()
    };
    if fields.len() > 4 {
        return Err(format!("too many fields: expected {FORM}"));
    }
    let field = |index: usize| fields.get(index).copied().unwrap_or("");
    let name = match field(0) {
        "" => "bond0".to_string(),
        name => values::interface_name(name)?,
    };
    let slaves = match field(1) {
        "" => vec!["eth0".to_string(), "eth1".to_string()],
        list => values::comma_list(list, values::interface_name)?,
    };
    if slaves.contains(&name) {
        return Err(format!(
            "bond {name:?} cannot be its own slave: expected {FORM}"
        ));
    }
    let options = values::comma_list(field(2), |option| {
        let (key, value) = option.split_once('=').ok_or_else(|| {
            format!("bonding option {option:?} has no value: expected key=value, e.g. miimon=100")
        })?;
        crate::link::BondOption::parse(key, value)
    })?;
    let mtu = values::optional_mtu(field(3))?;
    Ok(BondConfig {
        name,
        slaves,
        options,
        mtu,
    })
}
