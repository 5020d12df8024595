//! Progress for people and machines: a bar on a terminal, a plain line at most once a second
//! in a log, JSON lines (`--progress json`) for a provisioning service to parse.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::usbdata::InstallLog;
use crate::verify::Written;

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
    /// The image's sha256 matched a published one (given or found beside the image); false:
    /// `sha256` was only computed.
    pub checksum_verified: bool,
    /// Where that published sha256 came from (`--sha256`, a checksum file's path or URL).
    pub checksum_origin: Option<String>,
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
            checksum_verified: false,
            checksum_origin: None,
        }
    }
}

/// One progress line of `--progress json`. With a compressed source the image's size is
/// unknown until it is inflated, so `bytes_total` (and `percent`, `eta_seconds`) count the
/// compressed source, as coreos-installer does; `counting` says which.
#[derive(Serialize)]
struct JsonProgress<'a> {
    stage: &'a str,
    /// `"image"` (bytes written to the disk) or `"compressed source"` (bytes read from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    counting: Option<&'static str>,
    bytes_written: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_bytes_read: Option<u64>,
    bytes_total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_seconds: Option<u64>,
}

/// What a stage's total counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counting {
    /// Bytes written to the disk, against the image's (or the bmap's mapped) size.
    Image,
    /// Bytes read from a compressed source, against its file size or Content-Length.
    CompressedSource,
}

impl Counting {
    fn name(self) -> &'static str {
        match self {
            Counting::Image => "image",
            Counting::CompressedSource => "compressed source",
        }
    }
}

struct State {
    stage: String,
    total: Option<u64>,
    counting: Counting,
    written: u64,
    /// Source bytes read, for [`Counting::CompressedSource`].
    source_read: u64,
    started: Instant,
    last_line: Option<Instant>,
    /// The bytes written and read the last line showed, so a stage's end does not repeat
    /// it, and does add a line when only the bytes written moved on (a compressed source is
    /// read to its end before the writer is done).
    reported: (u64, u64),
}

impl State {
    /// The counted quantity so far.
    fn done(&self) -> u64 {
        match self.counting {
            Counting::Image => self.written,
            Counting::CompressedSource => self.source_read,
        }
    }

    /// Percent done, when there is a total.
    fn percent(&self) -> Option<u64> {
        let total = self.total.filter(|total| *total > 0)?;
        Some((self.done().min(total)).saturating_mul(100) / total)
    }

