//! Text from outside (a node, an archive, an API client) made safe to show on a terminal
//! or in a log line: nothing in it can move the cursor, clear the screen, end the line or
//! reorder what follows.

/// `text` as it is safe to show on a terminal or in a log: every control character (C0, DEL,
/// C1) not in `keep`, and the Unicode characters that reorder or break what is shown (line and
/// paragraph separators, bidirectional overrides and isolates), is written as Rust escapes it
/// (`\u{1b}`, `\r`, `\0`); everything else is kept. The one escaping rule of everything the
/// tools show that came from a node, an archive or the API: the provisioner refuses such
/// characters on the way in, but log lines and records stored before that rule, and error
/// messages quoting what a node or an archive sent, are shown with this.
pub fn shown<'a>(text: &'a str, keep: &[char]) -> std::borrow::Cow<'a, str> {
    let escaped = |c: char| {
        !keep.contains(&c)
            && (c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    };
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !escaped(c) {
            out.push(c);
        } else if c.is_control() {
            // `\n`, `\r`, `\t`, `\0` by name, the rest as `\u{..}`.
            out.extend(c.escape_debug());
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log line that clears the screen, returns the cursor and cuts a C string is shown as
    /// its escapes; the escapes are Rust's (`\u{1b}`), as `printf '%q'`-like readers expect.
    #[test]
    fn shown_escapes_what_moves_a_terminal() {
        assert_eq!(
            shown("boot\u{1b}[2J\rok\0\u{9b}", &[]),
            "boot\\u{1b}[2J\\rok\\0\\u{9b}"
        );
        assert_eq!(shown("a\nb\tc", &['\n', '\t']), "a\nb\tc");
        assert_eq!(shown("a\nb", &[]), "a\\nb");
        assert_eq!(shown("x\u{2028}y\u{202E}z", &[]), "x\\u{2028}y\\u{202e}z");
        assert_eq!(shown("plain é 日本", &[]), "plain é 日本");
    }
}
