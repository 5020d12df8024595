//! dracut's network keys, as `man 7 dracut.cmdline` ("Network") documents them and dracut's
//! `ip_to_var` (modules.d/40network/net-lib.sh) splits them:
//!
//! - `ip={dhcp|on|any|single-dhcp}`: DHCP on all interfaces.
//! - `ip=<interface>:{dhcp|on|any}[:[<mtu>][:<macaddr>]]`: DHCP on one interface.
//! - `ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<client_hostname>:<interface>:
//!   {none|off|dhcp|on|any}[:[<mtu>][:<macaddr>]]`, or with `[:[<dns1>][:<dns2>]]` as tail.
//! - `rd.route=<net>/<netmask>:<gateway>[:<interface>]`.
//! - `vlan=<vlanname>:<phydevice>`.
//!
//! The bootkit configures IPv4 only: bracketed IPv6 addresses and the IPv6 methods (dhcp6,
//! auto6, either6, link6) are reported rather than silently skipped.

use super::values::{self, MacAddr};
use super::{
    AddressMethod, InterfaceConfig, InterfaceTarget, StaticAddress, StaticRoute, VlanConfig,
};

const IPV6_UNSUPPORTED: &str =
    "IPv6 is not supported (the bootkit configures IPv4): expected an IPv4 configuration";
const STATIC_FORM: &str = "<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<interface>:{none|off|dhcp}[:<mtu>][:<macaddr>]";

/// What the method field of `ip=` asks for.
enum Method {
    Dhcp,
    Static,
}

/// The method words dracut knows. `None` for a word that is not one, so that the caller can
/// tell the short form `<interface>:dhcp` from the long one (whose second field is a peer).
fn method(word: &str) -> Option<Result<Method, String>> {
    match word {
        // single-dhcp (DHCP on all interfaces at once, first answer wins) is what the bootkit
        // does anyway.
        "dhcp" | "on" | "any" | "single-dhcp" => Some(Ok(Method::Dhcp)),
        "none" | "off" => Some(Ok(Method::Static)),
        "dhcp6" | "auto6" | "either6" | "link6" => Some(Err(IPV6_UNSUPPORTED.to_string())),
        "ibft" => Some(Err(
            "ibft (addresses from the iSCSI boot firmware table) is not supported: expected \
             none, off, dhcp, on or any"
                .to_string(),
        )),
        _ => None,
    }
}

pub fn ip(value: &str) -> Result<InterfaceConfig, String> {
    if value.contains('[') {
        return Err(IPV6_UNSUPPORTED.to_string());
    }
    let fields: Vec<&str> = value.split(':').collect();
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
    match method(method_word) {
        Some(Ok(Method::Dhcp)) => {}
        Some(Ok(Method::Static)) => {
            return Err(format!(
                "{method_word} needs a static address: expected {STATIC_FORM}"
            ));
        }
        Some(Err(problem)) => return Err(problem),
        None => return Err(format!("expected <interface>:dhcp or {STATIC_FORM}")),
    }
    let target = target(interface)?;
    let mut config = InterfaceConfig::new("ip", target, AddressMethod::Dhcp);
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

    // Every field is checked even when DHCP will not use it: a typo there means the line does
    // not say what its author thinks, and the warning is the only way they will find out.
    let client = client_address(client)?;
    let peer = non_zero(peer_address(peer)?);
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
            })
        }
    };

    let mut config = InterfaceConfig::new("ip", target, method);
    config.hostname = hostname;
    apply_explicit_tail(&mut config, tail)?;
    Ok(config)
}

/// After the method comes either `[<mtu>][:<macaddr>]` or `[<dns1>][:<dns2>]`; dracut tells
/// them apart by the first field looking like an address.
fn apply_explicit_tail(config: &mut InterfaceConfig, tail: &[&str]) -> Result<(), String> {
    let Some((first, rest)) = tail.split_first() else {
        return Ok(());
    };
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

/// The peer "may be followed by a slash and a decimal number" (the prefix length); the
/// address is what matters for a point-to-point link.
fn peer_address(text: &str) -> Result<Option<std::net::Ipv4Addr>, String> {
    if text.contains('/') {
        values::address_with_prefix("peer", text).map(|(address, _)| Some(address))
    } else {
        values::optional_ipv4("peer", text)
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
