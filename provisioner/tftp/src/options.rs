//! Option negotiation (RFC 2347-2349, 7440): what the server answers in its OACK.

use std::time::Duration;

/// RFC 1350's block size, used when the client asks for none.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The largest block that fits an Ethernet frame of MTU 1500 without IP fragmentation
/// (1500 - 20 IPv4 - 8 UDP - 4 TFTP). Larger requests are answered with this: fragmented
/// datagrams are lost whole on a busy PXE network, and iPXE asks for 1432 anyway.
pub const MAX_BLKSIZE: u16 = 1468;
/// The most blocks sent before waiting for an ACK (RFC 7440). More only deepens the burst a
/// switch must buffer when hundreds of nodes boot at once.
pub const MAX_WINDOWSIZE: u16 = 64;

/// RFC 2348's bounds on what a client may ask for.
const BLKSIZE_RANGE: std::ops::RangeInclusive<u16> = 8..=65464;
/// RFC 2349's bounds, in seconds.
const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=255;

/// The parameters of one transfer after negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    /// The client's retransmission timeout, if it set one (otherwise the server's backoff).
    pub timeout: Option<Duration>,
    /// Whether the client asked for the size only (OVMF probes with tsize, then aborts).
    pub tsize_requested: bool,
    /// The options accepted, in the order received; empty means no OACK (plain RFC 1350).
    pub acknowledged: Vec<(&'static str, String)>,
}

/// Accepts the options the server knows, clamped to its limits; ignores the rest and any
/// value out of range (RFC 2347 lets a server leave an option out of its OACK).
pub fn negotiate(options: &[(String, String)], file_size: u64) -> Negotiated {
    let mut negotiated = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout: None,
        tsize_requested: false,
        acknowledged: Vec::new(),
    };
    for (name, value) in options {
        match name.as_str() {
            "blksize" => {
                if let Some(asked) = value
                    .parse::<u16>()
                    .ok()
                    .filter(|v| BLKSIZE_RANGE.contains(v))
                {
                    negotiated.blksize = asked.min(MAX_BLKSIZE);
                    negotiated
                        .acknowledged
                        .push(("blksize", negotiated.blksize.to_string()));
                }
            }
            "windowsize" => {
                if let Some(asked) = value.parse::<u16>().ok().filter(|v| *v >= 1) {
                    negotiated.windowsize = asked.min(MAX_WINDOWSIZE);
                    negotiated
                        .acknowledged
                        .push(("windowsize", negotiated.windowsize.to_string()));
                }
            }
            "timeout" => {
                if let Some(seconds) = value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| TIMEOUT_RANGE.contains(v))
                {
                    negotiated.timeout = Some(Duration::from_secs(seconds));
                    negotiated
                        .acknowledged
                        .push(("timeout", seconds.to_string()));
                }
            }
            "tsize" => {
                negotiated.tsize_requested = true;
                negotiated
                    .acknowledged
                    .push(("tsize", file_size.to_string()));
            }
            _ => {}
        }
    }
    negotiated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_options_means_plain_rfc1350() {
        let negotiated = negotiate(&[], 10);
        assert_eq!(negotiated.blksize, 512);
        assert_eq!(negotiated.windowsize, 1);
        assert!(negotiated.acknowledged.is_empty());
    }

    #[test]
    fn large_blocks_and_windows_are_clamped() {
        let negotiated = negotiate(&options(&[("blksize", "65464"), ("windowsize", "1000")]), 1);
        assert_eq!(
            negotiated.acknowledged,
            vec![
                ("blksize", "1468".to_string()),
                ("windowsize", "64".to_string())
            ]
        );
    }

    #[test]
    fn out_of_range_and_unknown_options_are_left_out() {
        let negotiated = negotiate(
            &options(&[
                ("blksize", "7"),
                ("timeout", "0"),
                ("windowsize", "0"),
                ("multicast", ""),
            ]),
            1,
        );
        assert!(negotiated.acknowledged.is_empty());
        assert_eq!(negotiated.blksize, 512);
    }

    #[test]
    fn tsize_is_answered_with_the_file_size() {
        let negotiated = negotiate(&options(&[("tsize", "0"), ("timeout", "3")]), 1_048_576);
        assert!(negotiated.tsize_requested);
        assert_eq!(negotiated.timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            negotiated.acknowledged,
            vec![
                ("tsize", "1048576".to_string()),
                ("timeout", "3".to_string())
            ]
        );
    }
}
