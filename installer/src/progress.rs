//! Progress for people and machines: a bar on a terminal, a plain line at most once a second
//! in a log, JSON lines (`--progress json`) for a provisioning service to parse.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::usbdata::InstallLog;

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Bar,
    /// A line at most once a second on stderr.
    Plain,
    /// One JSON object per line on stdout.
    Json,
}

/// Lines in a log or a pipe: more often than this is noise.
const LINE_INTERVAL: Duration = Duration::from_secs(1);

/// The result of an install, printed once at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The target disk, as given.
    pub disk: String,
    /// The image source, as given.
    pub image: String,
    /// Lower-case hex sha256 of the image bytes as read from the source.
    pub sha256: String,
    /// Bytes written to the disk.
    pub bytes: u64,
    /// Size of the uncompressed image.
    pub image_bytes: u64,
    /// Wall-clock time of the install, in seconds.
    pub seconds: f64,
    /// Megabytes (10^6) of image per second.
    pub mb_per_s: f64,
}

impl Summary {
    /// A summary; computes [`Summary::mb_per_s`] from `image_bytes` and `elapsed`.
    pub fn new(
        disk: String,
        image: String,
        sha256: String,
        bytes: u64,
        image_bytes: u64,
        elapsed: Duration,
    ) -> Self {
        let seconds = elapsed.as_secs_f64();
        let mb_per_s = if seconds > 0.0 {
            image_bytes as f64 / 1e6 / seconds
        } else {
            0.0
        };
        Self {
            disk,
            image,
            sha256,
            bytes,
            image_bytes,
            seconds,
            mb_per_s,
        }
    }
}

#[derive(Serialize)]
struct JsonProgress<'a> {
    stage: &'a str,
    bytes_written: u64,
    bytes_total: Option<u64>,
}

struct State {
    stage: String,
    total: Option<u64>,
    written: u64,
    last_line: Option<Instant>,
}

/// Shared by the reading and the writing thread.
pub struct Progress {
    mode: ProgressMode,
    quiet: bool,
    bar: Option<ProgressBar>,
    /// Also kept in the log that goes back to the USB data partition.
    log: Option<InstallLog>,
    state: Mutex<State>,
}

impl Progress {
    /// `Bar` falls back to plain lines when stderr is not a terminal (a serial console log).
    pub fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Bar if !std::io::stderr().is_terminal() => ProgressMode::Plain,
            other => other,
        };
        Self {
            mode,
            quiet: false,
            bar: None,
            log: None,
            state: Mutex::new(State {
                stage: String::new(),
                total: None,
                written: 0,
                last_line: None,
            }),
        }
    }

    /// Nothing at all: for library callers and tests that only want the result.
    pub fn hidden() -> Self {
        let mut progress = Self::new(ProgressMode::Plain);
        progress.quiet = true;
        progress
    }

    /// Notes and summary also go to `log` (which prints them to stderr itself).
    pub fn log_to(&mut self, log: InstallLog) {
        self.log = Some(log);
    }

    /// A new stage (`writing`, `partitions`, `configuring`, ...) with its byte total if any.
    pub fn stage(&mut self, stage: &str, total: Option<u64>) {
        {
            let state = self
                .state
                .get_mut()
                .unwrap_or_else(|poison| poison.into_inner());
            state.stage = stage.to_string();
            state.total = total;
            state.written = 0;
            state.last_line = None;
        }
        if self.quiet {
            return;
        }
        if self.mode == ProgressMode::Bar {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            };
            let template = "{msg:12} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(stage.to_string());
            self.bar = Some(bar);
        } else {
            self.report(true);
        }
    }

    /// The stage has now written `bytes` in all.
    pub fn written(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            return;
        }
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .written = bytes;
        self.report(false);
    }

    /// A message between progress updates, kept apart from the bar.
    pub fn note(&self, message: &str) {
        if self.quiet {
            return;
        }
        match (&self.bar, self.mode, &self.log) {
            (Some(bar), _, Some(log)) => bar.suspend(|| log.line(message)),
            (Some(bar), _, None) => bar.println(message),
            (None, ProgressMode::Json, log) => {
                let line = serde_json::json!({ "message": message });
                println!("{line}");
                if let Some(log) = log {
                    log.line(message);
                }
            }
            (None, _, Some(log)) => log.line(message),
            (None, _, None) => eprintln!("{message}"),
        }
    }

    /// Ends the progress bar and prints the summary.
    pub fn summary(&mut self, summary: &Summary) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        let line = format!(
            "installed {} on {}: {} bytes written ({} image bytes) in {:.1} s, {:.0} MB/s, sha256 {}",
            summary.image,
            summary.disk,
            summary.bytes,
            summary.image_bytes,
            summary.seconds,
            summary.mb_per_s,
            summary.sha256
        );
        if self.mode == ProgressMode::Json {
            let json = serde_json::json!({ "summary": summary });
            println!("{json}");
        } else {
            println!("{line}");
        }
        // The copy of the log on the USB stick ends with the result too.
        if let Some(log) = &self.log {
            log.record(&line);
        }
        let _ = std::io::stdout().flush();
    }

    /// A line now when `force`d (a new stage) or when a second has passed since the last.
    fn report(&self, force: bool) {
        if self.quiet {
            return;
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = Instant::now();
        let due = state
            .last_line
            .is_none_or(|last| now.duration_since(last) >= LINE_INTERVAL);
        if !force && !due {
            return;
        }
        state.last_line = Some(now);
        match self.mode {
            ProgressMode::Json => {
                let line = JsonProgress {
                    stage: &state.stage,
                    bytes_written: state.written,
                    bytes_total: state.total,
                };
                if let Ok(text) = serde_json::to_string(&line) {
                    println!("{text}");
                }
            }
            _ => match state.total {
                Some(total) if total > 0 => eprintln!(
                    "{}: {} of {} MB ({}%)",
                    state.stage,
                    state.written / 1_000_000,
                    total / 1_000_000,
                    state.written * 100 / total
                ),
                _ if state.written > 0 => {
                    eprintln!("{}: {} MB", state.stage, state.written / 1_000_000)
                }
                _ => eprintln!("{}", state.stage),
            },
        }
    }
}
