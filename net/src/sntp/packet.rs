//! The NTP packet (RFC 5905 figure 8) as far as an SNTP client needs it: the 48-byte header,
//! 64-bit timestamps, and the checks RFC 4330 section 5 asks a client to make of a reply.
//!
//! Everything here is pure (no clock, no socket) so that it can be tested with fixed bytes.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The length of an NTP header without extension fields or a MAC.
pub const PACKET_LEN: usize = 48;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01): 70 years, 17 of
/// them leap years.
const UNIX_TO_NTP_SECONDS: i128 = 2_208_988_800;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// One unit of an NTP timestamp is 2^-32 s.
const FRACTION_UNITS: i128 = 1 << 32;

/// The version we send: NTPv4.
const VERSION: u8 = 4;
/// Client and server association modes.
const MODE_CLIENT: u8 = 3;
const MODE_SERVER: u8 = 4;

/// A 64-bit NTP timestamp: seconds since the start of the current NTP era in the upper 32 bits,
/// fractions of a second in the lower 32.
///
/// Era 0 began in 1900 and ends on 2036-02-07, when the seconds wrap to 0 (era 1). A timestamp
/// does not say its era, so this type never converts one to an absolute time on its own:
/// differences between two timestamps are taken modulo 2^64 and read as signed, which is right
/// whenever the two are less than 68 years apart (RFC 5905 section 6), in any era.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The all-zero timestamp, which NTP uses for "unknown".
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    /// The timestamp of `time` in whatever era it falls in.
    pub fn from_system_time(time: SystemTime) -> Self {
        Self::from_unix_nanos(unix_nanos(time))
    }

    /// The timestamp of a time given as nanoseconds since the Unix epoch (negative before it).
    #[expect(
        clippy::cast_possible_truncation,
        reason = "keeping the low 64 bits is NTP's era wrap"
    )]
    pub fn from_unix_nanos(nanos: i128) -> Self {
        let ntp_nanos = nanos + UNIX_TO_NTP_SECONDS * NANOS_PER_SECOND;
        // Rounded to the nearest unit, so that differences of timestamps round back to whole
        // nanoseconds exactly.
        let units =
            (ntp_nanos * FRACTION_UNITS + NANOS_PER_SECOND / 2).div_euclid(NANOS_PER_SECOND);
        // Keeping the low 64 bits is the era wrap: 2036-02-07 becomes 0 again.
        NtpTimestamp(units as u64)
    }

    /// Whole seconds since the start of the era.
    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Fractions of a second, in units of 2^-32 s.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the fraction is the low 32 bits"
    )]
    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// `self - earlier` in nanoseconds, assuming the two are less than 68 years apart.
    pub fn nanos_since(self, earlier: NtpTimestamp) -> i128 {
        let units = self.0.wrapping_sub(earlier.0) as i64;
        (i128::from(units) * NANOS_PER_SECOND + FRACTION_UNITS / 2).div_euclid(FRACTION_UNITS)
    }
}

impl fmt::Debug for NtpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NtpTimestamp({}.{:08x})",
            self.seconds(),
            self.fraction()
        )
    }
}

impl fmt::Display for NtpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}.{:08x}", self.seconds(), self.fraction())
    }
}

/// Nanoseconds since the Unix epoch, negative for earlier times (a badly wrong RTC).
pub fn unix_nanos(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// The leap indicator: a warning of a leap second at the end of the day, or "not synchronised".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeapIndicator {
    /// No leap second today.
    NoWarning,
    /// The last minute of the day has 61 seconds.
    InsertSecond,
    /// The last minute of the day has 59 seconds.
    DeleteSecond,
    /// The server's clock is not synchronised (alarm condition).
    Unsynchronised,
}

impl LeapIndicator {
    fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => LeapIndicator::NoWarning,
            1 => LeapIndicator::InsertSecond,
            2 => LeapIndicator::DeleteSecond,
            _ => LeapIndicator::Unsynchronised,
        }
    }
}

