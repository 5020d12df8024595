//! The audit log: who changed what through the admin API or the local CLI, and every refused
//! admin request, in the same database as what they changed.
//!
//! Bounded like the node logs: at most [`MAX_AUDIT_ENTRIES`] entries, the newest, and of those
//! at most [`MAX_UNAUTHENTICATED_ENTRIES`] of requests without a valid credential, so that an
//! anonymous client hammering the API can push out only its own entries, never an
//! administrator's.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Result, Store, now_ms, rfc3339};

/// The newest entries kept; older ones are deleted as new ones arrive.
pub const MAX_AUDIT_ENTRIES: i64 = 100_000;

/// The newest entries kept of requests answered 401 (no or a wrong credential).
pub const MAX_UNAUTHENTICATED_ENTRIES: i64 = 10_000;

/// The status an unauthenticated request is answered with, whose entries have their own bound.
const UNAUTHENTICATED: u16 = 401;

/// The most entries one read returns.
pub const MAX_AUDIT_READ: usize = 10_000;

/// An entry to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    /// Who: `admin token 1a2b3c4d` (first 8 hex of the token's SHA-256, never the token),
    /// `client certificate CN=... sha256 ...`, `local CLI (uid N)`, or `no credential`.
    pub actor: String,
    /// The client's address (`ip:port`), or `local` for the CLI.
    pub address: String,
    /// The HTTP method, or `CLI` for a local command.
    pub method: String,
    /// The request path with its ids (no query), or the CLI command (`node reprovision`).
    pub path: String,
    /// What was asked, in a few words (`create profile "edge"`).
    pub summary: String,
    /// The HTTP status answered, or the CLI's exit status (0 = done, 1 = failed).
    pub status: u16,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing per database.
    pub seq: i64,
    /// When it happened, in ms since the epoch (what `since` compares with).
    pub at_ms: i64,
    /// The same instant as RFC 3339 (ms, UTC), for people.
    pub at: String,
    /// What was recorded.
    #[serde(flatten)]
    pub entry: NewAuditEntry,
}

impl Store {
    /// Records `entry` now, dropping the oldest entries beyond the bounds.
    pub fn record_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        self.record_audit_bounded(entry, MAX_AUDIT_ENTRIES, MAX_UNAUTHENTICATED_ENTRIES)
    }

    /// [`Store::record_audit`] with the bounds given (the tests' small ones).
    fn record_audit_bounded(
        &self,
        entry: &NewAuditEntry,
        max_entries: i64,
        max_unauthenticated: i64,
    ) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO audit_log (at_ms, actor, address, method, path, summary, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                now_ms(),
                entry.actor,
                entry.address,
                entry.method,
                entry.path,
                entry.summary,
                entry.status
            ],
        )?;
        if entry.status == UNAUTHENTICATED {
            transaction.execute(
                "DELETE FROM audit_log WHERE status = ?1 AND seq <= (
                    SELECT seq FROM audit_log WHERE status = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                params![UNAUTHENTICATED, max_unauthenticated],
            )?;
        }
        transaction.execute(
            "DELETE FROM audit_log WHERE seq <= (
                SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            [max_entries],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The newest `limit` entries recorded at or after `since_ms`, oldest first.
    pub fn audit_log(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit.min(MAX_AUDIT_READ)).unwrap_or(i64::MAX);
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT seq, at_ms, actor, address, method, path, summary, status FROM (
                 SELECT * FROM audit_log WHERE at_ms >= ?1 ORDER BY seq DESC LIMIT ?2)
             ORDER BY seq",
        )?;
        let entries = statement
            .query_map(params![since_ms, limit], |row| {
                let at_ms: i64 = row.get(1)?;
                Ok(AuditEntry {
                    seq: row.get(0)?,
                    at_ms,
                    at: rfc3339(at_ms),
                    entry: NewAuditEntry {
                        actor: row.get(2)?,
                        address: row.get(3)?,
                        method: row.get(4)?,
                        path: row.get(5)?,
                        summary: row.get(6)?,
                        status: row.get(7)?,
                    },
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: &str, status: u16) -> NewAuditEntry {
        NewAuditEntry {
            actor: actor.into(),
            address: "192.0.2.7:4000".into(),
            method: "POST".into(),
            path: "/api/v1/profiles".into(),
            summary: "create profile".into(),
            status,
        }
    }

    /// Anonymous refusals beyond their bound push out older anonymous refusals only: the
    /// administrator's entries stay.
    #[test]
    fn a_flood_of_refused_requests_keeps_the_administrators_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("audit.db")).unwrap();
        let record = |actor, status| {
            store
                .record_audit_bounded(&entry(actor, status), 20, 5)
                .unwrap();
        };
        record("admin token 1a2b3c4d", 201);
        for _ in 0..50 {
            record("no credential", 401);
        }
        let entries = store.audit_log(0, MAX_AUDIT_READ).unwrap();
        assert_eq!(entries.len(), 6, "{entries:?}");
        assert_eq!(entries[0].entry.actor, "admin token 1a2b3c4d");
        // Past the total bound, the oldest go whoever made them.
        for _ in 0..30 {
            record("admin token 1a2b3c4d", 204);
        }
        let entries = store.audit_log(0, MAX_AUDIT_READ).unwrap();
        assert_eq!(entries.len(), 20);
        assert!(entries.iter().all(|e| e.entry.status == 204));
    }

    #[test]
    fn a_read_returns_the_newest_entries_since_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("audit.db")).unwrap();
        for status in [200, 201, 204] {
            store
                .record_audit(&entry("admin token 1a2b3c4d", status))
                .unwrap();
        }
        let newest: Vec<u16> = store
            .audit_log(0, 2)
            .unwrap()
            .iter()
            .map(|e| e.entry.status)
            .collect();
        assert_eq!(newest, [201, 204]);
        assert!(store.audit_log(now_ms() + 60_000, 10).unwrap().is_empty());
    }
}
