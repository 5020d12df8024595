//! Exponential backoff: how long to wait before the next attempt after failures in a row.
//!
//! The one rule, for every retry loop in the bootkit:
//!
//! - The first wait is `initial`; each further failure in a row doubles it, up to `max`.
//!   `max` always wins: an `initial` above it is cut down to it.
//! - **Jitter** is taken off, never added: each wait is the doubled delay less a random share of
//!   it, up to `jitter_percent` percent (uniform). A wait is therefore never longer than `max`,
//!   and a fleet of machines restarted together spreads out instead of retrying in step.
//!   0 % gives exact delays (the init's service restarts, the installer's resumes); 100 % is
//!   "full jitter" (anywhere between zero and the delay).
//! - A success resets the delay to `initial` ([`Delays::reset`]).
//!
//! [`Backoff`] is the rule (a plain value: configs hold it and compare it); [`Delays`] is one
//! retry loop's place in it, with its own random source. Hand-written because it is a few lines
//! over `fastrand`: the crates that do this (backon, backoff) bring a retry framework, and every
//! loop here decides by itself when to retry, when to give up and what interrupts a wait.

use std::time::Duration;

/// How retries back off: `initial` doubling up to `max`, less up to `jitter_percent` % at
/// random (see the [module](self) for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter_percent: u8,
}

impl Backoff {
    /// Exact delays from `initial` doubling up to `max`; add jitter with [`Backoff::with_jitter`].
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            jitter_percent: 0,
        }
    }

    /// The same delays, each less a random share of up to `percent` % of it (at most 100).
    pub const fn with_jitter(self, percent: u8) -> Backoff {
        Backoff {
            jitter_percent: if percent > 100 { 100 } else { percent },
            ..self
        }
    }

    /// The first delay (after the cut to `max`).
    pub fn initial(&self) -> Duration {
        self.initial.min(self.max)
    }

    /// The longest delay: doubling stops here, and jitter never adds to it.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The largest share (0 to 100 %) that jitter takes off a delay; 0 means exact delays.
    pub fn jitter_percent(&self) -> u8 {
        self.jitter_percent
    }

    /// A retry loop's delays, with a random source of its own.
    pub fn delays(&self) -> Delays {
        self.delays_from(fastrand::Rng::new())
    }

    /// The same delays with a seeded random source: the same seed gives the same jitter (tests).
    pub fn delays_seeded(&self, seed: u64) -> Delays {
        self.delays_from(fastrand::Rng::with_seed(seed))
    }

    fn delays_from(&self, rng: fastrand::Rng) -> Delays {
        Delays {
            backoff: *self,
            undithered: self.initial(),
            rng,
        }
    }
}

/// Where one retry loop stands in its [`Backoff`]: the delay the next failure waits.
#[derive(Debug, Clone)]
pub struct Delays {
    backoff: Backoff,
    /// The next delay before jitter: `initial`, doubled per failure, at most `max`.
    undithered: Duration,
    rng: fastrand::Rng,
}

impl Delays {
    /// The wait before the next attempt; the one after it is twice as long (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.undithered;
        self.undithered = delay.saturating_mul(2).min(self.backoff.max);
        delay.saturating_sub(self.jitter(delay))
    }

    /// After a success: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.undithered = self.backoff.initial();
    }

    /// The rule these delays follow.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// A uniform random share of `delay`, up to the jitter percentage. Integer nanoseconds: exact
    /// bounds, and no float conversion that could overflow near `Duration::MAX`.
    fn jitter(&mut self, delay: Duration) -> Duration {
        let percent = u128::from(self.backoff.jitter_percent);
        if percent == 0 {
            return Duration::ZERO;
        }
        const NANOS_PER_SECOND: u128 = 1_000_000_000;
        let most = delay.as_nanos() * percent / 100;
        let nanos = self.rng.u128(0..=most);
        // `nanos` is at most `delay`, so its seconds fit a u64 and the rest is below 10^9: the
        // fallbacks are never taken.
        let seconds = u64::try_from(nanos / NANOS_PER_SECOND).unwrap_or(u64::MAX);
        let subsec = u32::try_from(nanos % NANOS_PER_SECOND).unwrap_or(0);
        Duration::new(seconds, subsec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn without_jitter_delays_double_exactly_up_to_the_maximum() {
        let mut delays = Backoff::new(ms(250), ms(16_000)).delays();
        let seen: Vec<u128> = (0..9).map(|_| delays.next_delay().as_millis()).collect();
        assert_eq!(
            seen,
            [250, 500, 1000, 2000, 4000, 8000, 16_000, 16_000, 16_000]
        );
    }

    #[test]
    fn jitter_takes_off_at_most_its_share_and_never_exceeds_the_delay() {
        let backoff = Backoff::new(ms(1000), ms(8000)).with_jitter(25);
        for seed in 0..200 {
            let mut delays = backoff.delays_seeded(seed);
            for ceiling in [1000u64, 2000, 4000, 8000, 8000] {
                let delay = delays.next_delay();
                assert!(delay <= ms(ceiling), "{delay:?} above {ceiling} ms");
                assert!(
                    delay >= ms(ceiling * 3 / 4),
                    "{delay:?} more than 25% below {ceiling} ms"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_the_delays_of_a_fleet() {
        let backoff = Backoff::new(ms(1000), ms(1000)).with_jitter(50);
        let first: std::collections::BTreeSet<Duration> = (0..50)
            .map(|seed| backoff.delays_seeded(seed).next_delay())
            .collect();
        assert!(first.len() > 40, "{} distinct delays of 50", first.len());
        assert!(first.iter().all(|d| (ms(500)..=ms(1000)).contains(d)));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let backoff = Backoff::new(ms(100), ms(10_000)).with_jitter(100);
        let run = |seed| {
            let mut delays = backoff.delays_seeded(seed);
            (0..10).map(|_| delays.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_delay() {
        let backoff = Backoff::new(ms(10), ms(10)).with_jitter(255);
        assert_eq!(backoff.jitter_percent(), 100);
        let mut delays = backoff.delays_seeded(3);
        for _ in 0..1000 {
            assert!(delays.next_delay() <= ms(10));
        }
    }

    #[test]
    fn reset_starts_again_from_the_initial_delay() {
        let mut delays = Backoff::new(ms(100), ms(60_000)).delays();
        for _ in 0..10 {
            delays.next_delay();
        }
        delays.reset();
        assert_eq!(delays.next_delay(), ms(100));
        assert_eq!(delays.next_delay(), ms(200));
    }

    #[test]
    fn an_initial_delay_above_the_maximum_is_cut_to_it() {
        let backoff = Backoff::new(ms(60_000), ms(5000));
        assert_eq!(backoff.initial(), ms(5000));
        let mut delays = backoff.delays();
        assert_eq!(delays.next_delay(), ms(5000));
        delays.reset();
        assert_eq!(delays.next_delay(), ms(5000));
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let backoff = Backoff::new(Duration::MAX / 4, Duration::MAX).with_jitter(100);
        let mut delays = backoff.delays_seeded(1);
        for _ in 0..100 {
            delays.next_delay();
        }
        let mut exact = Backoff::new(Duration::MAX / 4, Duration::MAX).delays();
        for _ in 0..100 {
            exact.next_delay();
        }
        assert_eq!(exact.next_delay(), Duration::MAX);
    }
}