/// Why a reply was not accepted. Each is a property of the bytes received, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReply {
    /// The reply is shorter than an NTP header.
    #[error("reply is {len} bytes, shorter than the {PACKET_LEN}-byte NTP header")]
    Short {
        /// The reply's length in bytes.
        len: usize,
    },
    /// The reply is not from a server (mode 4).
    #[error("reply has mode {mode}, not 4 (server)")]
    NotServerMode {
        /// The mode received.
        mode: u8,
    },
    /// The reply's version is not 1 to 4.
    #[error("reply has NTP version {version}, not 1 to 4")]
    BadVersion {
        /// The version received.
        version: u8,
    },
    /// The reply does not echo our transmit timestamp (stale or forged).
    #[error(
        "reply's origin timestamp {got} is not our transmit timestamp {expected} (a stale or forged reply)"
    )]
    OriginMismatch {
        /// Our transmit timestamp.
        expected: NtpTimestamp,
        /// The origin timestamp in the reply.
        got: NtpTimestamp,
    },
    /// The server sent a kiss-o'-death (stratum 0): it refuses to serve.
    #[error(
        "server sent a kiss-o'-death with code {code:?} (e.g. RATE: asked too often, DENY: access denied)"
    )]
    KissOfDeath {
        /// The four-letter kiss code (`RATE`, `DENY`, ...).
        code: String,
    },
    /// The leap indicator is 3 (alarm): the server's clock is not synchronised.
    #[error("server says its clock is not synchronised (leap indicator 3)")]
    Unsynchronised,
    /// The stratum is outside 1 to 15.
    #[error("reply has stratum {stratum}, outside 1 to 15 (16 means unsynchronised)")]
    BadStratum {
        /// The stratum received.
        stratum: u8,
    },
    /// A timestamp the offset needs is zero.
    #[error("reply's {field} timestamp is zero")]
    ZeroTimestamp {
        /// Which timestamp (`receive`, `transmit`).
        field: &'static str,
    },
}

/// A decoded server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The server's leap second warning.
    pub leap: LeapIndicator,
    /// NTP version, 1 to 4.
    pub version: u8,
    /// 1 for a reference clock, one more per hop; 0 in a kiss-o'-death.
    pub stratum: u8,
    /// log2 of the poll interval in seconds.
    pub poll: i8,
    /// log2 of the server clock's precision in seconds.
    pub precision: i8,
    /// Round-trip delay and dispersion to the reference clock, NTP short format (16.16 s).
    pub root_delay: u32,
    /// Dispersion to the reference clock, NTP short format (16.16 s).
    pub root_dispersion: u32,
    /// For stratum 1 a four-letter source name, above that the upstream server's address;
    /// in a kiss-o'-death (stratum 0), the kiss code.
    pub reference_id: [u8; 4],
    /// When the server's clock was last set.
    pub reference: NtpTimestamp,
    /// Our transmit timestamp, echoed (t1).
    pub origin: NtpTimestamp,
    /// When the server received the request (t2).
    pub receive: NtpTimestamp,
    /// When the server sent the reply (t3).
    pub transmit: NtpTimestamp,
}

/// The client request: LI 0, version 4, mode 3, everything zero but the transmit timestamp,
/// which the server echoes as the reply's origin timestamp (how we match reply to request).
pub fn encode_request(transmit: NtpTimestamp) -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    packet[0] = (VERSION << 3) | MODE_CLIENT;
    packet[40..48].copy_from_slice(&transmit.0.to_be_bytes());
    packet
}

/// Decode a reply and check it answers the request whose transmit timestamp was `sent`.
///
/// Longer replies (extension fields, a MAC) are accepted; only the header is read.
pub fn parse_reply(bytes: &[u8], sent: NtpTimestamp) -> Result<Reply, InvalidReply> {
    let header: &[u8; PACKET_LEN] = bytes
        .get(..PACKET_LEN)
        .and_then(|head| head.try_into().ok())
        .ok_or(InvalidReply::Short { len: bytes.len() })?;
    let (reply, mode) = decode_header(header);
    validate(&reply, mode, sent)?;
    Ok(reply)
}

/// The header's fields and its mode (always 4 in an accepted reply, so not kept in `Reply`).
fn decode_header(h: &[u8; PACKET_LEN]) -> (Reply, u8) {
    let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let ts_at = |i: usize| NtpTimestamp((u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4)));
    let reply = Reply {
        leap: LeapIndicator::from_bits(h[0] >> 6),
        version: (h[0] >> 3) & 0b111,
        stratum: h[1],
        poll: h[2] as i8,
        precision: h[3] as i8,
        root_delay: u32_at(4),
        root_dispersion: u32_at(8),
        reference_id: [h[12], h[13], h[14], h[15]],
        reference: ts_at(16),
        origin: ts_at(24),
        receive: ts_at(32),
        transmit: ts_at(40),
    };
    (reply, h[0] & 0b111)
}

