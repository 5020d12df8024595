//! The one rule every name, id and free-text value a user or a node gives passes before it
//! is stored: no control characters, and a bounded length.
//!
//! Control characters in stored text are shown later as they are, on the page, in the CLI's
//! tables, in logs and in rendered templates: an ESC moves a terminal's cursor, a newline
//! forges a log line or a table row, a NUL cuts a C reader's string. Refusing them on the
//! way in, naming the field, is simpler and safer than escaping them on every way out.

use std::collections::BTreeMap;

use crate::template::FieldError;

/// The longest value accepted, in bytes. Generous for every field this guards (SMBIOS
/// serials are 64 bytes, host names 253, the kernel command line of x86 is 2,048) while
/// keeping one request from storing megabytes in a name.
pub(crate) const MAX_TEXT_BYTES: usize = 4096;

/// Refuses `value` for `field` if it holds a C0 (U+0000–U+001F, TAB included) or C1
/// (U+007F–U+009F) control character, or is longer than [`MAX_TEXT_BYTES`]: for names, ids
/// and one-line settings.
///
/// TAB is refused here: every value this guards is shown in a column of the CLI's tables
/// and in one-line logs, where a TAB shifts the columns just as a newline adds a row.
pub(crate) fn plain_text(field: &str, value: &str) -> Result<(), FieldError> {
    checked(field, value, &[])
}

/// [`plain_text`] for free text (a registration's metadata values: cloud-config user-data,
/// a list of public keys): TAB and LF are allowed, being how such text is laid out (an
/// indented YAML block, one key a line); every other control character is refused, CR too
/// (it moves a terminal's cursor back over what was shown: save the file with LF endings).
pub(crate) fn free_text(field: &str, value: &str) -> Result<(), FieldError> {
    checked(field, value, &['\t', '\n'])
}

/// The one rule: control characters other than `allowed` and overlong values are refused.
fn checked(field: &str, value: &str, allowed: &[char]) -> Result<(), FieldError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "is {} bytes long; at most {MAX_TEXT_BYTES} are accepted",
                value.len()
            ),
        ));
    }
    if let Some((position, bad)) = value
        .char_indices()
        .find(|(_, c)| c.is_control() && !allowed.contains(c))
    {
        let kind = if allowed.is_empty() {
            "names, ids and settings must be plain one-line text"
        } else {
            "free text may hold tabs and line feeds but no other control characters"
        };
        return Err(FieldError::new(
            field,
            format!(
                "contains the control character U+{:04X} at byte {position} ({value:?}); \
                 {kind}: remove it",
                u32::from(bad)
            ),
        ));
    }
    Ok(())
}

/// [`plain_text`] for an optional value: absent is fine.
pub(crate) fn plain_optional(field: &str, value: Option<&str>) -> Result<(), FieldError> {
    value.map_or(Ok(()), |value| plain_text(field, value))
}

/// A string map (a workflow's hardware map, a registration's metadata): every key is
/// [`plain_text`], every value passes `check` ([`plain_text`] or [`free_text`]). A value's
/// error names `field.key`, a key's error `field`.
pub(crate) fn plain_map(
    field: &str,
    map: &BTreeMap<String, String>,
    check: fn(&str, &str) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    for (key, value) in map {
        // The key is not put in the field's name before it is known to be plain.
        plain_text(field, key)
            .map_err(|error| FieldError::new(field, format!("a key {}", error.reason)))?;
        check(&format!("{field}.{key}"), value)?;
    }
    Ok(())
}

/// The longest serial number accepted, in bytes: an SMBIOS string is at most 255 bytes long
/// (its table's string set is addressed by byte), real serials are far shorter.
pub(crate) const MAX_SERIAL_BYTES: usize = 255;

/// A serial number a node reports: printable ASCII (U+0020–U+007E), at most
/// [`MAX_SERIAL_BYTES`]. SMBIOS strings are ASCII in practice (dmidecode shows other bytes as
/// dots), and so are the labels an operator matches them with; anything else in a serial is a
/// broken or hostile report, refused naming the field.
pub(crate) fn serial(field: &str, value: &str) -> Result<(), FieldError> {
    plain_text(field, value)?;
    if value.len() > MAX_SERIAL_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "is {} bytes long; a serial number has at most {MAX_SERIAL_BYTES}",
                value.len()
            ),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(FieldError::new(
            field,
            format!(
                "contains {bad:?} (U+{:04X}); a serial number is printable ASCII: report the \
                 SMBIOS value as the firmware holds it",
                u32::from(bad)
            ),
        ));
    }
    Ok(())
}

/// An IP address a node reports: IPv4 dotted quad or IPv6, as `std::net::IpAddr` parses it.
pub(crate) fn ip_address(field: &str, value: &str) -> Result<(), FieldError> {
    plain_text(field, value)?;
    value
        .trim()
        .parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| {
            FieldError::new(
                field,
                format!(
                    "{value:?} is not an IPv4 or IPv6 address; report the address the node uses"
                ),
            )
        })
}

