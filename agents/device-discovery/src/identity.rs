//! Who this machine is: DMI serial and UUID, the boot MAC (EMT's rule: the worker id, else the
//! first interface with an IPv4 address), every physical NIC's MAC, the boot interface's IP,
//! and the full hardware attributes.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use bootkit_common::mac::MacAddr;
use bootkit_hwinfo::{AgentAttributes, NetworkInterface};

use crate::config::IdentityOverrides;
use crate::hardware;

/// What the machine reports of itself when it asks to be onboarded.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Absent when DMI has none or only a firmware placeholder.
    pub serial: Option<String>,
    /// `--uuid`, else DMI's system UUID; absent when neither gives one.
    pub uuid: Option<String>,
    /// [`MacAddr`]'s form, `aa:bb:cc:dd:ee:ff`: the node's worker id.
    pub boot_mac: String,
    /// Every physical NIC's MAC, the boot MAC first.
    pub macs: Vec<String>,
    /// `--ip`, else the boot interface's first IPv4 address; absent when it had none by the end
    /// of the wait.
    pub ip: Option<String>,
    /// bootkit-hwinfo's attributes as JSON.
    pub hardware: serde_json::Value,
}

/// Why the machine's identity cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No physical NIC has a usable MAC and none was given.
    #[error(
        "no network interface with a MAC address was found under {sys}: check that the NIC's driver is loaded, or pass --mac"
    )]
    NoNetworkInterface {
        /// The directory of network interfaces that was searched (`…/sys/class/net`).
        sys: String,
    },
}

/// Where IPv4 addresses are looked up: the live system, or a fixed table in tests.
pub trait AddressSource: Send + Sync {
    /// The IPv4 addresses of the interface named `interface`.
    fn ipv4(&self, interface: &str) -> Vec<Ipv4Addr>;
}

/// This machine's addresses (getifaddrs).
pub struct LiveAddresses;

impl AddressSource for LiveAddresses {
    fn ipv4(&self, interface: &str) -> Vec<Ipv4Addr> {
        let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        addresses
            .filter(|entry| entry.interface_name == interface)
            .filter_map(|entry| entry.address?.as_sockaddr_in().map(|v4| v4.ip()))
            .filter(|ip| !ip.is_loopback() && !ip.is_link_local())
            .collect()
    }
}

/// How long to wait for the boot interface's address (DHCP may still be running).
#[derive(Debug, Clone, Copy)]
pub struct IpWait {
    /// How many times to look; 0 does not look at all (the config's value is at least 1).
    pub tries: u32,
    /// The pause between two looks.
    pub interval: Duration,
}

/// The identity of the machine whose /sys and /proc are under `root`. Waits (bounded by
/// `wait`) for an IPv4 address on the boot interface, then reports without one.
pub async fn discover(
    root: &Path,
    overrides: &IdentityOverrides,
    addresses: &dyn AddressSource,
    wait: IpWait,
) -> Result<Identity, IdentityError> {
    let attributes = bootkit_hwinfo::collect_from(root);
    // The config has checked the worker id's form already.
    let worker_mac: Option<MacAddr> = overrides.mac.as_deref().and_then(|mac| mac.parse().ok());
    let interfaces: Vec<(String, MacAddr)> = attributes
        .network_interfaces
        .iter()
        .filter_map(physical_mac)
        .collect();
    let mut boot = None;
    for attempt in 1..=wait.tries {
        boot = boot_interface(&interfaces, worker_mac, addresses);
        let has_ip = boot.as_ref().is_some_and(|(_, ip)| ip.is_some());
        if has_ip || overrides.ip.is_some() || attempt == wait.tries {
            break;
        }
        tokio::time::sleep(wait.interval).await;
    }
    let (boot_mac, boot_ip) = match (boot, worker_mac) {
        (Some(found), _) => found,
        (None, Some(mac)) => (mac, None),
        (None, None) => {
            return Err(IdentityError::NoNetworkInterface {
                sys: root.join("sys/class/net").display().to_string(),
            });
        }
    };
    Ok(identity(
        attributes,
        overrides,
        &interfaces,
        boot_mac,
        boot_ip,
    ))
}

