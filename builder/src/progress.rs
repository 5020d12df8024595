//! Progress reporting: an indicatif bar on a terminal, plain lines in logs and CI.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bar,
    Lines,
    Hidden,
}

/// Where progress goes. Everything is written to stderr: stdout stays for command output.
#[derive(Debug, Clone)]
pub struct Progress {
    mode: Mode,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn auto() -> Progress {
        let mode = if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        };
        Progress { mode }
    }

    /// Plain lines, even on a terminal.
    pub fn lines() -> Progress {
        Progress { mode: Mode::Lines }
    }

    /// Nothing at all (tests, library callers that report themselves).
    pub fn hidden() -> Progress {
        Progress { mode: Mode::Hidden }
    }

    /// A one-line note.
    pub fn note(&self, message: &str) {
        if self.mode != Mode::Hidden {
            eprintln!("bootkit-build: {message}");
        }
    }

    /// Start a long step; `total` (bytes) gives a bar, `None` a spinner.
    pub fn task(&self, message: &str, total: Option<u64>) -> Task {
        let bar = match self.mode {
            Mode::Bar => Some(new_bar(message, total)),
            Mode::Lines => {
                eprintln!("bootkit-build: {message} ...");
                None
            }
            Mode::Hidden => None,
        };
        Task {
            message: message.to_string(),
            bar,
            started: Instant::now(),
            announce: self.mode == Mode::Lines,
        }
    }
}

fn new_bar(message: &str, total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{msg} [{bar:30}] {bytes}/{total_bytes}",
        ),
        None => (ProgressBar::new_spinner(), "{spinner} {msg} {elapsed}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    if total.is_none() {
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    bar
}

/// One long step in progress.
pub struct Task {
    message: String,
    bar: Option<ProgressBar>,
    started: Instant,
    announce: bool,
}

impl Task {
    /// Advances the bar by `delta` units.
    pub fn inc(&self, delta: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(delta);
        }
    }

    /// Ends the bar.
    pub fn finish(self) {
        let elapsed = self.started.elapsed().as_millis();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            eprintln!("bootkit-build: {} done ({elapsed} ms)", self.message);
        } else if self.announce {
            eprintln!("bootkit-build: {} done ({elapsed} ms)", self.message);
        }
    }
}
