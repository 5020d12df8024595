//! `--copy-network` (`copy_network = true`): the network the bootkit came up with, written
//! into the installed system as systemd-networkd `.network` files.
//!
//! The bootkit's network is what its kernel command line says (`ip=`, `ipam=`, `nameserver=`,
//! `interface=`/`hw_addr=`/`BOOTIF=`, read by [`bootkit_net::config`], the same rules the
//! init applied). networkd is the form EMT (and Debian with systemd-networkd) reads; the
//! installer already writes `[network]` that way. Interfaces are matched by MAC address:
//! the installed system names them by its own rules (`enp1s0`), not the bootkit's (`eth0`),
//! so a name is turned into the MAC the interface has now. Files are `20-bootkit-copied-N.network`:
//! after the install config's `10-bootkit-static.network`, before EMT's `99-dhcp-en.network`
//! (networkd uses the first file that matches).
//!
//! What networkd files cannot carry as the bootkit set it up (VLANs, bonds, static routes,
//! a static address without an interface) stops the install before the disk is written,
//! naming the setting: an installed system without the network it was asked to copy would
//! only be found unreachable after its first boot.

use std::path::Path;

use bootkit_common::mac::MacAddr;
use bootkit_net::config::{AddressMethod, InterfaceSelector, InterfaceTarget, NetConfig};

/// Where the files go in the installed system.
pub const NETWORK_DIR: &str = "/etc/systemd/network";

/// Why the bootkit's network cannot be copied.
#[derive(Debug, thiserror::Error)]
pub enum CopyNetworkError {
    /// A setting has no faithful networkd form here.
    #[error(
        "--copy-network cannot copy {what} from the bootkit's kernel command line; drop \
         --copy-network (copy_network) and give the installed system's network as [network] \
         in the install config"
    )]
    Unsupported {
        /// The setting, as the user wrote it.
        what: String,
    },
    /// The bootkit's kernel command line cannot be read.
    #[error("--copy-network: cannot read the bootkit's kernel command line {path}")]
    Cmdline {
        /// Where it was read from (/proc/cmdline).
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An interface named on the command line does not exist now.
    #[error(
        "--copy-network: the interface {name} named on the bootkit's kernel command line has \
         no MAC address in /sys/class/net; is it this machine's interface?"
    )]
    NoSuchInterface {
        /// The interface name.
        name: String,
        /// Why its address could not be read.
        source: std::io::Error,
    },
}

/// One `.network` file: its name in [`NETWORK_DIR`] and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFile {
    /// The file name, e.g. `20-bootkit-copied-1.network`.
    pub name: String,
    /// Its contents.
    pub text: String,
}

/// The networkd files for `config`, one per interface configuration; `mac_of` gives an
/// interface's MAC address by name (from `/sys/class/net/NAME/address` in the installer).
pub fn network_files(
    config: &NetConfig,
    mac_of: impl Fn(&str) -> Result<MacAddr, std::io::Error>,
) -> Result<Vec<NetworkFile>, CopyNetworkError> {
    let unsupported = |what: String| Err(CopyNetworkError::Unsupported { what });
    if let Some(vlan) = config.vlans.first() {
        return unsupported(format!("VLAN {} (vlan=, vlan_id=)", vlan.id));
    }
    if let Some(bond) = config.bonds.first() {
        return unsupported(format!("the bond {} (bond=)", bond.name));
    }
    if !config.routes.is_empty() {
        return unsupported("static routes (rd.route=)".into());
    }
    let match_of = |target: &InterfaceTarget| -> Result<String, CopyNetworkError> {
        match target {
            InterfaceTarget::Mac(mac) => Ok(format!("MACAddress={mac}")),
            InterfaceTarget::Name(name) => match_of_name(name, &mac_of),
            InterfaceTarget::Any => match &config.selector {
                InterfaceSelector::AllPhysical => Ok("Type=ether".into()),
                InterfaceSelector::Name(name) => match_of_name(name, &mac_of),
                InterfaceSelector::Mac(mac) => Ok(format!("MACAddress={mac}")),
            },
        }
    };
    let mut files = Vec::new();
    for (index, interface) in config.interfaces.iter().enumerate() {
        if interface.vlan_id.is_some() {
            return unsupported(format!(
                "the VLAN of {}= (its vlan id)",
                interface.source_key
            ));
        }
        let static_without_interface = interface.target == InterfaceTarget::Any
            && config.selector == InterfaceSelector::AllPhysical
            && !matches!(interface.method, AddressMethod::Dhcp | AddressMethod::Auto6);
        if static_without_interface {
            return unsupported(format!(
                "the static address of {}= without an interface (the bootkit put it on the \
                 first interface with a link)",
                interface.source_key
            ));
        }
        let mut text = format!(
            "# Written by bootkit-install --copy-network: the network the bootkit came up with \
             ({}= on its kernel command line).\n[Match]\n{}\n\n[Network]\n",
            interface.source_key,
            match_of(&interface.target)?
        );
        match &interface.method {
            AddressMethod::Dhcp => text += "DHCP=ipv4\n",
            AddressMethod::Auto6 => text += "IPv6AcceptRA=yes\n",
            AddressMethod::Static(address) => {
                text += &format!("Address={}/{}\n", address.address, address.prefix_len);
                if let Some(gateway) = address.gateway {
                    text += &format!("Gateway={gateway}\n");
                }
            }
            AddressMethod::Static6(address) => {
                text += &format!("Address={}/{}\n", address.address, address.prefix_len);
                if let Some(gateway) = address.gateway {
                    text += &format!("Gateway={gateway}\n");
                }
            }
        }
        // nameserver= wins over what DHCP or ip= offer, as in the bootkit.
        let dns = if config.nameservers.is_empty() {
            &interface.dns
        } else {
            &config.nameservers
        };
        for server in dns {
            text += &format!("DNS={server}\n");
        }
        if !interface.search.is_empty() {
            text += &format!("Domains={}\n", interface.search.join(" "));
        }
        if !config.peer_dns && interface.method == AddressMethod::Dhcp {
            text += "\n[DHCPv4]\nUseDNS=no\n";
        }
        if let Some(mtu) = interface.mtu {
            text += &format!("\n[Link]\nMTUBytes={mtu}\n");
        }
        files.push(NetworkFile {
            name: format!("20-bootkit-copied-{}.network", index + 1),
            text,
        });
    }
    Ok(files)
}

