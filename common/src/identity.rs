//! What names a machine, and which values do not: the rules the agents (hwinfo, device
//! discovery, the tink-worker) read a machine with and the provisioner matches registrations
//! with, so a value the node drops is a value the provisioner refuses, and a UUID the node
//! sends is the UUID an operator registered.

/// Values firmware vendors leave in SMBIOS strings they never filled in, compared ignoring case.
const PLACEHOLDERS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system serial number",
    "chassis serial number",
    "base board serial number",
    "not specified",
    "not applicable",
    "none",
    "n/a",
    "oem",
    "o.e.m.",
    "0123456789",
    "123456789",
];

/// Whether a serial number, UUID or MAC is a firmware placeholder rather than real information:
/// a known placeholder text, or nothing but zeros (or nothing but F's, the unset UUID) and
/// separators. Every unconfigured board shares such a value, so nothing may match machines on it.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    let digits: String = lower
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | ' ' | '.'))
        .collect();
    digits.is_empty()
        || digits.chars().all(|c| c == '0')
        || digits.chars().all(|c| c == 'f')
        || PLACEHOLDERS.contains(&lower.as_str())
}

/// A text that cannot name a machine as its UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UuidError {
    /// A value firmware writes where no UUID was set (all zeros, all `f`, a known placeholder);
    /// carries it.
    #[error("UUID {0:?} is a placeholder, not a UUID")]
    Placeholder(String),
    /// Not a UUID in any form the `uuid` crate parses.
    #[error("{text:?} is not a UUID: {reason}")]
    Malformed {
        /// The text as given.
        text: String,
        /// The parser's reason.
        reason: String,
    },
}

/// A machine's UUID in the one form it is stored and compared in: lowercase, hyphenated
/// (`4c4c4544-0042-3510-8052-b4c04f4e3732`), whichever notation it came in (SMBIOS's
/// uppercase `product_uuid`, iPXE's `${uuid}`, an operator's CSV with braces or without
/// hyphens). Placeholders (all zeros, all F's) are refused: they name no machine.
pub fn normalize_uuid(text: &str) -> Result<String, UuidError> {
    let text = text.trim();
    if is_placeholder(text) {
        return Err(UuidError::Placeholder(text.to_string()));
    }
    uuid::Uuid::parse_str(text)
        .map(|parsed| parsed.hyphenated().to_string())
        .map_err(|error| UuidError::Malformed {
            text: text.to_string(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised_and_real_values_are_not() {
        for placeholder in [
            "To Be Filled By O.E.M.",
            "Default string",
            "System Serial Number",
            "0000000000",
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "00:00:00:00:00:00",
            "  ",
        ] {
            assert!(
                is_placeholder(placeholder),
                "{placeholder:?} should be a placeholder"
            );
        }
        for real in [
            "PF2ABC01",
            "4C4C4544-0042-3510-8052-B4C04F4E3732",
            "Dell Inc.",
            "100",
        ] {
            assert!(!is_placeholder(real), "{real:?} is a real value");
        }
    }

    #[test]
    fn every_notation_of_a_uuid_gives_the_one_stored_form() {
        let stored = "4c4c4544-0042-3510-8052-b4c04f4e3732";
        for text in [
            "4C4C4544-0042-3510-8052-B4C04F4E3732",
            " 4c4c4544-0042-3510-8052-b4c04f4e3732\n",
            "{4c4c4544-0042-3510-8052-b4c04f4e3732}",
            "4c4c4544004235108052b4c04f4e3732",
        ] {
            assert_eq!(normalize_uuid(text).as_deref(), Ok(stored), "{text:?}");
        }
    }

    #[test]
    fn placeholder_and_malformed_uuids_are_refused_saying_which() {
        assert_eq!(
            normalize_uuid("00000000-0000-0000-0000-000000000000"),
            Err(UuidError::Placeholder(
                "00000000-0000-0000-0000-000000000000".to_string()
            ))
        );
        let error = normalize_uuid("not-a-uuid").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("\"not-a-uuid\" is not a UUID: "),
            "{error}"
        );
    }
}
