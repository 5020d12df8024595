//! Deadlines that cannot overflow: `Instant + Duration` panics on overflow, and PID 1 must not
//! panic whatever a service definition says.

use std::time::{Duration, Instant};

// No deadline is further away than this: definitions are validated to stay below it.
use bootkit_common::service_def::LONGEST_DURATION as LONGEST;

/// The instant `delay` after `now`, with `delay` capped at `LONGEST`.
pub fn after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(LONGEST)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_delays_are_capped() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), now + LONGEST);
        assert_eq!(
            after(now, Duration::from_millis(5)),
            now + Duration::from_millis(5)
        );
    }
}
