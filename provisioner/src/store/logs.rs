//! Node logs: every syslog line (and the worker's action output) kept under its node.
//! PLACEHOLDER bodies: the types and method signatures are the contract.

use serde::{Deserialize, Serialize};

use super::{Result, Store};

/// A line to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLogLine {
    /// The program that logged it (syslog APP-NAME), or "syslog" when absent.
    pub source: String,
    /// Syslog severity 0-7.
    pub severity: u8,
    /// The sender's timestamp as sent, if any.
    pub sent_at: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Increasing per database; `node logs --follow` polls for lines after the last seq.
    pub seq: i64,
    pub received_at: String,
    pub source: String,
    pub severity: u8,
    pub sent_at: Option<String>,
    pub text: String,
}

impl Store {
    /// Appends lines in one transaction (the syslog receiver batches).
    pub fn append_logs(&self, _node_id: &str, _lines: &[NewLogLine]) -> Result<()> {
        todo!()
    }
    /// Lines with seq > `after`, oldest first, at most `limit`.
    pub fn node_logs(&self, _node_id: &str, _after: i64, _limit: usize) -> Result<Vec<LogLine>> {
        todo!()
    }
}
