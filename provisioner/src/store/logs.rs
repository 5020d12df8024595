//! Node logs: every syslog line (and the worker's action output) kept under its node.
//! At most [`MAX_LOG_LINES_PER_NODE`] lines are kept per node, the newest: a chatty node
//! cannot fill the provisioner's disk.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Result, Store, now_ms, rfc3339};

/// The newest lines kept per node; older ones are deleted as new ones arrive.
pub const MAX_LOG_LINES_PER_NODE: i64 = 100_000;

/// A line to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLogLine {
    /// The program that logged it (syslog APP-NAME), or "syslog" when absent.
    pub source: String,
    /// Syslog severity 0-7.
    pub severity: u8,
    /// The sender's timestamp as sent, if any.
    pub sent_at: Option<String>,
    /// The message (syslog MSG).
    pub text: String,
}

/// A stored log line of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Increasing per database; `node logs --follow` polls for lines after the last seq.
    pub seq: i64,
    /// When the provisioner received it (RFC 3339, ms, UTC).
    pub received_at: String,
    /// The program that logged it (syslog APP-NAME), or "syslog" when absent.
    pub source: String,
    /// Syslog severity 0 (emergency) to 7 (debug).
    pub severity: u8,
    /// The sender's timestamp as sent, if any.
    pub sent_at: Option<String>,
    /// The message (syslog MSG).
    pub text: String,
}

impl Store {
    /// Appends lines in one transaction (the syslog receiver batches).
    pub fn append_logs(&self, node_id: &str, lines: &[NewLogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let received = now_ms();
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO node_logs (node_id, received_ms, source, severity, sent_at, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for line in lines {
                insert.execute(params![
                    node_id,
                    received,
                    line.source,
                    line.severity,
                    line.sent_at,
                    line.text
                ])?;
            }
        }
        transaction.execute(
            "DELETE FROM node_logs WHERE node_id = ?1 AND seq <= (
                SELECT seq FROM node_logs WHERE node_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            params![node_id, MAX_LOG_LINES_PER_NODE],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Lines with seq > `after`, oldest first, at most `limit`.
    pub fn node_logs(&self, node_id: &str, after: i64, limit: usize) -> Result<Vec<LogLine>> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT seq, received_ms, source, severity, sent_at, text FROM node_logs
             WHERE node_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let lines = statement
            .query_map(
                params![node_id, after, i64::try_from(limit).unwrap_or(i64::MAX)],
                |row| {
                    Ok(LogLine {
                        seq: row.get(0)?,
                        received_at: rfc3339(row.get(1)?),
                        source: row.get(2)?,
                        severity: row.get(3)?,
                        sent_at: row.get(4)?,
                        text: row.get(5)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines)
    }
}