/// RFC 4330 section 5's checks, in an order that names the most specific problem: a
/// kiss-o'-death usually also has LI 3, and its code is what the operator needs to see.
fn validate(reply: &Reply, mode: u8, sent: NtpTimestamp) -> Result<(), InvalidReply> {
    if mode != MODE_SERVER {
        return Err(InvalidReply::NotServerMode { mode });
    }
    if !(1..=4).contains(&reply.version) {
        return Err(InvalidReply::BadVersion {
            version: reply.version,
        });
    }
    // Checked before the kiss code so that a forged kiss-o'-death cannot make us give up.
    if reply.origin != sent {
        return Err(InvalidReply::OriginMismatch {
            expected: sent,
            got: reply.origin,
        });
    }
    if reply.stratum == 0 {
        return Err(InvalidReply::KissOfDeath {
            code: kiss_code(reply.reference_id),
        });
    }
    if reply.leap == LeapIndicator::Unsynchronised {
        return Err(InvalidReply::Unsynchronised);
    }
    if reply.stratum > 15 {
        return Err(InvalidReply::BadStratum {
            stratum: reply.stratum,
        });
    }
    if reply.transmit == NtpTimestamp::ZERO {
        return Err(InvalidReply::ZeroTimestamp { field: "transmit" });
    }
    if reply.receive == NtpTimestamp::ZERO {
        return Err(InvalidReply::ZeroTimestamp { field: "receive" });
    }
    Ok(())
}

/// The kiss code as text: four ASCII letters, NUL padded; anything unprintable shown as `?`.
fn kiss_code(id: [u8; 4]) -> String {
    id.iter()
        .take_while(|&&b| b != 0)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// Clock offset and round-trip delay from the four timestamps (RFC 5905 section 8):
/// t1 our transmit, t2 server receive, t3 server transmit, t4 our receive.
///
/// offset = ((t2 - t1) + (t3 - t4)) / 2, delay = (t4 - t1) - (t3 - t2). Each difference is
/// taken era-independently (see [`NtpTimestamp`]). A negative delay (a server whose processing
/// time exceeds the round trip, i.e. a broken one) is reported as zero.
pub fn offset_and_delay(
    t1: NtpTimestamp,
    t2: NtpTimestamp,
    t3: NtpTimestamp,
    t4: NtpTimestamp,
) -> (Offset, Duration) {
    let offset = (t2.nanos_since(t1) + t3.nanos_since(t4)) / 2;
    let delay = t4.nanos_since(t1) - t3.nanos_since(t2);
    let delay = u64::try_from(delay).unwrap_or(0);
    (Offset::from_nanos_i128(offset), Duration::from_nanos(delay))
}

/// How far the local clock is behind the server's: add it to the local time to get the
/// server's. Positive means our clock is slow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset {
    nanos: i64,
}

impl Offset {
    /// An offset of `nanos` nanoseconds; positive means our clock is slow.
    pub const fn from_nanos(nanos: i64) -> Self {
        Offset { nanos }
    }

    /// Saturates at about ±292 years, far beyond the ±68 years NTP differences can express.
    fn from_nanos_i128(nanos: i128) -> Self {
        let clamped = i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX });
        Offset::from_nanos(clamped)
    }

    /// The offset in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// The offset in seconds, for display.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 / 1e9
    }

    /// The size of the offset, whichever way.
    pub fn magnitude(self) -> Duration {
        Duration::from_nanos(self.nanos.unsigned_abs())
    }
}

