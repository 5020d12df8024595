//! Bounded retries with exponential backoff.

use std::time::Duration;

/// Bounded retries of one registry request: the caller decides what happens after.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// Runs `operation` until it succeeds, fails for good, or the attempts are used up.
    /// Each failure that will be retried is logged with `what` failed.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        is_retryable: impl Fn(&E) -> bool,
        mut operation: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            match operation().await {
                Err(error) if attempt < self.attempts && is_retryable(&error) => {
                    tracing::warn!(
                        "{what} failed (attempt {attempt} of {}): {error}; retrying in {delay:?}",
                        self.attempts
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_delay);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_the_attempts_run_out() {
        let calls = Cell::new(0);
        let result: Result<(), String> = quick(4)
            .run(
                "test",
                |_| true,
                || async {
                    calls.set(calls.get() + 1);
                    Err("down".to_string())
                },
            )
            .await;
        assert_eq!(result, Err("down".to_string()));
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test]
    async fn a_permanent_failure_stops_at_once_and_a_success_ends_the_retries() {
        let calls = Cell::new(0);
        let result: Result<(), String> = quick(4)
            .run(
                "test",
                |error: &String| error != "bad CA",
                || async {
                    calls.set(calls.get() + 1);
                    Err("bad CA".to_string())
                },
            )
            .await;
        assert_eq!(result, Err("bad CA".to_string()));
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let result: Result<u32, String> = quick(4)
            .run(
                "test",
                |_| true,
                || async {
                    calls.set(calls.get() + 1);
                    if calls.get() < 3 {
                        Err("busy".to_string())
                    } else {
                        Ok(7)
                    }
                },
            )
            .await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls.get(), 3);
    }
}
