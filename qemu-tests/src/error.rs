//! The harness's one error type: every variant says what to do next, because
//! the person reading it is looking at a failed test, not at this code.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the tests need has not been made yet.
    #[error("{what} is missing: {path}\n  create it with: {how}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        how: &'static str,
    },

    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "timed out after {:.1} s waiting for {wanted} on the console of VM `{vm}`\n  log: {}\n--- last console lines ---\n{tail}\n--- end ---",
        after.as_secs_f64(),
        log.display()
    )]
    Timeout {
        vm: String,
        wanted: String,
        after: Duration,
        log: PathBuf,
        tail: String,
    },

    #[error(
        "VM `{vm}` exited ({status}) before {wanted} appeared on its console\n  log: {}\n--- last console lines ---\n{tail}\n--- end ---",
        log.display()
    )]
    Exited {
        vm: String,
        wanted: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("VM `{vm}` did not exit within {:.1} s\n  log: {}\n--- last console lines ---\n{tail}\n--- end ---", after.as_secs_f64(), log.display())]
    StillRunning {
        vm: String,
        after: Duration,
        log: PathBuf,
        tail: String,
    },

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
