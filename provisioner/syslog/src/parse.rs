//! Parsing one syslog message: PRI, then an RFC 5424 header or an RFC 3164 one (or none).
//! Hand-written: the syslog crates on crates.io are senders, or parse only one of the two
//! formats and reject what real devices send instead of keeping the text.

use std::net::IpAddr;

use crate::{Message, Transport};

/// What a message without a PRI is filed as: user.notice, as RFC 3164 §4.3.3 has relays do.
pub const DEFAULT_FACILITY: u8 = 1;
/// The severity of a message without a PRI: 5, notice.
pub const DEFAULT_SEVERITY: u8 = 5;
/// RFC 5424's NILVALUE: the field is absent.
const NILVALUE: &str = "-";
/// The largest PRI (facility 23, severity 7).
const MAX_PRI: u16 = 191;
/// RFC 3164's limit on a TAG; longer first words are not taken for one.
const MAX_TAG_LEN: usize = 48;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A parsed message and whether it followed either RFC. Malformed messages are still
/// delivered, with whatever could be read and the rest as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// What could be read; the rest is in its text.
    pub message: Message,
    /// True if the message followed RFC 5424 or RFC 3164 (it had a PRI and a valid header).
    pub well_formed: bool,
}

/// Parses one frame (a datagram or a TCP frame). Invalid UTF-8 is replaced, never rejected;
/// trailing newlines and NULs are dropped.
pub fn parse(frame: &[u8], peer: IpAddr) -> Parsed {
    let decoded = String::from_utf8_lossy(frame);
    let text = decoded.trim_end_matches(['\n', '\r', '\0']);
    let mut message = Message {
        peer,
        facility: DEFAULT_FACILITY,
        severity: DEFAULT_SEVERITY,
        timestamp: None,
        hostname: None,
        app_name: None,
        proc_id: None,
        msg_id: None,
        text: String::new(),
        transport: Transport::Udp,
        client_certificate: None,
    };
    let Some((pri, rest)) = split_pri(text) else {
        message.text = text.to_string();
        return Parsed {
            message,
            well_formed: false,
        };
    };
    // split_pri accepts at most MAX_PRI (191): the facility fits a u8, never saturates.
    message.facility = u8::try_from(pri / 8).unwrap_or(u8::MAX);
    message.severity = (pri % 8) as u8;
    let well_formed = match rest.strip_prefix("1 ") {
        Some(header) => {
            let parsed = parse_rfc5424(header, &mut message).is_some();
            if !parsed {
                message.text = header.to_string();
            }
            parsed
        }
        None => {
            parse_rfc3164(rest, &mut message);
            true
        }
    };
    Parsed {
        message,
        well_formed,
    }
}

/// `<PRI>` with one to three digits and a value of at most 191.
fn split_pri(text: &str) -> Option<(u16, &str)> {
    let inner = text.strip_prefix('<')?;
    let end = inner.find('>')?;
    let digits = &inner[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pri = digits.parse().ok().filter(|pri| *pri <= MAX_PRI)?;
    Some((pri, &inner[end + 1..]))
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]` after `VERSION SP`.
/// `None` when a field is missing or the structured data is unterminated.
fn parse_rfc5424(header: &str, message: &mut Message) -> Option<()> {
    let mut rest = header;
    let mut field = || -> Option<Option<String>> {
        let (value, after) = rest.split_once(' ')?;
        rest = after;
        Some((value != NILVALUE).then(|| value.to_string()))
    };
    let timestamp = field()?;
    let hostname = field()?;
    let app_name = field()?;
    let proc_id = field()?;
    let msg_id = field()?;
    let after_data = skip_structured_data(rest)?;
    let text = match after_data.strip_prefix(' ') {
        Some(text) => text,
        None if after_data.is_empty() => "",
        None => return None,
    };
    message.timestamp = timestamp;
    message.hostname = hostname;
    message.app_name = app_name;
    message.proc_id = proc_id;
    message.msg_id = msg_id;
    message.text = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
    Some(())
}

/// Skips `-` or one or more `[ID PARAM="VALUE" ...]` elements, where a value may hold `\"`,
/// `\\` and `\]`; returns what follows.
fn skip_structured_data(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix(NILVALUE) {
        return Some(rest);
    }
    if !text.starts_with('[') {
        return None;
    }
    let bytes = text.as_bytes();
    let (mut in_element, mut in_value, mut escaped) = (false, false, false);
    for (index, byte) in bytes.iter().enumerate() {
        match (in_element, in_value) {
            (false, _) if *byte == b'[' => in_element = true,
            // Every special byte is ASCII, so `index` is a character boundary.
            (false, _) => return Some(&text[index..]),
            (true, true) if escaped => escaped = false,
            (true, true) if *byte == b'\\' => escaped = true,
            (true, true) if *byte == b'"' => in_value = false,
            (true, false) if *byte == b'"' => in_value = true,
            (true, false) if *byte == b']' => in_element = false,
            _ => {}
        }
    }
    (!in_element).then_some("")
}

/// `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, each part optional: without the timestamp only
/// a `TAG[PID]:` is taken (a plain `word:` is too likely to be text); never fails.
fn parse_rfc3164(text: &str, message: &mut Message) {
    let mut rest = text;
    let mut tag_needs_pid = true;
    if let Some((timestamp, after)) = split_rfc3164_timestamp(rest) {
        message.timestamp = Some(timestamp.to_string());
        tag_needs_pid = false;
        rest = after;
        if let Some((first, after)) = rest.split_once(' ')
            && split_tag(first).is_none()
        {
            message.hostname = Some(first.to_string());
            rest = after;
        }
    }
    let first_word = rest.split(' ').next().unwrap_or_default();
    match split_tag(first_word) {
        Some((app, pid)) if pid.is_some() || !tag_needs_pid => {
            message.app_name = Some(app.to_string());
            message.proc_id = pid.map(str::to_string);
            rest = rest[first_word.len()..].trim_start_matches(' ');
        }
        _ => {}
    }
    message.text = rest.to_string();
}

/// `Mmm dd hh:mm:ss ` (day space-padded) at the start of `text`.
fn split_rfc3164_timestamp(text: &str) -> Option<(&str, &str)> {
    let timestamp = text.get(..15)?;
    let rest = text.get(15..)?.strip_prefix(' ')?;
    let bytes = timestamp.as_bytes();
    let month_ok = timestamp
        .get(..3)
        .is_some_and(|month| MONTHS.contains(&month));
    let day_ok = bytes[3] == b' '
        && (bytes[4] == b' ' || bytes[4].is_ascii_digit())
        && bytes[5].is_ascii_digit()
        && bytes[6] == b' ';
    let time_ok = bytes[7..15].iter().enumerate().all(|(i, b)| {
        if i % 3 == 2 {
            *b == b':'
        } else {
            b.is_ascii_digit()
        }
    });
    (month_ok && day_ok && time_ok).then_some((timestamp, rest))
}

/// `TAG:` or `TAG[PID]:` → (tag, pid).
fn split_tag(word: &str) -> Option<(&str, Option<&str>)> {
    let tag = word.strip_suffix(':')?;
    let (name, pid) = match tag.split_once('[') {
        Some((name, pid)) => (name, Some(pid.strip_suffix(']')?)),
        None => (tag, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= MAX_TAG_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"[]:".contains(&b));
    (name_ok && pid.is_none_or(|pid| !pid.is_empty())).then_some((name, pid))
}