/// How deep a node's hardware document may nest: upstream's inventory is 6 levels deep, and a
/// walk of a document nested without bound would exhaust the stack.
pub(crate) const MAX_DOCUMENT_DEPTH: usize = 32;

/// Every key and string of a JSON document a node reports (its hardware attributes) is
/// [`plain_text`]; the error names the value's path (`attributes.inBand.product.name`).
pub(crate) fn document_strings(field: &str, value: &serde_json::Value) -> Result<(), FieldError> {
    document_strings_at(field, value, 0)
}

fn document_strings_at(
    field: &str,
    value: &serde_json::Value,
    depth: usize,
) -> Result<(), FieldError> {
    use serde_json::Value;
    if depth > MAX_DOCUMENT_DEPTH {
        return Err(FieldError::new(
            field,
            format!("nests deeper than {MAX_DOCUMENT_DEPTH} levels; no inventory needs that"),
        ));
    }
    match value {
        Value::String(text) => plain_text(field, text),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(index, item)| {
            document_strings_at(&format!("{field}[{index}]"), item, depth + 1)
        }),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            // The key is checked before it is put in the field's name.
            plain_text(field, key)
                .map_err(|error| FieldError::new(field, format!("a key {}", error.reason)))?;
            document_strings_at(&format!("{field}.{key}"), item, depth + 1)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// The one escaping rule of what is shown, in bootkit-common (the init's messages use it too).
pub use bootkit_common::shown::shown;

#[cfg(test)]
mod tests {
    use super::*;

    /// The serial (a quote and newlines), tabs and Unicode separators are refused
    /// naming the field; a serial with YAML's or Go template's punctuation is an ASCII serial.
    #[test]
    fn a_serial_is_printable_ascii() {
        for bad in [
            "x\"\n  - name: evil\n    image: attacker/evil",
            "a\tb",
            "a\u{2028}b",
            "caf\u{e9}",
            &"S".repeat(MAX_SERIAL_BYTES + 1),
        ] {
            let error = serial("serialnum", bad).unwrap_err();
            assert_eq!(error.field, "serialnum", "{bad:?}");
        }
        for good in ["SN-0042", "To Be Filled By O.E.M.", "x\" {{.a}} #&*!!"] {
            assert!(serial("serialnum", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn an_ip_address_is_one() {
        assert!(ip_address("host_ip", "10.0.0.9").is_ok());
        assert!(ip_address("host_ip", "fe80::1").is_ok());
        for bad in ["10.0.0.256", "10.0.0.9; rm", "host", ""] {
            let error = ip_address("host_ip", bad).unwrap_err();
            assert_eq!(error.field, "host_ip", "{bad:?}");
        }
    }

    #[test]
    fn a_document_names_the_path_of_a_bad_string() {
        let document =
            serde_json::json!({"inBand": {"disks": [{"name": "sda"}, {"name": "a\u{1b}[2J"}]}});
        let error = document_strings("attributes", &document).unwrap_err();
        assert_eq!(error.field, "attributes.inBand.disks[1].name", "{error}");
        let mut deep = serde_json::json!("x");
        for _ in 0..=MAX_DOCUMENT_DEPTH {
            deep = serde_json::json!([deep]);
        }
        assert!(document_strings("attributes", &deep).is_err());
        assert!(document_strings("attributes", &serde_json::json!({"inBand": {"cpu": 4}})).is_ok());
    }

    /// `char::is_control` is Unicode's general category Cc, which is exactly C0, DEL and C1:
    /// checked against the code points themselves, not against the function.
    #[test]
    fn refuses_exactly_c0_del_and_c1() {
        for code in 0..=0x10FFFF_u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let control = code <= 0x1F || (0x7F..=0x9F).contains(&code);
            assert_eq!(
                plain_text("name", &format!("a{c}b")).is_err(),
                control,
                "U+{code:04X}"
            );
        }
    }

    #[test]
    fn names_the_field_and_the_character() {
        let error = plain_text("serial", "AB\u{1b}[2J").unwrap_err();
        assert_eq!(error.field, "serial");
        assert!(
            error.reason.contains("U+001B at byte 2"),
            "{}",
            error.reason
        );
    }

    #[test]
    fn free_text_allows_tab_and_line_feed_only() {
        assert!(free_text("metadata.user_data", "#cloud-config\nruncmd:\n\t- x\n").is_ok());
        for bad in ["a\rb", "a\u{1b}b", "a\0b", "a\u{85}b"] {
            assert!(free_text("metadata.user_data", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bounds_the_length() {
        assert!(plain_text("name", &"x".repeat(MAX_TEXT_BYTES)).is_ok());
        let error = plain_text("name", &"x".repeat(MAX_TEXT_BYTES + 1)).unwrap_err();
        assert!(error.reason.contains("at most 4096"), "{}", error.reason);
    }
}