fn match_of_name(
    name: &str,
    mac_of: &impl Fn(&str) -> Result<MacAddr, std::io::Error>,
) -> Result<String, CopyNetworkError> {
    mac_of(name)
        .map(|mac| format!("MACAddress={mac}"))
        .map_err(|source| CopyNetworkError::NoSuchInterface {
            name: name.to_owned(),
            source,
        })
}

/// The network of the running bootkit: its kernel command line read from `proc_cmdline`
/// (`/proc/cmdline`), its interfaces' MACs from `/sys/class/net`.
pub fn of_running_bootkit(proc_cmdline: &Path) -> Result<Vec<NetworkFile>, CopyNetworkError> {
    let cmdline =
        std::fs::read_to_string(proc_cmdline).map_err(|source| CopyNetworkError::Cmdline {
            path: proc_cmdline.to_owned(),
            source,
        })?;
    from_running_system(&cmdline, Path::new("/sys/class/net"))
}

/// The bootkit's network as its kernel command line `cmdline` says, with the MACs of the
/// interfaces it names read from `sys_class_net` (`/sys/class/net`).
pub fn from_running_system(
    cmdline: &str,
    sys_class_net: &Path,
) -> Result<Vec<NetworkFile>, CopyNetworkError> {
    let mut pairs: Vec<(String, String)> = bootkit_common::cmdline::split_words(cmdline)
        .into_iter()
        .filter_map(|word| {
            let (key, value) = word.split_once('=')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect();
    let mut config = bootkit_net::config::parse(&pairs);
    if config.interfaces.is_empty() {
        // No ip= means DHCP on the interfaces the selector allows: ip=dhcp, as the init reads it.
        pairs.push(("ip".into(), "dhcp".into()));
        config = bootkit_net::config::parse(&pairs);
    }
    network_files(&config, |name| {
        let text = std::fs::read_to_string(sys_class_net.join(name).join("address"))?;
        text.trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("{:?} is not a MAC address", text.trim())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A /sys/class/net with `eth0` at 52:54:00:12:34:56.
    fn sys_class_net() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("eth0")).unwrap();
        std::fs::write(dir.path().join("eth0/address"), "52:54:00:12:34:56\n").unwrap();
        dir
    }

    fn files(cmdline: &str) -> Result<Vec<NetworkFile>, CopyNetworkError> {
        from_running_system(cmdline, sys_class_net().path())
    }

    #[test]
    fn a_static_address_on_a_named_interface_is_matched_by_its_mac() {
        let files = files(
            "console=ttyS0 ip=10.0.0.5::10.0.0.1:255.255.255.0:edge:eth0:none nameserver=10.0.0.53",
        )
        .unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "20-bootkit-copied-1.network");
        let text = &files[0].text;
        assert!(
            text.contains(
                "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nAddress=10.0.0.5/24\n\
                 Gateway=10.0.0.1\nDNS=10.0.0.53\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn no_ip_means_dhcp_on_the_interface_the_bootkit_chose() {
        let everywhere = files("quiet").unwrap();
        assert!(
            everywhere[0]
                .text
                .contains("[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n"),
            "{}",
            everywhere[0].text
        );
        // Smee's worker_id= is the MAC the bootkit runs DHCP on.
        let one = files("worker_id=52:54:00:aa:bb:cc").unwrap();
        assert!(
            one[0]
                .text
                .contains("MACAddress=52:54:00:aa:bb:cc\n\n[Network]\nDHCP=ipv4\n"),
            "{}",
            one[0].text
        );
    }

    #[test]
    fn what_networkd_files_cannot_carry_stops_naming_it() {
        for (cmdline, named) in [
            ("vlan=eth0.42:eth0 ip=eth0.42:dhcp", "VLAN 42"),
            ("bond=bond0:eth0,eth1 ip=bond0:dhcp", "bond0"),
            ("rd.route=10.1.0.0/16:10.0.0.1 ip=eth0:dhcp", "rd.route="),
            (
                "ip=10.0.0.5::10.0.0.1:255.255.255.0:::none",
                "without an interface",
            ),
        ] {
            let message = files(cmdline).unwrap_err().to_string();
            assert!(
                message.contains(named) && message.contains("[network]"),
                "{cmdline}: {message}"
            );
        }
        let message = files("ip=eth9:dhcp").unwrap_err().to_string();
        assert!(message.contains("eth9"), "{message}");
    }
}