    /// Seconds left at the rate so far, once something was done.
    fn eta_seconds(&self, now: Instant) -> Option<u64> {
        let total = self.total?;
        let done = self.done();
        if done == 0 {
            return None;
        }
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let left = total.saturating_sub(done) as f64;
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive number of seconds, far below u64::MAX"
        )]
        Some((elapsed * left / done as f64).round() as u64)
    }
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
                counting: Counting::Image,
                written: 0,
                source_read: 0,
                started: Instant::now(),
                last_line: None,
                reported: (0, 0),
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

    /// A new stage (`writing`, `partitions`, `configuring`, ...) with its byte total if any;
    /// [`Progress::written`] counts against it.
    pub fn stage(&mut self, stage: &str, total: Option<u64>) {
        self.start_stage(stage, total, Counting::Image);
    }

    /// A new stage that reads a compressed source of `source_total` bytes (its file size or
    /// Content-Length): the image's own size is unknown until it is inflated, so percent and
    /// ETA count the compressed bytes read ([`Progress::advanced`]).
    pub fn stage_compressed(&mut self, stage: &str, source_total: u64) {
        self.start_stage(stage, Some(source_total), Counting::CompressedSource);
    }

    fn start_stage(&mut self, stage: &str, total: Option<u64>, counting: Counting) {
        self.end_stage();
        {
            let state = self
                .state
                .get_mut()
                .unwrap_or_else(|poison| poison.into_inner());
            state.stage = stage.to_string();
            state.total = total;
            state.counting = counting;
            state.written = 0;
            state.source_read = 0;
            state.started = Instant::now();
            state.last_line = None;
            state.reported = (0, 0);
        }
        if self.quiet {
            return;
        }
        if self.mode == ProgressMode::Bar {
            let (bar, template) = match (total, counting) {
                (Some(total), Counting::Image) => (
                    ProgressBar::new(total),
                    "{msg:12} [{elapsed_precise}] {wide_bar} {percent:>3}% {bytes}/{total_bytes} \
                     {bytes_per_sec} eta {eta}",
                ),
                (Some(total), Counting::CompressedSource) => (
                    ProgressBar::new(total),
                    "{msg:12} [{elapsed_precise}] {wide_bar} {percent:>3}% of {total_bytes} \
                     compressed, {bytes_per_sec} eta {eta}",
                ),
                // No total: no bar to fill and no byte counts, only that the stage runs.
                (None, _) => (
                    ProgressBar::new_spinner(),
                    "{msg:12} [{elapsed_precise}] {spinner}",
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(stage.to_string());
            self.bar = Some(bar);
        } else {
            self.report(true);
        }
    }

    /// The last line of a stage that counted bytes: its bar left full, or a last plain or
    /// JSON line, so the log shows how it ended and not its state a second before.
    fn end_stage(&mut self) {
        if let Some(bar) = self.bar.take() {
            if bar.length().is_some() {
                bar.finish();
            } else {
                bar.finish_and_clear();
            }
            return;
        }
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poison| poison.into_inner());
        let counted = state.last_line.is_some()
            && (state.total.is_some() || state.done() > 0)
            && state.reported != (state.written, state.source_read);
        if counted {
            self.report(true);
        }
    }

    /// The stage has now written `bytes` in all.
    pub fn written(&self, bytes: u64) {
        self.advanced(bytes, None);
    }

    /// The stage has now written `bytes` to the disk and, with a compressed source, read
    /// `source_bytes` from it.
    pub fn advanced(&self, bytes: u64, source_bytes: Option<u64>) {
        let counting = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            state.written = bytes;
            if let Some(read) = source_bytes {
                state.source_read = read;
            }
            state.done()
        };
        if let Some(bar) = &self.bar {
            bar.set_position(counting);
            return;
        }
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
        self.end_stage();
        if self.quiet {
            return;
        }
        let written = Written {
            checksum_origin: summary.checksum_origin.clone(),
        };
        let line = format!(
            "installed {} on {}: {} bytes written ({} image bytes) in {:.1} s, {:.0} MB/s, sha256 {}; {written}",
            summary.image,
            summary.disk,
            summary.bytes,
            summary.image_bytes,
            summary.seconds,
            summary.mb_per_s,
            summary.sha256,
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
        state.reported = (state.written, state.source_read);
        let percent = state.percent();
        let eta = state.eta_seconds(now);
        let compressed = state.counting == Counting::CompressedSource;
        match self.mode {
            ProgressMode::Json => {
                let line = JsonProgress {
                    stage: &state.stage,
                    counting: state.total.map(|_| state.counting.name()),
                    bytes_written: state.written,
                    source_bytes_read: compressed.then_some(state.source_read),
                    bytes_total: state.total,
                    percent,
                    eta_seconds: eta,
                };
                if let Ok(text) = serde_json::to_string(&line) {
                    println!("{text}");
                }
            }
            _ => {
                let eta = eta.map_or_else(String::new, |eta| format!(", eta {eta} s"));
                match (state.total, percent) {
                    (Some(total), Some(percent)) => eprintln!(
                        "{}: {} of {} MB{} ({percent}%){eta}",
                        state.stage,
                        state.done() / 1_000_000,
                        total / 1_000_000,
                        if compressed { " compressed" } else { "" },
                    ),
                    _ if state.written > 0 => {
                        eprintln!("{}: {} MB", state.stage, state.written / 1_000_000)
                    }
                    _ => eprintln!("{}", state.stage),
                }
            }
        }
    }
}
