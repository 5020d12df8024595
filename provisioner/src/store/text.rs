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

#[cfg(test)]
mod tests {
    use super::*;

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