impl fmt::Display for Offset {
    /// `+3600.000123s`, `-0.250000s`: microseconds are as fine as SNTP over a network gets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { '-' } else { '+' };
        let micros = self.nanos.unsigned_abs() / 1_000;
        write!(f, "{sign}{}.{:06}s", micros / 1_000_000, micros % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix time of the first NTP era rollover, 2036-02-07T06:28:16Z.
    const ERA_1_UNIX_SECONDS: i128 = (1 << 32) - UNIX_TO_NTP_SECONDS;

    fn ts(seconds: u32, fraction: u32) -> NtpTimestamp {
        NtpTimestamp((u64::from(seconds) << 32) | u64::from(fraction))
    }

    /// A reply as a server would send it: LI 0, VN 4, mode 4, stratum 2, poll 3,
    /// precision -23, root delay 1/256 s, root dispersion 1/16 s, refid 192.168.1.1.
    fn reply_bytes(origin: NtpTimestamp, receive: NtpTimestamp, transmit: NtpTimestamp) -> Vec<u8> {
        let mut b = vec![
            0x24, 0x02, 0x03, 0xe9, // LI/VN/mode, stratum, poll, precision
            0x00, 0x00, 0x01, 0x00, // root delay
            0x00, 0x00, 0x10, 0x00, // root dispersion
            0xc0, 0xa8, 0x01, 0x01, // reference id
            0xe9, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // reference timestamp
        ];
        for t in [origin, receive, transmit] {
            b.extend_from_slice(&t.0.to_be_bytes());
        }
        b
    }

    #[test]
    fn request_bytes() {
        let request = encode_request(ts(0xe9a1_b2c3, 0x8000_0000));
        let mut expected = [0u8; PACKET_LEN];
        expected[0] = 0x23; // LI 0, VN 4, mode 3
        expected[40..48].copy_from_slice(&[0xe9, 0xa1, 0xb2, 0xc3, 0x80, 0x00, 0x00, 0x00]);
        assert_eq!(request, expected);
    }

    #[test]
    fn unix_epoch_and_known_dates() {
        assert_eq!(NtpTimestamp::from_unix_nanos(0), ts(0x83aa_7e80, 0));
        // 2024-01-01T00:00:00.5Z = Unix 1704067200.5
        let t = NtpTimestamp::from_unix_nanos(1_704_067_200 * NANOS_PER_SECOND + 500_000_000);
        assert_eq!(t, ts(1_704_067_200 + 2_208_988_800, 0x8000_0000));
        // Before 1970 (a dead RTC can say so): 1969-12-31T23:59:59Z.
        assert_eq!(
            NtpTimestamp::from_unix_nanos(-NANOS_PER_SECOND),
            ts(0x83aa_7e7f, 0)
        );
    }

    #[test]
    fn era_rollover_wraps_to_zero_and_differences_span_it() {
        let rollover = NtpTimestamp::from_unix_nanos(ERA_1_UNIX_SECONDS * NANOS_PER_SECOND);
        assert_eq!(rollover, NtpTimestamp::ZERO);
        let just_before =
            NtpTimestamp::from_unix_nanos(ERA_1_UNIX_SECONDS * NANOS_PER_SECOND - 500_000_000);
        assert_eq!(just_before, ts(u32::MAX, 0x8000_0000));
        assert_eq!(rollover.nanos_since(just_before), 500_000_000);
        assert_eq!(just_before.nanos_since(rollover), -500_000_000);
        let after = NtpTimestamp::from_unix_nanos((ERA_1_UNIX_SECONDS + 10) * NANOS_PER_SECOND);
        assert_eq!(after.nanos_since(just_before), 10_500_000_000);
    }

    #[test]
    fn decodes_every_field() {
        let bytes = reply_bytes(ts(1, 2), ts(3, 4), ts(5, 6));
        let reply = parse_reply(&bytes, ts(1, 2)).expect("valid reply");
        assert_eq!(
            reply,
            Reply {
                leap: LeapIndicator::NoWarning,
                version: 4,
                stratum: 2,
                poll: 3,
                precision: -23,
                root_delay: 0x100,
                root_dispersion: 0x1000,
                reference_id: [192, 168, 1, 1],
                reference: ts(0xe900_0000, 0),
                origin: ts(1, 2),
                receive: ts(3, 4),
                transmit: ts(5, 6),
            }
        );
    }

    #[test]
    fn longer_replies_are_accepted() {
        let mut bytes = reply_bytes(ts(1, 0), ts(3, 0), ts(5, 0));
        bytes.extend_from_slice(&[0u8; 20]); // a key id and MAC
        assert!(parse_reply(&bytes, ts(1, 0)).is_ok());
    }

    fn rejected(mutate: impl FnOnce(&mut Vec<u8>)) -> InvalidReply {
        let sent = ts(100, 0);
        let mut bytes = reply_bytes(sent, ts(200, 0), ts(200, 1));
        mutate(&mut bytes);
        parse_reply(&bytes, sent).expect_err("must be rejected")
    }

    #[test]
    fn each_check_names_what_failed() {
        assert_eq!(
            rejected(|b| b.truncate(47)),
            InvalidReply::Short { len: 47 }
        );
        assert_eq!(
            rejected(|b| b[0] = 0x23),
            InvalidReply::NotServerMode { mode: 3 }
        );
        assert_eq!(
            rejected(|b| b[0] = 0x3c),
            InvalidReply::BadVersion { version: 7 }
        );
        assert_eq!(
            rejected(|b| b[24..32].copy_from_slice(&ts(99, 0).0.to_be_bytes())),
            InvalidReply::OriginMismatch {
                expected: ts(100, 0),
                got: ts(99, 0)
            }
        );
        assert_eq!(
            rejected(|b| {
                b[0] = 0xe4; // LI 3, as kiss-o'-death packets have
                b[1] = 0;
                b[12..16].copy_from_slice(b"RATE");
            }),
            InvalidReply::KissOfDeath {
                code: "RATE".into()
            }
        );
        assert_eq!(
            rejected(|b| {
                b[1] = 0;
                b[12..16].copy_from_slice(b"DN\0\x07");
            }),
            InvalidReply::KissOfDeath { code: "DN".into() }
        );
        assert_eq!(rejected(|b| b[0] = 0xe4), InvalidReply::Unsynchronised);
        assert_eq!(
            rejected(|b| b[1] = 16),
            InvalidReply::BadStratum { stratum: 16 }
        );
        assert_eq!(
            rejected(|b| b[40..48].fill(0)),
            InvalidReply::ZeroTimestamp { field: "transmit" }
        );
        assert_eq!(
            rejected(|b| b[32..40].fill(0)),
            InvalidReply::ZeroTimestamp { field: "receive" }
        );
    }

    #[test]
    fn error_messages_say_what_and_why() {
        let kod = InvalidReply::KissOfDeath {
            code: "DENY".into(),
        };
        assert!(kod.to_string().contains("\"DENY\""), "{kod}");
        let short = InvalidReply::Short { len: 3 };
        assert_eq!(
            short.to_string(),
            "reply is 3 bytes, shorter than the 48-byte NTP header"
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let sent = ts(0x1234_5678, 0x9abc_def0);
        for _ in 0..20_000 {
            let len = rng.usize(0..=80);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            // Half the time make the origin match, so the later checks are reached too.
            if len >= PACKET_LEN && rng.bool() {
                bytes[24..32].copy_from_slice(&sent.0.to_be_bytes());
                bytes[0] = (bytes[0] & !0b111) | MODE_SERVER;
            }
            if let Ok(reply) = parse_reply(&bytes, sent) {
                assert_eq!(reply.origin, sent);
                assert!((1..=15).contains(&reply.stratum));
                assert_ne!(reply.leap, LeapIndicator::Unsynchronised);
                let (_, _) = offset_and_delay(sent, reply.receive, reply.transmit, sent);
            }
        }
    }

    #[test]
    fn offset_and_delay_from_the_four_timestamps() {
        let at = |s: i128, ms: i128| {
            NtpTimestamp::from_unix_nanos(s * NANOS_PER_SECOND + ms * 1_000_000)
        };
        // Server 1 hour ahead; 20 ms each way; 5 ms in the server.
        let t1 = at(1_700_000_000, 0);
        let t2 = at(1_700_003_600, 20);
        let t3 = at(1_700_003_600, 25);
        let t4 = at(1_700_000_000, 45);
        let (offset, delay) = offset_and_delay(t1, t2, t3, t4);
        assert_eq!(offset, Offset::from_nanos(3_600_000_000_000));
        assert_eq!(delay, Duration::from_millis(40));
        // Server 10 s behind, over an asymmetric path (30 ms out, 10 ms back).
        let (offset, delay) =
            offset_and_delay(at(1_000, 0), at(990, 30), at(990, 30), at(1_000, 40));
        assert_eq!(offset, Offset::from_nanos(-9_990_000_000));
        assert_eq!(delay, Duration::from_millis(40));
        // A broken server whose processing time exceeds the round trip: delay 0, no panic.
        let (_, delay) = offset_and_delay(at(0, 0), at(0, 0), at(5, 0), at(0, 1));
        assert_eq!(delay, Duration::ZERO);
    }

    #[test]
    fn offset_across_the_era_rollover() {
        // Our clock reads just before the 2036 rollover, the server's just after.
        let base = ERA_1_UNIX_SECONDS * NANOS_PER_SECOND;
        let t1 = NtpTimestamp::from_unix_nanos(base - 2 * NANOS_PER_SECOND);
        let t2 = NtpTimestamp::from_unix_nanos(base + 8 * NANOS_PER_SECOND);
        let t4 = NtpTimestamp::from_unix_nanos(base - 2 * NANOS_PER_SECOND + 2_000_000);
        let t3 = NtpTimestamp::from_unix_nanos(base + 8 * NANOS_PER_SECOND + 1_000_000);
        let (offset, delay) = offset_and_delay(t1, t2, t3, t4);
        assert!(
            t2.seconds() < t1.seconds(),
            "the server's timestamps are in era 1"
        );
        assert_eq!(offset, Offset::from_nanos(10_000_000_000 - 500_000));
        assert_eq!(delay, Duration::from_millis(1));
    }

    #[test]
    fn offset_display() {
        assert_eq!(
            Offset::from_nanos(3_600_000_123_456).to_string(),
            "+3600.000123s"
        );
        assert_eq!(Offset::from_nanos(-250_000_000).to_string(), "-0.250000s");
        assert_eq!(Offset::from_nanos(0).to_string(), "+0.000000s");
        assert_eq!(
            Offset::from_nanos(-1_500_000_000).magnitude(),
            Duration::from_millis(1500)
        );
    }
}
