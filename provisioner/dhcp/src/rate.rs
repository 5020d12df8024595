//! Token buckets per source (a client MAC, an IP address): one source that floods is slowed
//! down, every other source keeps its own budget.
//!
//! Here rather than in the provisioner because the DHCP server needs it and cannot depend on
//! the provisioner; the provisioner's HTTP and gRPC limits use this same type. Written by
//! hand (about eighty lines) instead of the `governor` crate: the bounded, prunable key map
//! needed here is the part governor leaves to `dashmap`, and neither is in the build.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

/// How many sources are tracked at most. Past it, sources whose bucket is full again (idle
/// ones) are forgotten; if all are busy the map is cleared, so memory stays bounded even
/// under a flood of spoofed sources (which then meet full buckets, as new sources do).
const MAX_SOURCES: usize = 65_536;

/// A sustained rate and a burst: `2/s:30` is 30 requests at once, then 2 a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second (the sustained rate).
    pub per_second: f64,
    /// The bucket's size (how many requests may come at once).
    pub burst: u32,
}

impl fmt::Display for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/s:{}", self.per_second, self.burst)
    }
}

/// Why a rate given on the command line is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a rate: write PER_SECOND/s:BURST (e.g. 2/s:30), or off")]
pub struct RateError {
    /// What was given.
    pub text: String,
}

/// A rate limit as given on the command line: `PER_SECOND/s:BURST`, or `off` (no limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit(pub Option<Rate>);

impl FromStr for RateLimit {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(RateLimit(None));
        }
        let error = || RateError { text: text.into() };
        let (rate, burst) = text.split_once(':').ok_or_else(error)?;
        let per_second: f64 = rate
            .strip_suffix("/s")
            .ok_or_else(error)?
            .parse()
            .map_err(|_| error())?;
        let burst: u32 = burst.parse().map_err(|_| error())?;
        if !per_second.is_finite() || per_second <= 0.0 || burst == 0 {
            return Err(error());
        }
        Ok(RateLimit(Some(Rate { per_second, burst })))
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(rate) => rate.fmt(formatter),
            None => formatter.write_str("off"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One token bucket per source `K`, all with the same [`Rate`].
#[derive(Debug)]
pub struct TokenBuckets<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> TokenBuckets<K> {
    /// Buckets that start full.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limit these buckets apply.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Whether `source` may make one more request now (and takes its token if so).
    pub fn admit(&self, source: &K) -> bool {
        self.admit_at(source, Instant::now())
    }

    fn admit_at(&self, source: &K, now: Instant) -> bool {
        let burst = f64::from(self.rate.burst);
        // A poisoned lock only means another thread panicked mid-update of plain numbers:
        // the map is still usable.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(source) {
            let rate = self.rate.per_second;
            buckets.retain(|_, bucket| {
                let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
                bucket.tokens + elapsed * rate < burst
            });
            if buckets.len() >= MAX_SOURCES {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(source.clone()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_others_keep_theirs() {
        let buckets = TokenBuckets::new(Rate {
            per_second: 2.0,
            burst: 3,
        });
        let start = Instant::now();
        let admitted = (0..10).filter(|_| buckets.admit_at(&"a", start)).count();
        assert_eq!(
            admitted, 3,
            "the burst, then nothing within the same instant"
        );
        assert!(
            buckets.admit_at(&"b", start),
            "another source has its own bucket"
        );
        let later = start + Duration::from_millis(1_000);
        let admitted = (0..10).filter(|_| buckets.admit_at(&"a", later)).count();
        assert_eq!(admitted, 2, "one second at 2/s refills two tokens");
    }

    #[test]
    fn rates_parse_from_the_command_line_form() {
        assert_eq!(
            "2/s:30".parse::<RateLimit>().unwrap(),
            RateLimit(Some(Rate {
                per_second: 2.0,
                burst: 30
            }))
        );
        assert_eq!("off".parse::<RateLimit>().unwrap(), RateLimit(None));
        for bad in ["2:30", "2/s", "0/s:3", "2/s:0", "x/s:3", "NaN/s:3"] {
            let error = bad.parse::<RateLimit>().unwrap_err();
            assert!(error.to_string().contains("PER_SECOND/s:BURST"), "{bad}");
        }
    }

    #[test]
    fn the_source_map_stays_bounded() {
        let buckets = TokenBuckets::new(Rate {
            per_second: 1.0,
            burst: 1,
        });
        let now = Instant::now();
        for source in 0..(MAX_SOURCES + 10) {
            assert!(buckets.admit_at(&source, now));
        }
        let tracked = buckets.buckets.lock().unwrap().len();
        assert!(tracked <= MAX_SOURCES, "{tracked} sources tracked");
    }
}
