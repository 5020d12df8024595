//! Trusted platform modules from /sys/class/tpm. The kernel says which TPM family a chip
//! speaks (`tpm_version_major`, Linux 5.6 and later); a TPM 1.2 also shows its manufacturer and
//! firmware in `caps`. A TPM 2.0 offers no manufacturer in sysfs (it has to be asked with
//! TPM2_GetCapability), so that stays absent.

use std::path::Path;

use crate::sysfs;

/// One TPM (`/sys/class/tpm/tpmN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tpm {
    /// The kernel's name (`tpm0`).
    pub name: String,
    /// The TPM family's major version: 1 (TPM 1.2) or 2 (TPM 2.0).
    pub version_major: Option<u32>,
    /// TPM 1.2 only: the TCG vendor id from `caps`, as its four ASCII letters when it is text
    /// (`IFX`), else as written (`0x12345678`).
    pub manufacturer: Option<String>,
    /// TPM 1.2 only: `Firmware version` from `caps` (`3.17`).
    pub firmware_version: Option<String>,
}

pub(crate) fn devices(sys: &Path) -> Vec<Tpm> {
    sysfs::entries(&sys.join("class/tpm"))
        .into_iter()
        .map(|(name, dir)| {
            // `caps` sits beside the class entry on older kernels and under device/ on newer.
            let caps = sysfs::text(&dir.join("caps"))
                .or_else(|| sysfs::text(&dir.join("device/caps")))
                .unwrap_or_default();
            let cap = |key: &str| {
                caps.lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.trim() == key)
                    .map(|(_, value)| value.trim().to_string())
                    .filter(|value| !value.is_empty())
            };
            let version_major = sysfs::number(&dir.join("tpm_version_major"))
                .and_then(|major| u32::try_from(major).ok())
                // Kernels before 5.6 have no tpm_version_major; a chip with 1.2 `caps` is a 1.2.
                .or_else(|| {
                    cap("TCG version")
                        .filter(|v| v.starts_with("1."))
                        .map(|_| 1)
                });
            Tpm {
                version_major,
                manufacturer: cap("Manufacturer").map(|id| vendor_name(&id)),
                firmware_version: cap("Firmware version"),
                name,
            }
        })
        .collect()
}

/// TCG vendor ids are four ASCII bytes (0x49465800 is "IFX\0"); show the letters when they
/// are letters, the id as written otherwise.
fn vendor_name(id: &str) -> String {
    let letters = u32::from_str_radix(id.trim_start_matches("0x"), 16)
        .ok()
        .map(|number| {
            number
                .to_be_bytes()
                .iter()
                .filter(|byte| **byte != 0)
                .map(|byte| char::from(*byte))
                .collect::<String>()
        })
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic()));
    letters.unwrap_or_else(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_vendor_ids_read_as_their_letters() {
        assert_eq!(vendor_name("0x49465800"), "IFX");
        assert_eq!(vendor_name("0x53544d20"), "STM");
        assert_eq!(vendor_name("0x00000001"), "0x00000001");
    }
}
