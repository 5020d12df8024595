//! What a request says about its client: MAC, netboot vendor class, architecture, UUID, iPXE.

use dhcproto::v4::{DhcpOption, HType, Message, OptionCode};
use std::net::Ipv4Addr;

use crate::PxeClient;

/// iPXE's encapsulated options; only iPXE sends it.
const IPXE_ENCAPSULATED_OPTIONS: u8 = 175;

/// How a network-boot client announced itself in option 60; replies echo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetbootClass {
    Pxe,
    /// UEFI HTTP boot: wants an http:// URL of a binary, not TFTP.
    Http,
}

impl NetbootClass {
    pub(crate) fn vendor_class(self) -> &'static [u8] {
        match self {
            NetbootClass::Pxe => b"PXEClient",
            NetbootClass::Http => b"HTTPClient",
        }
    }
}

/// The client's MAC as `aa:bb:cc:dd:ee:ff`, if its hardware address is Ethernet (the only
/// kind we serve). Checked before `chaddr()`, which slices by the packet's own hlen.
pub(crate) fn client_mac(message: &Message) -> Option<String> {
    if message.htype() != HType::Eth || message.hlen() != 6 {
        return None;
    }
    let octets: Vec<String> = message
        .chaddr()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Some(octets.join(":"))
}

pub(crate) fn netboot_class(message: &Message) -> Option<NetbootClass> {
    let Some(DhcpOption::ClassIdentifier(class)) = message.opts().get(OptionCode::ClassIdentifier)
    else {
        return None;
    };
    if class.starts_with(b"PXEClient") {
        Some(NetbootClass::Pxe)
    } else if class.starts_with(b"HTTPClient") {
        Some(NetbootClass::Http)
    } else {
        None
    }
}

pub(crate) fn pxe_client(message: &Message, mac: &str) -> PxeClient {
    let arch = match message.opts().get(OptionCode::ClientSystemArchitecture) {
        Some(DhcpOption::ClientSystemArchitecture(arch)) => Some(u16::from(*arch)),
        _ => None,
    };
    let giaddr = message.giaddr();
    PxeClient {
        mac: mac.to_owned(),
        arch,
        uuid: machine_identifier(message).and_then(client_uuid),
        is_ipxe: is_ipxe(message),
        relay: (giaddr != Ipv4Addr::UNSPECIFIED).then_some(giaddr),
    }
}

/// Option 97 as sent, for echoing back.
pub(crate) fn machine_identifier(message: &Message) -> Option<&[u8]> {
    match message.opts().get(OptionCode::ClientMachineIdentifier) {
        Some(DhcpOption::ClientMachineIdentifier(raw)) => Some(raw),
        _ => None,
    }
}

/// Option 97 is type 0 followed by a 16-byte GUID whose first three fields are
/// little-endian (see the crate docs); returns the standard lower-case UUID string.
fn client_uuid(raw: &[u8]) -> Option<String> {
    let [0, guid @ ..] = raw else { return None };
    let guid: &[u8; 16] = guid.try_into().ok()?;
    let time_low = u32::from_le_bytes([guid[0], guid[1], guid[2], guid[3]]);
    let time_mid = u16::from_le_bytes([guid[4], guid[5]]);
    let time_hi = u16::from_le_bytes([guid[6], guid[7]]);
    let tail: String = guid[8..].iter().map(|byte| format!("{byte:02x}")).collect();
    Some(format!(
        "{time_low:08x}-{time_mid:04x}-{time_hi:04x}-{}-{}",
        &tail[..4],
        &tail[4..]
    ))
}

/// iPXE sends user class 77 as the bare string `iPXE` (not RFC 3004's length-prefixed
/// list), and always option 175; accept either form of 77.
fn is_ipxe(message: &Message) -> bool {
    if message
        .opts()
        .get(OptionCode::Unknown(IPXE_ENCAPSULATED_OPTIONS))
        .is_some()
    {
        return true;
    }
    match message.opts().get(OptionCode::UserClass) {
        Some(DhcpOption::UserClass(class)) => {
            class.as_slice() == b"iPXE" || class.as_slice() == b"\x04iPXE"
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::UnknownOption;

    fn request_with(options: Vec<DhcpOption>) -> Message {
        let mut message = Message::default();
        message.set_chaddr(&[0x52, 0x54, 0x00, 0xAB, 0xCD, 0x01]);
        for option in options {
            message.opts_mut().insert(option);
        }
        message
    }

    #[test]
    fn uuid_from_option_97_matches_the_smbios_string_linux_shows() {
        // SMBIOS 4c4c4544-0042-3510-8052-b4c04f4b4d32 as iPXE puts it on the wire.
        let wire = [
            0x00, 0x44, 0x45, 0x4c, 0x4c, 0x42, 0x00, 0x10, 0x35, 0x80, 0x52, 0xb4, 0xc0, 0x4f,
            0x4b, 0x4d, 0x32,
        ];
        let message = request_with(vec![DhcpOption::ClientMachineIdentifier(wire.to_vec())]);
        let client = pxe_client(&message, "52:54:00:ab:cd:01");
        assert_eq!(
            client.uuid.as_deref(),
            Some("4c4c4544-0042-3510-8052-b4c04f4b4d32")
        );
    }

    #[test]
    fn option_97_of_the_wrong_type_or_length_gives_no_uuid() {
        assert_eq!(client_uuid(&[]), None);
        assert_eq!(client_uuid(&[1; 17]), None);
        assert_eq!(client_uuid(&[0; 10]), None);
    }

    #[test]
    fn mac_is_lower_case_and_only_for_ethernet() {
        let message = request_with(vec![]);
        assert_eq!(client_mac(&message).as_deref(), Some("52:54:00:ab:cd:01"));
        let mut long = Message::default();
        long.set_chaddr(&[1; 16]);
        assert_eq!(client_mac(&long), None);
    }

    #[test]
    fn ipxe_is_recognised_by_user_class_or_option_175() {
        let bare = request_with(vec![DhcpOption::UserClass(b"iPXE".to_vec())]);
        let listed = request_with(vec![DhcpOption::UserClass(b"\x04iPXE".to_vec())]);
        let encapsulated = request_with(vec![DhcpOption::Unknown(UnknownOption::new(
            OptionCode::Unknown(175),
            vec![1, 1, 1],
        ))]);
        let firmware = request_with(vec![DhcpOption::UserClass(b"Tinkerbell".to_vec())]);
        assert!(is_ipxe(&bare));
        assert!(is_ipxe(&listed));
        assert!(is_ipxe(&encapsulated));
        assert!(!is_ipxe(&firmware));
    }

    #[test]
    fn vendor_class_says_pxe_or_http_boot() {
        let pxe = request_with(vec![DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00007:UNDI:003016".to_vec(),
        )]);
        let http = request_with(vec![DhcpOption::ClassIdentifier(
            b"HTTPClient:Arch:00016".to_vec(),
        )]);
        let other = request_with(vec![DhcpOption::ClassIdentifier(b"udhcp 1.35".to_vec())]);
        assert_eq!(netboot_class(&pxe), Some(NetbootClass::Pxe));
        assert_eq!(netboot_class(&http), Some(NetbootClass::Http));
        assert_eq!(netboot_class(&other), None);
        assert_eq!(netboot_class(&request_with(vec![])), None);
    }
}
