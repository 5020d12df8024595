//! The serial console transcript: filled by reader threads, searched by tests.
//!
//! Waiting is a condition variable with a deadline, never a sleep loop, so a
//! marker is seen as soon as its line arrives and every wait ends on time.

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many console lines a failure message shows.
pub const TAIL_LINES: usize = 40;

#[derive(Default)]
struct State {
    /// Console bytes with `\r` removed (serial lines end in `\r\n`).
    text: Vec<u8>,
    /// QEMU's own stderr, kept apart so it never splits a console line.
    stderr: Vec<u8>,
    /// Set once QEMU's stdout is closed: nothing more will arrive.
    eof: bool,
    /// Set once QEMU's stderr is closed.
    stderr_eof: bool,
}

#[derive(Default)]
pub(crate) struct Console {
    state: Mutex<State>,
    changed: Condvar,
}

/// What a search found: which pattern, the whole line, and where the next
/// search starts.
pub(crate) struct Found {
    pub index: usize,
    pub line: String,
    pub next: usize,
}

pub(crate) enum WaitOutcome {
    Found(Found),
    Eof,
    TimedOut,
}

impl Console {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock in a way that
        // leaves the transcript inconsistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies `src` into the transcript (and `log`) until EOF, then marks EOF.
    pub(crate) fn pump_stdout(self: Arc<Self>, mut src: impl Read, mut log: Option<std::fs::File>) {
        let mut buf = [0u8; 8192];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(f) = log.as_mut() {
                // The log is for humans debugging a failure; losing it must
                // not fail the test, so write errors only stop logging.
                if f.write_all(&buf[..n]).is_err() {
                    log = None;
                }
            }
            let mut st = self.lock();
            st.text
                .extend(buf[..n].iter().copied().filter(|&b| b != b'\r'));
            drop(st);
            self.changed.notify_all();
        }
        self.lock().eof = true;
        self.changed.notify_all();
    }

    /// Collects QEMU's stderr (warnings, "could not open kernel" and the like).
    pub(crate) fn pump_stderr(self: Arc<Self>, mut src: impl Read) {
        let mut buf = [0u8; 4096];
        loop {
            match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.lock().stderr.extend_from_slice(&buf[..n]),
            }
        }
        self.lock().stderr_eof = true;
        self.changed.notify_all();
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().text).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.lock().stderr).into_owned()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().text.len()
    }

    pub(crate) fn count(&self, pattern: &str) -> usize {
        let st = self.lock();
        String::from_utf8_lossy(&st.text)
            .lines()
            .filter(|l| l.contains(pattern))
            .count()
    }

    /// The last `n` console lines, then QEMU's stderr if it said anything.
    pub(crate) fn tail(&self, n: usize) -> String {
        let st = self.lock();
        let text = String::from_utf8_lossy(&st.text);
        let lines: Vec<&str> = text.lines().collect();
        let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
        let stderr = String::from_utf8_lossy(&st.stderr);
        if !stderr.trim().is_empty() {
            out.push_str("\n--- qemu stderr ---\n");
            out.push_str(stderr.trim_end());
        }
        out
    }

    /// Waits until a line at or after byte `from` contains one of `patterns`.
    /// `partial` also searches the unterminated last line (prompts); otherwise
    /// only whole lines match, so the returned line is never cut short.
    pub(crate) fn wait(
        &self,
        from: usize,
        patterns: &[&str],
        partial: bool,
        timeout: Duration,
    ) -> WaitOutcome {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            // After EOF the last line is as complete as it will ever be.
            if let Some(found) = search(&st.text, from, patterns, partial || st.eof) {
                return WaitOutcome::Found(found);
            }
            if st.eof {
                return WaitOutcome::Eof;
            }
            let now = Instant::now();
            if now >= deadline {
                return WaitOutcome::TimedOut;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits (bounded) until the reader has seen EOF, so the log is complete.
    /// Wait until both of QEMU's output pipes are closed (it has exited and the readers have
    /// everything), at most `timeout`.
    pub(crate) fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while !(st.eof && st.stderr_eof) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Finds the first line starting at or after `from` that contains any of
/// `patterns`. With `partial`, the unterminated last line is searched too.
fn search(text: &[u8], from: usize, patterns: &[&str], partial: bool) -> Option<Found> {
    let mut start = from.min(text.len());
    while start < text.len() {
        let (end, next) = match text[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (start + i, start + i + 1),
            None if partial => (text.len(), text.len()),
            None => return None,
        };
        let line = String::from_utf8_lossy(&text[start..end]);
        if let Some(index) = patterns.iter().position(|p| line.contains(p)) {
            return Some(Found {
                index,
                line: line.into_owned(),
                next,
            });
        }
        start = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_advances_past_matched_lines() {
        let text = b"a marker 1\nb\nc marker 2\npartial marker";
        let f = search(text, 0, &["marker"], false).expect("first");
        assert_eq!(f.line, "a marker 1");
        let f = search(text, f.next, &["marker"], false).expect("second");
        assert_eq!(f.line, "c marker 2");
        assert!(
            search(text, f.next, &["marker"], false).is_none(),
            "line not finished"
        );
        let f = search(text, f.next, &["marker"], true).expect("partial line");
        assert_eq!(f.line, "partial marker");
        assert_eq!(f.next, text.len());
        assert!(search(text, f.next, &["marker"], true).is_none());
    }

    #[test]
    fn search_reports_which_pattern() {
        let f = search(b"x\nbootkit: error here\n", 0, &["ready", "error"], false).expect("found");
        assert_eq!(f.index, 1);
    }

    #[test]
    fn wait_times_out_on_deadline() {
        let c = Console::default();
        let t0 = Instant::now();
        assert!(matches!(
            c.wait(0, &["never"], false, Duration::from_millis(200)),
            WaitOutcome::TimedOut
        ));
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2));
    }

    #[test]
    fn pump_strips_carriage_returns_and_marks_eof() {
        let c = Arc::new(Console::default());
        Arc::clone(&c).pump_stdout(&b"one\r\ntwo\r\n"[..], None);
        assert_eq!(c.text(), "one\ntwo\n");
        assert!(matches!(
            c.wait(0, &["three"], false, Duration::from_secs(5)),
            WaitOutcome::Eof
        ));
        assert_eq!(c.count("o"), 2);
    }
}
