//! Tinkerbell's static addressing key, which smee writes into HookOS ISOs:
//!
//! `ipam=<mac-address>:<vlan-id>:<ip-address>:<netmask>:<gateway>:<hostname>:<dns>:<search-domains>:<ntp>`
//!
//! Field semantics from smee's docs/ISO-Static-IPAM.md and HookOS's files/static-network.sh
//! (tinkerbell/smee, tinkerbell/hook):
//!
//! | field          | required | meaning                                                     |
//! |----------------|----------|-------------------------------------------------------------|
//! | mac-address    | yes      | the interface's MAC in dash notation (`:` separates fields) |
//! | vlan-id        | no       | empty: untagged; else the address goes on `<iface>.<vlan>`  |
//! | ip-address     | yes      | IPv4 address                                                |
//! | netmask        | yes      | dotted netmask (a prefix length is accepted too)            |
//! | gateway        | no       | IPv4 default gateway                                        |
//! | hostname       | no       | short or fully qualified                                    |
//! | dns            | yes      | comma list of IPv4 name servers                             |
//! | search-domains | no       | comma list                                                  |
//! | ntp            | no       | comma list of IPv4 NTP servers (names accepted here too)    |
//!
//! HookOS refuses the whole line (and stays unconfigured) when a required field is missing;
//! we refuse it too, and the boot goes on with DHCP. HookOS reads the fields with the shell's
//! `read`, which folds surplus fields into the last one; we report them instead, since they
//! usually mean a MAC written with colons.

use super::values;
use super::{AddressMethod, InterfaceConfig, InterfaceTarget, StaticAddress};

const FORM: &str =
    "<mac-with-dashes>:<vlan>:<ip>:<netmask>:<gateway>:<hostname>:<dns>:<search>:<ntp>";
const FIELD_COUNT: usize = 9;

pub fn ipam(value: &str) -> Result<InterfaceConfig, String> {
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() > FIELD_COUNT {
        return Err(format!(
            "{} fields where there are {FIELD_COUNT} (is the MAC written with ':' instead of \
             '-'?): expected {FORM}",
            fields.len()
        ));
    }
    // Missing trailing fields are empty, as they are for HookOS's `read`.
    let field = |index: usize| fields.get(index).copied().unwrap_or("");
    let required = |index: usize, name: &str| {
        let text = field(index);
        if text.is_empty() {
            Err(format!("the {name} field is required: expected {FORM}"))
        } else {
            Ok(text)
        }
    };

    let mac = values::mac(required(0, "MAC")?)?;
    let vlan_id = match field(1) {
        "" => None,
        vlan => Some(values::vlan_id(vlan)?),
    };
    let address = values::ipv4("IP address", required(2, "IP address")?)?;
    let prefix_len = values::prefix_len("netmask", required(3, "netmask")?)?;
    let gateway = values::optional_ipv4("gateway", field(4))?;
    let hostname = values::optional_hostname(field(5))?;
    let dns = values::comma_list(required(6, "DNS")?, |server| {
        values::ipv4("DNS server", server)
    })?;
    if dns.is_empty() {
        return Err(format!("the DNS field is required: expected {FORM}"));
    }
    let search = values::comma_list(field(7), values::domain_name)?;
    let ntp_servers = values::comma_list(field(8), values::ntp_server)?;

    let method = AddressMethod::Static(StaticAddress {
        address,
        prefix_len,
        gateway,
        peer: None,
        peer_prefix_len: None,
    });
    let mut config = InterfaceConfig::new("ipam", InterfaceTarget::Mac(mac), method);
    config.vlan_id = vlan_id;
    config.hostname = hostname;
    config.dns = dns;
    config.search = search;
    config.ntp_servers = ntp_servers;
    Ok(config)
}
