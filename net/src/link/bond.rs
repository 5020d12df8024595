//! Bonds as dracut's `bond=` makes them (modules.d/35network-legacy/ifup.sh): the bond is
//! created with its options, each slave is taken down and enslaved, the bond's MTU is set
//! once the slaves are in, and `primary=` is applied last (it names a slave).
//!
//! dracut writes each option to `/sys/class/net/<bond>/bonding/<key>`; here the same keys
//! (the kernel's sysfs names) become the IFLA_BOND_* attributes of the bond's RTM_NEWLINK,
//! which needs no sysfs of the right network namespace.

use std::net::Ipv4Addr;
use std::str::FromStr;

use netlink_packet_route::link::{
    BondAdSelect, BondAllPortActive, BondArpAllTargets, BondArpValidate, BondFailOverMac,
    BondLacpRate, BondMode, BondPrimaryReselect, BondXmitHashPolicy, InfoBond, InfoData, InfoKind,
};
use rtnetlink::{LinkBond, LinkMessageBuilder, LinkUnspec};

use super::{EEXIST, ENODEV, EOPNOTSUPP, LinkError, Links, errno_of, netlink};

/// One bonding option of `bond=`'s option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BondOption {
    /// An option set when the bond is created.
    Setting(InfoBond),
    /// `primary=<slave>`: the slave preferred in active-backup, by name; set once enslaved.
    Primary(String),
}

/// The option keys understood, for the error message.
const KNOWN: &str = "mode, miimon, updelay, downdelay, use_carrier, arp_interval, \
     arp_ip_target, arp_validate, arp_all_targets, primary, primary_reselect, fail_over_mac, \
     xmit_hash_policy, lacp_rate, ad_select, all_slaves_active, min_links, resend_igmp, \
     num_grat_arp, num_unsol_na, lp_interval, packets_per_slave, tlb_dynamic_lb, \
     peer_notif_delay, missed_max, ad_actor_sys_prio, ad_user_port_key";

impl BondOption {
    /// Parses `key=value` as dracut (and initscripts' BONDING_OPTS) write it, with the
    /// kernel's sysfs names and values (`mode=active-backup` or `mode=1`,
    /// `arp_ip_target=10.0.0.1;10.0.0.2`). The error names the key and what was expected.
    pub fn parse(key: &str, value: &str) -> Result<BondOption, String> {
        fn named<T: FromStr>(key: &str, value: &str, expected: &str) -> Result<T, String> {
            value.parse().map_err(|_| {
                format!("bonding option {key}={value:?} is not valid: expected {expected}")
            })
        }
        let number = |expected: &str| named::<u32>(key, value, expected);
        let flag = || match value {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(format!(
                "bonding option {key}={value:?} is not valid: expected 0 or 1"
            )),
        };
        let setting = match key {
            "mode" => InfoBond::Mode(named::<BondMode>(
                key,
                value,
                "balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, \
                 balance-alb or 0-6",
            )?),
            "miimon" => InfoBond::MiiMon(number("milliseconds, e.g. 100")?),
            "updelay" => InfoBond::UpDelay(number("milliseconds")?),
            "downdelay" => InfoBond::DownDelay(number("milliseconds")?),
            "use_carrier" => InfoBond::UseCarrier(flag()?),
            "arp_interval" => InfoBond::ArpInterval(number("milliseconds")?),
            "arp_ip_target" => InfoBond::ArpIpTarget(
                value
                    .split([';', ','])
                    .filter(|target| !target.is_empty())
                    .map(|target| named::<Ipv4Addr>(key, target, "IPv4 addresses separated by ';'"))
                    .collect::<Result<_, _>>()?,
            ),
            "arp_validate" => InfoBond::ArpValidate(named::<BondArpValidate>(
                key,
                value,
                "none, active, backup, all, filter, filter_active or filter_backup",
            )?),
            "arp_all_targets" => {
                InfoBond::ArpAllTargets(named::<BondArpAllTargets>(key, value, "any or all")?)
            }
            "primary" => {
                return crate::ifname::interface_name(value)
                    .map(BondOption::Primary)
                    .map_err(|problem| format!("bonding option primary: {problem}"));
            }
            "primary_reselect" => InfoBond::PrimaryReselect(named::<BondPrimaryReselect>(
                key,
                value,
                "always, better or failure",
            )?),
            "fail_over_mac" => InfoBond::FailOverMac(named::<BondFailOverMac>(
                key,
                value,
                "none, active or follow",
            )?),
            "xmit_hash_policy" => InfoBond::XmitHashPolicy(named::<BondXmitHashPolicy>(
                key,
                value,
                "layer2, layer2+3, layer3+4, encap2+3, encap3+4 or vlan+srcmac",
            )?),
            "lacp_rate" => {
                InfoBond::AdLacpRate(named::<BondLacpRate>(key, value, "slow, fast, 0 or 1")?)
            }
            "ad_select" => InfoBond::AdSelect(named::<BondAdSelect>(
                key,
                value,
                "stable, bandwidth, count or actor_port_prio",
            )?),
            "all_slaves_active" => {
                InfoBond::AllPortsActive(named::<BondAllPortActive>(key, value, "0 or 1")?)
            }
            "min_links" => InfoBond::MinLinks(number("a number of links")?),
            "resend_igmp" => InfoBond::ResendIgmp(number("a count, 0-255")?),
            "num_grat_arp" | "num_unsol_na" => {
                InfoBond::NumPeerNotif(named::<u8>(key, value, "a count, 0-255")?)
            }
            "lp_interval" => InfoBond::LpInterval(number("seconds")?),
            "packets_per_slave" => InfoBond::PacketsPerPort(number("a count")?),
            "tlb_dynamic_lb" => InfoBond::TlbDynamicLb(flag()?),
            "peer_notif_delay" => InfoBond::PeerNotifDelay(number("milliseconds")?),
            "missed_max" => InfoBond::MissedMax(named::<u8>(key, value, "a count, 1-255")?),
            "ad_actor_sys_prio" => {
                InfoBond::AdActorSysPrio(named::<u16>(key, value, "a priority, 1-65535")?)
            }
            "ad_user_port_key" => {
                InfoBond::AdUserPortKey(named::<u16>(key, value, "a key, 0-1023")?)
            }
            _ => {
                return Err(format!(
                    "bonding option {key:?} is not supported: expected one of {KNOWN}"
                ));
            }
        };
        Ok(BondOption::Setting(setting))
    }
}

