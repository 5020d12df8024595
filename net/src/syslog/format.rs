//! RFC 5424 messages: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The nil value of RFC 5424: the field is unknown or empty.
pub const NILVALUE: &str = "-";
/// RFC 5424 section 6: the longest HOSTNAME and APP-NAME.
pub const MAX_HOSTNAME_LEN: usize = 255;
/// The longest APP-NAME, in bytes; longer names are cut.
pub const MAX_APP_NAME_LEN: usize = 48;

/// RFC 5424 table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Facility {
    /// Kernel messages.
    Kern = 0,
    /// User-level messages.
    User = 1,
    /// Mail system.
    Mail = 2,
    /// System daemons: the bootkit's init and services.
    #[default]
    Daemon = 3,
    /// Security and authorization.
    Auth = 4,
    /// Messages syslogd itself generates.
    Syslog = 5,
    /// Line printer subsystem.
    Lpr = 6,
    /// Network news subsystem.
    News = 7,
    /// UUCP subsystem.
    Uucp = 8,
    /// Clock daemon (cron).
    Cron = 9,
    /// Security and authorization, private.
    AuthPriv = 10,
    /// FTP daemon.
    Ftp = 11,
    /// NTP subsystem.
    Ntp = 12,
    /// Log audit.
    LogAudit = 13,
    /// Log alert.
    LogAlert = 14,
    /// Clock daemon (the second one).
    Clock = 15,
    /// Local use 0.
    Local0 = 16,
    /// Local use 1.
    Local1 = 17,
    /// Local use 2.
    Local2 = 18,
    /// Local use 3.
    Local3 = 19,
    /// Local use 4.
    Local4 = 20,
    /// Local use 5.
    Local5 = 21,
    /// Local use 6.
    Local6 = 22,
    /// Local use 7.
    Local7 = 23,
}

/// RFC 5424 table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The system is unusable.
    Emergency = 0,
    /// Action must be taken immediately.
    Alert = 1,
    /// Critical conditions.
    Critical = 2,
    /// Error conditions.
    Error = 3,
    /// Warning conditions.
    Warning = 4,
    /// Normal but significant.
    Notice = 5,
    /// Informational messages.
    Informational = 6,
    /// Debug-level messages.
    Debug = 7,
}

/// PRI = facility × 8 + severity.
pub fn priority(facility: Facility, severity: Severity) -> u8 {
    (facility as u8) * 8 + severity as u8
}

/// One message in RFC 5424 form, without framing or a trailing newline.
///
/// PROCID, MSGID and STRUCTURED-DATA are NILVALUE. HOSTNAME and APP-NAME are made valid
/// rather than refused (a log line must not be lost over a bad name): characters outside
/// printable US-ASCII (spaces included) become `_`, the length is cut to the RFC's limit, and
/// an empty value becomes NILVALUE. The timestamp is NILVALUE when the clock reads before 1970
/// or after 9999, as RFC 5424 asks for a clock known to be wrong. MSG is UTF-8 without a BOM,
/// one trailing newline removed; an empty MSG is left out with its space.
pub fn format_rfc5424(
    facility: Facility,
    severity: Severity,
    timestamp: SystemTime,
    hostname: &str,
    app_name: &str,
    msg: &str,
) -> String {
    let msg = msg.trim_end_matches(['\n', '\r']);
    let mut line = format!(
        "<{}>1 {} {} {} {NILVALUE} {NILVALUE} {NILVALUE}",
        priority(facility, severity),
        Rfc3339(timestamp),
        header_field(hostname, MAX_HOSTNAME_LEN),
        header_field(app_name, MAX_APP_NAME_LEN),
    );
    if !msg.is_empty() {
        line.push(' ');
        line.push_str(msg);
    }
    line
}

/// A header field as RFC 5424 allows it: 1 to `max` characters of PRINTUSASCII (33 to 126).
pub fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if field.is_empty() {
        NILVALUE.to_string()
    } else {
        field
    }
}

