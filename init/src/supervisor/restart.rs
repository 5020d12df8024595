//! Whether an exited service is started again, and after how long.

use std::time::Duration;

use bootkit_common::service_def::RestartPolicy;

use super::reaper::ExitStatus;

/// A service that stayed up this long is considered healthy again: its next restart waits only
/// the initial delay.
pub const STABLE_UPTIME: Duration = Duration::from_secs(10);

/// Whether `policy` restarts a process that ended with `status`.
pub fn should_restart(policy: RestartPolicy, status: ExitStatus) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !status.is_success(),
        RestartPolicy::Never => false,
    }
}

/// Exponential backoff between restarts: the initial delay, doubled for every consecutive quick
/// exit, capped at the maximum, and reset once the service stays up for `STABLE_UPTIME`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    quick_exits: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            quick_exits: 0,
        }
    }

    /// The delay before the next start of a service that ran for `uptime` and then exited.
    pub fn next_delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= STABLE_UPTIME {
            self.quick_exits = 0;
        }
        // 2^20 times any sane initial delay is past any sane maximum; the cap keeps the
        // arithmetic small whatever the counter says.
        let doublings = self.quick_exits.min(20);
        self.quick_exits = self.quick_exits.saturating_add(1);
        self.initial
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut backoff = Backoff::new(ms(1000), ms(30_000));
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay(QUICK).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn a_stable_run_resets_the_delay() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        assert_eq!(backoff.next_delay(QUICK), ms(100));
        assert_eq!(backoff.next_delay(QUICK), ms(200));
        assert_eq!(backoff.next_delay(QUICK), ms(400));
        assert_eq!(backoff.next_delay(STABLE_UPTIME), ms(100));
        assert_eq!(backoff.next_delay(QUICK), ms(200));
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut backoff = Backoff::new(ms(u64::MAX / 4), Duration::MAX);
        for _ in 0..100 {
            backoff.next_delay(QUICK);
        }
        assert_eq!(backoff.next_delay(QUICK), Duration::MAX);
    }

    #[test]
    fn policies_decide_on_the_exit_status() {
        let ok = ExitStatus::Code(0);
        let failed = ExitStatus::Code(1);
        let killed = ExitStatus::Signal(9);
        assert!(should_restart(RestartPolicy::Always, ok));
        assert!(should_restart(RestartPolicy::Always, failed));
        assert!(!should_restart(RestartPolicy::OnFailure, ok));
        assert!(should_restart(RestartPolicy::OnFailure, failed));
        assert!(should_restart(RestartPolicy::OnFailure, killed));
        assert!(!should_restart(RestartPolicy::Never, failed));
        assert!(!should_restart(RestartPolicy::Never, killed));
    }
}
