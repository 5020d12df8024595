//! Revoking a node's credentials inside a transaction of the node's own: reprovision and the
//! credential commands share it, and it lives under `nodes` so the node lifecycle needs nothing
//! from `credentials` (which builds on the lifecycle).

use rusqlite::{Connection, params};

use super::super::{Result, now_ms};
use super::records::insert_event;

/// Revokes the node's active credentials in the caller's transaction, noting `why` on its
/// timeline when there were any; returns how many.
pub(in crate::store) fn revoke_in(
    connection: &Connection,
    node_id: &str,
    why: &str,
) -> Result<usize> {
    let revoked = connection.execute(
        "UPDATE node_credentials SET revoked_ms = ?2 WHERE node_id = ?1 AND revoked_ms IS NULL",
        params![node_id, now_ms()],
    )?;
    if revoked > 0 {
        insert_event(
            connection,
            node_id,
            "credentials-revoked",
            &format!("{revoked} credential(s) {why}; the node may enroll again"),
        )?;
    }
    Ok(revoked)
}
