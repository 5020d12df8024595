//! Bounded exponential backoff with jitter for the worker loop's waits.
//!
//! Hand-written because it is a dozen lines over `fastrand`: the crates that do this
//! (backon, backoff) bring a retry framework the loop does not need — the loop decides by
//! itself when to retry, when to give up and when a shutdown interrupts the wait.

use std::time::Duration;

/// Delays that double from `base` up to `cap`, each with up to a quarter of random jitter
/// taken off, so that a fleet of workers restarted together does not hit the server in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// The delay to wait before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let doubled = self
            .base
            .saturating_mul(2u32.saturating_pow(self.failures.min(16)));
        self.failures = self.failures.saturating_add(1);
        let delay = doubled.min(self.cap);
        let jitter = delay.mul_f64(fastrand::f64() * 0.25);
        delay - jitter
    }

    /// Back to the base delay after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_stay_at_the_cap_never_exceeding_it() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_millis(700);
        let mut backoff = Backoff::new(base, cap);
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        let ceilings = [100u64, 200, 400, 700, 700, 700, 700, 700];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(*delay <= ceiling, "{delay:?} above {ceiling:?}");
            assert!(
                *delay >= ceiling.mul_f64(0.75),
                "{delay:?} too far below {ceiling:?}"
            );
        }
    }

    #[test]
    fn reset_starts_again_from_the_base_delay() {
        let base = Duration::from_millis(100);
        let mut backoff = Backoff::new(base, Duration::from_secs(60));
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= base);
    }
}