fn identity(
    attributes: AgentAttributes,
    overrides: &IdentityOverrides,
    interfaces: &[(String, MacAddr)],
    boot_mac: MacAddr,
    boot_ip: Option<Ipv4Addr>,
) -> Identity {
    let mut macs = vec![boot_mac.to_string()];
    macs.extend(
        interfaces
            .iter()
            .filter(|(_, mac)| *mac != boot_mac)
            .map(|(_, mac)| mac.to_string()),
    );
    let dmi_serial = attributes
        .product
        .serial
        .clone()
        .or_else(|| attributes.chassis.serial.clone())
        .or_else(|| attributes.baseboard.serial.clone());
    Identity {
        serial: overrides.serial.clone().or(dmi_serial),
        uuid: overrides
            .uuid
            .clone()
            .or_else(|| attributes.system_uuid.clone()),
        boot_mac: boot_mac.to_string(),
        macs,
        ip: overrides.ip.clone().or(boot_ip.map(|ip| ip.to_string())),
        hardware: hardware::to_json(&attributes),
    }
}

/// The interface's MAC when it can name the machine (not unset, not multicast).
fn physical_mac(interface: &NetworkInterface) -> Option<(String, MacAddr)> {
    let mac = interface.mac.as_deref()?.parse::<MacAddr>().ok()?;
    mac.is_unicast_identity()
        .then(|| (interface.name.clone(), mac))
}

/// EMT's rule: the interface with the given MAC, else the first one with an IPv4 address,
/// else (no address yet) the first one; with its first IPv4 address if it has one.
fn boot_interface(
    interfaces: &[(String, MacAddr)],
    mac: Option<MacAddr>,
    addresses: &dyn AddressSource,
) -> Option<(MacAddr, Option<Ipv4Addr>)> {
    let first_ip = |name: &str| addresses.ipv4(name).into_iter().next();
    if let Some(mac) = mac {
        let (name, _) = interfaces.iter().find(|(_, candidate)| *candidate == mac)?;
        return Some((mac, first_ip(name)));
    }
    interfaces
        .iter()
        .find_map(|(name, mac)| first_ip(name).map(|ip| (*mac, Some(ip))))
        .or_else(|| interfaces.first().map(|(_, mac)| (*mac, None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Table(HashMap<&'static str, Ipv4Addr>);

    impl AddressSource for Table {
        fn ipv4(&self, interface: &str) -> Vec<Ipv4Addr> {
            self.0.get(interface).copied().into_iter().collect()
        }
    }

    fn mac(text: &str) -> MacAddr {
        text.parse().unwrap()
    }

    fn nics() -> Vec<(String, MacAddr)> {
        vec![
            ("eno1".to_string(), mac("aa:00:00:00:00:01")),
            ("eno2".to_string(), mac("aa:00:00:00:00:02")),
        ]
    }

    #[test]
    fn boot_interface_is_the_first_with_an_ipv4_address() {
        let table = Table(HashMap::from([("eno2", Ipv4Addr::new(10, 0, 0, 2))]));
        assert_eq!(
            boot_interface(&nics(), None, &table),
            Some((mac("aa:00:00:00:00:02"), Some(Ipv4Addr::new(10, 0, 0, 2))))
        );
    }

    #[test]
    fn the_worker_id_mac_wins_even_without_an_address() {
        let table = Table(HashMap::from([("eno2", Ipv4Addr::new(10, 0, 0, 2))]));
        assert_eq!(
            boot_interface(&nics(), Some(mac("aa:00:00:00:00:01")), &table),
            Some((mac("aa:00:00:00:00:01"), None))
        );
    }

    #[test]
    fn without_addresses_the_first_nic_is_the_boot_nic() {
        let table = Table(HashMap::new());
        assert_eq!(
            boot_interface(&nics(), None, &table),
            Some((mac("aa:00:00:00:00:01"), None))
        );
    }
}
