//! Which boot file a network-boot client gets, if any: architecture table plus the policy.

use dhcproto::v4::Message;
use tracing::{debug, info};

use crate::client::{NetbootClass, machine_identifier, netboot_class, pxe_client};
use crate::{BootDecision, BootFiles, BootPolicy};

impl BootFiles {
    /// The names of the binaries in Debian's `ipxe` package (/usr/lib/ipxe), which the
    /// provisioner's TFTP server serves by default.
    pub fn debian_default() -> Self {
        BootFiles {
            bios: "undionly.kpxe".into(),
            uefi_x64: "ipxe.efi".into(),
            other: Vec::new(),
        }
    }

    /// The binary for an option-93 architecture: smee's table (0–5 and 20 BIOS; 6–9, 15
    /// and 16 UEFI x86), then [`BootFiles::other`].
    pub fn for_arch(&self, arch: u16) -> Option<&str> {
        match arch {
            0..=5 | 20 => Some(&self.bios),
            6..=9 | 15 | 16 => Some(&self.uefi_x64),
            _ => self
                .other
                .iter()
                .find(|(number, _)| *number == arch)
                .map(|(_, file)| file.as_str()),
        }
    }
}

/// Boot information to put in a reply.
#[derive(Debug, Clone)]
pub(crate) struct BootInfo {
    /// A TFTP file name, the iPXE script's http:// URL, or (UEFI HTTP boot) the EFI binary's URL.
    pub file: String,
    /// Whether the file is a binary to fetch over TFTP (a firmware PXE client).
    pub over_tftp: bool,
    pub class: NetbootClass,
    /// Option 93, for the logs.
    pub arch: Option<u16>,
    /// Option 97 as the client sent it: PXE clients expect it back.
    pub machine_identifier: Option<Vec<u8>>,
}

/// A network-boot client that gets no answer; the reason has been logged.
#[derive(Debug)]
pub(crate) struct Ignored;

/// Classifies the request and, for a network-boot client we could boot, asks the policy.
/// `Ok(None)`: not a network-boot client, so no boot information.
pub(crate) fn decide(
    message: &Message,
    mac: &str,
    boot_files: &BootFiles,
    policy: &dyn BootPolicy,
) -> Result<Option<BootInfo>, Ignored> {
    let Some(class) = netboot_class(message) else {
        return Ok(None);
    };
    let client = pxe_client(message, mac);
    let arch = client.arch;
    let target = match (client.is_ipxe, class, arch) {
        (true, _, _) => Target::Script,
        (false, NetbootClass::Http, Some(UEFI_HTTP_X64)) => Target::HttpBoot,
        (false, NetbootClass::Http, _) => {
            info!(%mac, ?arch, "not answering: UEFI HTTP boot is served to x64 clients (architecture 16) only; boot this machine with PXE instead");
            return Err(Ignored);
        }
        (false, NetbootClass::Pxe, None) => {
            info!(%mac, "not answering: PXE request without a client architecture (option 93)");
            return Err(Ignored);
        }
        (false, NetbootClass::Pxe, Some(number)) => match boot_files.for_arch(number) {
            Some(file) => Target::Tftp(file.to_owned()),
            None => {
                info!(%mac, arch = number, "not answering: no boot file for this client architecture (configure one for it)");
                return Err(Ignored);
            }
        },
    };
    let script_url = match policy.decide(&client) {
        BootDecision::Boot { script_url } => script_url,
        BootDecision::Ignore { reason } => {
            info!(%mac, ?arch, uuid = ?client.uuid, %reason, "not answering: boot policy");
            return Err(Ignored);
        }
    };
    let (file, over_tftp) = match target {
        Target::Tftp(file) => (file, true),
        Target::Script => (script_url, false),
        Target::HttpBoot => match policy.http_boot_url(&client) {
            Some(url) => (url, false),
            // Not Err: in full mode the client still gets an address, and HttpBootDxe, finding
            // no boot URI in it, fails at once and the firmware goes on to its next boot
            // entry (a provisioned node's disk) instead of waiting out DHCP retries.
            None => {
                info!(%mac, "no boot file for this UEFI HTTP boot client: HTTP boot is off (`serve --http-boot-uki`) or the node boots its local disk");
                return Ok(None);
            }
        },
    };
    debug!(%mac, ?arch, is_ipxe = client.is_ipxe, %file, "boot file chosen");
    Ok(Some(BootInfo {
        file,
        over_tftp,
        class,
        arch,
        machine_identifier: machine_identifier(message).map(<[u8]>::to_vec),
    }))
}

/// Option 93 of a UEFI x64 HTTP boot client (RFC 4578 §2.1 as extended by IANA's
/// "Processor Architecture Types": 16 = x64 UEFI HTTP).
const UEFI_HTTP_X64: u16 = 16;

/// What a network-boot client is handed.
enum Target {
    /// A firmware PXE client: this iPXE binary over TFTP.
    Tftp(String),
    /// iPXE: the policy's script URL.
    Script,
    /// UEFI HTTP boot firmware: the policy's HTTP boot URL (an EFI binary, no iPXE).
    HttpBoot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_map_to_the_binaries_smee_uses() {
        let mut files = BootFiles::debian_default();
        files.other.push((11, "snp-arm64.efi".into()));
        for bios in [0, 1, 5, 20] {
            assert_eq!(files.for_arch(bios), Some("undionly.kpxe"), "arch {bios}");
        }
        for uefi in [6, 7, 9, 15, 16] {
            assert_eq!(files.for_arch(uefi), Some("ipxe.efi"), "arch {uefi}");
        }
        assert_eq!(files.for_arch(11), Some("snp-arm64.efi"));
        assert_eq!(files.for_arch(12), None);
    }
}