impl Links {
    /// Creates bond `name` with `options`, enslaves `slaves` (each taken down first, as the
    /// kernel requires, then up again), sets `mtu` on the bond, applies `primary=`, sets the
    /// bond up and returns its index. A bond of that name that already exists (loading the
    /// bonding module makes `bond0`) gets the options while down, as dracut writes them to
    /// sysfs; another kind of interface of that name is an error, as is a slave that does not
    /// exist.
    pub async fn add_bond(
        &self,
        name: &str,
        slaves: &[String],
        options: &[BondOption],
        mtu: Option<u32>,
    ) -> Result<u32, LinkError> {
        let settings: Vec<InfoBond> = options
            .iter()
            .filter_map(|option| match option {
                BondOption::Setting(setting) => Some(setting.clone()),
                BondOption::Primary(_) => None,
            })
            .collect();
        let mut builder = LinkBond::new(name);
        for setting in &settings {
            builder = builder.append_info_data(setting.clone());
        }
        let created = self.handle.link().add(builder.build()).execute().await;
        let index = match created {
            Ok(()) => self.index_of(name).await?,
            Err(e) => match errno_of(&e) {
                Some(EEXIST) => match self.find_by_name(name).await? {
                    Some(link) if link.driver_kind.as_deref() == Some("bond") => {
                        self.set_bond_options(link.index, name, settings).await?;
                        link.index
                    }
                    _ => {
                        return Err(LinkError::Invalid {
                            what: "bond",
                            why: format!("{name:?} exists and is not a bond"),
                        });
                    }
                },
                Some(EOPNOTSUPP) => {
                    return Err(LinkError::Unsupported {
                        what: "bonding (CONFIG_BONDING, module bonding)",
                    });
                }
                _ => return Err(netlink(format!("creating bond {name:?}"))(e)),
            },
        };
        for slave in slaves {
            let slave_index = self.index_of(slave).await?;
            if self.get(slave_index).await?.controller == Some(index) {
                continue;
            }
            let down = LinkUnspec::new_with_index(slave_index).down().build();
            self.handle
                .link()
                .set(down)
                .execute()
                .await
                .map_err(|e| self.index_error(slave_index, &format!("taking {slave} down"), e))?;
            let enslave = LinkUnspec::new_with_index(slave_index)
                .controller(index)
                .build();
            self.handle
                .link()
                .set(enslave)
                .execute()
                .await
                .map_err(netlink(format!("enslaving {slave} to bond {name}")))?;
            self.set_up(slave_index).await?;
        }
        if let Some(mtu) = mtu {
            self.set_mtu(index, mtu).await?;
        }
        for option in options {
            if let BondOption::Primary(primary) = option {
                let primary_index = self.index_of(primary).await?;
                self.change_bond(index, vec![InfoBond::Primary(primary_index)])
                    .await
                    .map_err(|e| match errno_of(&e) {
                        Some(ENODEV) => LinkError::NoSuchIndex(index),
                        _ => netlink(format!("setting primary={primary} on bond {name}"))(e),
                    })?;
            }
        }
        self.set_up(index).await?;
        Ok(index)
    }

    /// Options on an existing bond: down first, as the kernel changes the mode only then.
    async fn set_bond_options(
        &self,
        index: u32,
        name: &str,
        settings: Vec<InfoBond>,
    ) -> Result<(), LinkError> {
        if settings.is_empty() {
            return Ok(());
        }
        self.set_down(index).await?;
        self.change_bond(index, settings)
            .await
            .map_err(netlink(format!("setting the options of bond {name}")))
    }

    /// RTM_NEWLINK on an existing bond with bonding attributes (`ip link set NAME type bond
    /// ...`).
    async fn change_bond(&self, index: u32, data: Vec<InfoBond>) -> Result<(), rtnetlink::Error> {
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bond)
            .index(index)
            .set_info_data(InfoData::Bond(data))
            .build();
        self.handle.link().change(msg).execute().await
    }
}
