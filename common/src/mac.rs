//! The one Ethernet MAC address type of the bootkit: the init's command line, the installer's
//! config, device discovery and the provisioner's store all parse and show MACs through it, so
//! `52-54-00-12-34-56` from a HookOS command line and `52:54:00:12:34:56` from an operator's
//! CSV name the same machine everywhere.

use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address. Parsed from six two-digit hex octets separated all by `:` or all
/// by `-` (HookOS's `ipam=` needs `-` because `:` separates its fields; pxelinux's `BOOTIF`
/// and OEP's CSVs use either); always shown lowercase with `:`, networkd's and the kernel's
/// form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// A text that is not a MAC address; the message quotes it and shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "MAC address {0:?} is malformed: expected six two-digit hex octets separated by ':' or \
     '-', e.g. 52:54:00:12:34:56"
)]
pub struct MacAddrError(pub String);

impl MacAddr {
    /// The six octets.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether the address is usable as a machine's identity: not all zeros (an unset NIC)
    /// and not a multicast/broadcast address.
    pub fn is_unicast_identity(self) -> bool {
        self.0 != [0; 6] && self.0[0] & 0x01 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    /// Never indexes by position: the text may come from a garbled command line read by
    /// PID 1, which must not panic.
    fn from_str(text: &str) -> Result<MacAddr, MacAddrError> {
        let problem = || MacAddrError(text.to_string());
        let separator = if text.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut count = 0;
        for part in text.split(separator) {
            let slot = octets.get_mut(count).ok_or_else(problem)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(problem());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| problem())?;
            count += 1;
        }
        if count == octets.len() {
            Ok(MacAddr(octets))
        } else {
            Err(problem())
        }
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_separators_name_the_same_address_shown_lowercase_with_colons() {
        let colon: MacAddr = "52:54:00:AB:cd:01".parse().unwrap();
        let dash: MacAddr = "52-54-00-ab-CD-01".parse().unwrap();
        assert_eq!(colon, dash);
        assert_eq!(colon.to_string(), "52:54:00:ab:cd:01");
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_expected_form() {
        for text in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00-12:34:56",
            "5:54:00:12:34:56",
            "52:54:00:12:34:5g",
            "52:54:00:12:34:é6",
            "::::::",
        ] {
            let error = text.parse::<MacAddr>().unwrap_err();
            assert!(
                error.to_string().contains("e.g. 52:54:00:12:34:56"),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn identity_rule_drops_zero_and_multicast_addresses() {
        for (text, names_a_machine) in [
            ("52:54:00:12:34:56", true),
            ("00:00:00:00:00:00", false),
            ("ff:ff:ff:ff:ff:ff", false),
            ("01:00:5e:00:00:01", false),
        ] {
            let mac: MacAddr = text.parse().unwrap();
            assert_eq!(mac.is_unicast_identity(), names_a_machine, "{text}");
        }
    }

    #[test]
    fn serde_round_trips_as_the_shown_text() {
        let mac: MacAddr = serde_json::from_str("\"52-54-00-12-34-56\"").unwrap();
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"52:54:00:12:34:56\""
        );
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }
}
