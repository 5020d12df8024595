//! A `provisioner serve` run as a child process, as an operator runs it: killed and reaped
//! when the test ends (however it ends), with its log lines read on a thread so a test can
//! wait, bounded, for the line it needs.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::Child;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Kills the child when the test ends.
pub struct ServeChild(pub Child);

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback TCP port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The lines a child writes to its stderr (spawned with `Stdio::piped()`), and those seen.
pub struct LogLines {
    lines: Receiver<String>,
    /// Every line read so far, for the failure message.
    pub seen: Vec<String>,
}

impl LogLines {
    /// Reads `child`'s stderr on a thread.
    pub fn of(child: &mut Child) -> Self {
        let stderr = child.stderr.take().expect("spawned with a piped stderr");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Self {
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line from now on that contains `what`, waiting at most 30 s; panics with
    /// the lines seen.
    pub fn until(&mut self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("serve did not log {what:?}; it logged: {:#?}", self.seen)
            });
            self.seen.push(line.clone());
            if line.contains(what) {
                return line;
            }
        }
    }
}