/// A time as RFC 3339 in UTC with microseconds, `2024-01-02T03:04:05.123456Z`, or NILVALUE
/// outside years 1970 to 9999.
pub struct Rfc3339(pub SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(since_epoch) = self.0.duration_since(UNIX_EPOCH) else {
            return f.write_str(NILVALUE);
        };
        let seconds = since_epoch.as_secs();
        let (year, month, day) = civil_from_days(seconds / 86_400);
        if year > 9999 {
            return f.write_str(NILVALUE);
        }
        let in_day = seconds % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            in_day / 3600,
            in_day / 60 % 60,
            in_day % 60,
            since_epoch.subsec_micros()
        )
    }
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros)
    }

    #[test]
    fn full_line() {
        // 2003-10-11T22:14:15.003Z, RFC 5424's own example time.
        let line = format_rfc5424(
            Facility::Daemon,
            Severity::Informational,
            at(1_065_910_455, 3_000),
            "52:54:00:12:34:56",
            "init",
            "network online",
        );
        assert_eq!(
            line,
            "<30>1 2003-10-11T22:14:15.003000Z 52:54:00:12:34:56 init - - - network online"
        );
    }

    #[test]
    fn priority_math() {
        assert_eq!(priority(Facility::Kern, Severity::Emergency), 0);
        assert_eq!(priority(Facility::Auth, Severity::Critical), 34); // RFC 5424 example 1
        assert_eq!(priority(Facility::Local4, Severity::Notice), 165); // RFC 5424 example 2
        assert_eq!(priority(Facility::Daemon, Severity::Error), 27);
        assert_eq!(priority(Facility::Local7, Severity::Debug), 191);
        assert_eq!(Facility::default(), Facility::Daemon);
    }

    #[test]
    fn nil_values_for_empty_fields_and_no_msg() {
        assert_eq!(
            format_rfc5424(Facility::User, Severity::Warning, at(0, 0), "", "", "\n"),
            "<12>1 1970-01-01T00:00:00.000000Z - - - - -"
        );
    }

    #[test]
    fn timestamp_nil_outside_the_representable_years() {
        let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Rfc3339(before_1970).to_string(), "-");
        // 10000-01-01T00:00:00Z
        assert_eq!(Rfc3339(at(253_402_300_800, 0)).to_string(), "-");
        assert_eq!(
            Rfc3339(at(253_402_300_799, 999_999)).to_string(),
            "9999-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(
            Rfc3339(at(951_782_400, 0)).to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(
            Rfc3339(at(1_709_251_199, 123_456)).to_string(),
            "2024-02-29T23:59:59.123456Z"
        );
        assert_eq!(
            Rfc3339(at(4_107_542_400, 0)).to_string(),
            "2100-03-01T00:00:00.000000Z"
        );
        // Sub-microsecond digits are cut, not rounded up into the next second.
        let almost = at(59, 0) + Duration::from_nanos(999_999_999);
        assert_eq!(Rfc3339(almost).to_string(), "1970-01-01T00:00:59.999999Z");
    }

    #[test]
    fn header_fields_are_sanitised_and_cut() {
        let line = format_rfc5424(
            Facility::Daemon,
            Severity::Notice,
            at(0, 0),
            "worker 42\tbay é",
            "my service",
            "msg with spaces é ünïcode",
        );
        assert_eq!(
            line,
            "<29>1 1970-01-01T00:00:00.000000Z worker_42_bay__ my_service - - - msg with spaces é ünïcode"
        );
        assert_eq!(header_field(&"h".repeat(300), MAX_HOSTNAME_LEN).len(), 255);
        assert_eq!(header_field(&"a".repeat(60), MAX_APP_NAME_LEN).len(), 48);
        assert_eq!(
            header_field(&"é".repeat(60), MAX_APP_NAME_LEN),
            "_".repeat(48)
        );
        assert_eq!(header_field(" ", MAX_APP_NAME_LEN), "_");
    }
}
