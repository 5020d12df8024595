//! The harness's one error type: every variant says what to do next, because
//! the person reading it is looking at a failed test, not at this code.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// The harness's results; errors are [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a QEMU test could not run or failed; each message says what to do or shows the console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the tests need has not been made yet.
    #[error("{what} is missing: {path}\n  create it with: {how}")]
    Missing {
        /// What is missing, for the message (`the test image's kernel`).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The command that makes it (`scripts/build-bootkit.sh`).
        how: &'static str,
    },

    /// A file or process operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The awaited console text did not appear in time.
    #[error(
        "timed out after {:.1} s waiting for {wanted} on the console of VM `{vm}`\n  log: {}\n--- last console lines ---\n{tail}\n--- end ---",
        after.as_secs_f64(),
        log.display()
    )]
    Timeout {
        /// The VM's name.
        vm: String,
        /// The text waited for.
        wanted: String,
        /// How long it waited.
        after: Duration,
        /// The VM's console log.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },

    /// QEMU exited before the awaited console text appeared.
    #[error(
        "VM `{vm}` exited ({status}) before {wanted} appeared on its console\n  log: {}\n--- last console lines ---\n{tail}\n--- end ---",
        log.display()
    )]
    Exited {
        /// The VM's name.
        vm: String,
        /// The text waited for.
        wanted: String,
        /// QEMU's exit status, as text.
        status: String,
        /// The VM's console log.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },

    /// QEMU did not exit in time (a poweroff that did not happen).
    #[error("VM `{vm}` did not exit within {:.1} s\n  log: {}\n--- last console lines ---\n{tail}\n--- end ---", after.as_secs_f64(), log.display())]
    StillRunning {
        /// The VM's name.
        vm: String,
        /// How long it waited.
        after: Duration,
        /// The VM's console log.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },

    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// True for the "pattern never appeared" errors (timeout or early exit),
    /// so a test can assert that something did *not* happen.
    pub fn is_not_seen(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Exited { .. })
    }
}

pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "exit status unknown".to_string(),
    }
}
