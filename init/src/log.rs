//! Every line the init and its services log: on the console (stdout, which is /dev/console)
//! with the time since boot and its source, and in the kernel log (/dev/kmsg) with a stage tag.
//! With several `console=` (a screen and a serial line), /dev/console is only the last one, so
//! lines are copied to the other active consoles too: a field engineer at the screen of a
//! USB-installed node and a serial log both see every line.
//!
//! Lines go to /dev/kmsg at debug level so that the kernel does not echo them to the console a
//! second time unless the user asked for debug output.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Mutex, OnceLock};

/// How serious a line is; the console line of an error or a warning says so before the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed; printed with `error: `.
    Error,
    /// Something is wrong but the boot goes on; printed with `warning: `.
    Warn,
    /// Progress; printed without a tag.
    Info,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
        }
    }
}

struct Sinks {
    kmsg: Option<File>,
    other_consoles: Vec<File>,
}

static SINKS: Mutex<Sinks> = Mutex::new(Sinks {
    kmsg: None,
    other_consoles: Vec::new(),
});

/// Where lines go besides the console and the kernel log (syslog forwarding).
type Forward = dyn Fn(Level, &str, &str) + Send + Sync;
static FORWARD: OnceLock<&'static Forward> = OnceLock::new();

/// Also hand every line to `forward` from now on (once; later calls change nothing).
pub fn forward_to(forward: &'static Forward) {
    let _ = FORWARD.set(forward);
}

/// Start copying lines to /dev/kmsg (once devtmpfs is mounted). Failing to open it is not an
/// error: the console still gets every line.
pub fn open_kmsg() {
    let kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    if let Ok(mut sinks) = SINKS.lock() {
        sinks.kmsg = kmsg;
    }
}

/// Start copying lines to the active consoles other than /dev/console. Opened non-blocking: a
/// serial line held by flow control must never stall PID 1's logging (lines are dropped there
/// instead).
pub fn open_other_consoles() {
    let Ok(active) = std::fs::read_to_string("/sys/class/tty/console/active") else {
        return;
    };
    let consoles: Vec<File> = other_console_names(&active)
        .into_iter()
        .filter_map(|name| {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
                .open(format!("/dev/{name}"))
                .ok()
        })
        .collect();
    if let Ok(mut sinks) = SINKS.lock() {
        sinks.other_consoles = consoles;
    }
}

/// The kernel lists the active consoles with /dev/console's last: the others are the rest.
fn other_console_names(active: &str) -> Vec<&str> {
    let mut names: Vec<&str> = active.split_whitespace().collect();
    names.pop();
    names.retain(|name| name.chars().all(|c| c.is_ascii_alphanumeric()));
    names
}

/// Seconds since boot, the kernel's own clock for its log, so our lines and dmesg line up.
pub fn uptime_seconds() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

thread_local! {
    /// Set while this thread writes a line.
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// This thread is writing a line; dropped (also when a panic unwinds), it is not any more.
struct Writing;

impl Writing {
    /// `None` when this thread is already writing one: a panic in the middle of a line (or
    /// of its forwarding) reaches the panic hook, which logs, and the locks the first line
    /// holds would never be released to it.
    fn enter() -> Option<Writing> {
        let already = WRITING.try_with(|writing| writing.replace(true));
        (!already.unwrap_or(false)).then_some(Writing)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let _ = WRITING.try_with(|writing| writing.set(false));
    }
}

/// Log one line from `source` (a stage such as `rootfs`, or a service name).
pub fn line(level: Level, source: &str, message: &str) {
    let console = format!(
        "[{:>10.6}] {source}: {}{message}\n",
        uptime_seconds(),
        level.tag()
    );
    let Some(_writing) = Writing::enter() else {
        // The panic hook's line about a panic in logging: stderr (the console too) is the one
        // sink no line holds.
        let _ = std::io::stderr().write_all(console.as_bytes());
        return;
    };
    // A poisoned lock only means another thread panicked mid-line; logging must go on.
    let mut sinks = SINKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(console.as_bytes());
    let _ = stdout.flush();
    for other in &mut sinks.other_consoles {
        // A terminal wants CR LF; /dev/console gets the same translation from its tty.
        let _ = other.write_all(console.replace('\n', "\r\n").as_bytes());
    }
    if let Some(kmsg) = sinks.kmsg.as_mut() {
        let _ =
            kmsg.write_all(format!("<7>bootkit[{source}]: {}{message}\n", level.tag()).as_bytes());
    }
    drop(sinks);
    if let Some(forward) = FORWARD.get() {
        forward(level, source, message);
    }
}

/// `info!("rootfs", "unpacked {} files", n)`
#[macro_export]
macro_rules! info {
    ($source:expr, $($arg:tt)*) => {
        $crate::log::line($crate::log::Level::Info, $source, &format!($($arg)*))
    };
}

/// `warn!("modules", "module {name} not found")`
#[macro_export]
macro_rules! warn {
    ($source:expr, $($arg:tt)*) => {
        $crate::log::line($crate::log::Level::Warn, $source, &format!($($arg)*))
    };
}

/// `error!("rootfs", "...")`
#[macro_export]
macro_rules! error {
    ($source:expr, $($arg:tt)*) => {
        $crate::log::line($crate::log::Level::Error, $source, &format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_logged_while_one_is_written_on_the_same_thread_does_not_wait_for_it() {
        let outer = Writing::enter();
        assert!(outer.is_some());
        assert!(Writing::enter().is_none(), "nested on this thread");
        let elsewhere = std::thread::spawn(|| Writing::enter().is_some()).join();
        assert!(elsewhere.unwrap(), "another thread writes its own lines");
        drop(outer);
        assert!(
            Writing::enter().is_some(),
            "free again once the line is written"
        );
    }

    #[test]
    fn every_active_console_but_the_last_is_an_other_console() {
        assert_eq!(other_console_names("tty0 ttyS0\n"), ["tty0"]);
        assert_eq!(
            other_console_names("ttyS0 ttyS1 tty0\n"),
            ["ttyS0", "ttyS1"]
        );
        assert!(other_console_names("ttyS0\n").is_empty());
        assert!(other_console_names("").is_empty());
        assert!(other_console_names("../x ttyS0").is_empty());
    }
}
