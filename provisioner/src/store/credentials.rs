//! Node credentials (issue 15 §1): the client certificates the node CA issued, and the
//! onboarding client secrets of nodes that enrolled without a certificate request.
//!
//! First contact wins: a node with an active credential (issued here, not revoked, not
//! expired) cannot onboard again until an operator revokes it (`provisioner node revoke`,
//! `node approve-enrollment` or `node reprovision`). The refused attempt changes nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::credential::Credential;
use super::nodes::{discover_in, find_node, insert_event, new_client_secret, revoke_in};
use super::{Discovered, Discovery, Node, Result, Store, StoreError, now_ms, rfc3339};
use crate::node_ca::SignedCredential;

/// The kinds of credential a node holds; stored as their names.
const CERTIFICATE: &str = "certificate";
const CLIENT_SECRET: &str = "client-secret";

/// What `node revoke` / `node approve-enrollment` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Revocation {
    /// The node.
    pub node_id: String,
    /// How many of its credentials were active and are now revoked.
    pub revoked: usize,
}

/// Why an onboarding request is refused (PERMISSION_DENIED to the caller); the refused
/// attempt changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentRefused {
    /// A second enrollment: the node holds an active credential and the caller did not
    /// present it.
    #[error(
        "node {node_id} is enrolled already and its credential is active, so it cannot onboard again; \
         if this is the node itself (reinstalled or its RAM lost), an operator runs \
         `provisioner node approve-enrollment {node_id}` (or `provisioner node reprovision {node_id}` \
         to install again)"
    )]
    AlreadyEnrolled {
        /// The node claimed.
        node_id: String,
    },
    /// The caller presented one node's certificate and claimed another machine's identity
    /// (or one this provisioner does not know): a node onboards only as itself.
    #[error(
        "the client certificate is node {certificate_node}'s, and the identity sent ({claimed}) \
         is not that node's: a node onboards only as itself; if this machine's identity really \
         changed (a replaced board), an operator runs `provisioner node reprovision \
         {certificate_node}` and the machine enrolls without its old certificate"
    )]
    NotItself {
        /// The node the presented certificate was issued to.
        certificate_node: String,
        /// The node the identity matched, or a description of an unknown identity.
        claimed: String,
    },
}

/// What an onboarding request ended in.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The node and its workflow as now stored.
    pub discovered: Discovered,
    /// The new client secret; None when the node waits for reprovisioning (nothing issued).
    pub client_secret: Option<String>,
    /// The certificate signed for the node's request, when it sent one.
    pub certificate: Option<SignedCredential>,
}

impl Store {
    /// Records a certificate the node CA issued to `node_id`, valid until `not_after`.
    pub fn record_credential(
        &self,
        fingerprint_hex: &str,
        node_id: &str,
        not_after: SystemTime,
    ) -> Result<()> {
        insert_credential(
            &self.connection(),
            fingerprint_hex,
            node_id,
            CERTIFICATE,
            not_after,
        )
    }

    /// The node a presented certificate belongs to: Some only if it was issued here and is
    /// neither revoked nor expired.
    pub fn active_credential(&self, fingerprint_hex: &str) -> Result<Option<String>> {
        Ok(self
            .connection()
            .query_row(
                "SELECT node_id FROM node_credentials
                 WHERE fingerprint = ?1 AND kind = ?2 AND revoked_ms IS NULL AND not_after_ms > ?3",
                params![fingerprint_hex.to_ascii_lowercase(), CERTIFICATE, now_ms()],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Revokes every credential of the node; returns how many were active.
    pub fn revoke_credentials(&self, node_id: &str) -> Result<usize> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let revoked = revoke_in(&transaction, node_id, "revoked by the operator")?;
        transaction.commit()?;
        Ok(revoked)
    }

    /// `provisioner node revoke KEY`: the node (by id, MAC, serial or UUID) loses every
    /// credential; its certificate no longer authenticates anywhere.
    pub fn revoke_node(&self, key: &str) -> Result<Revocation> {
        self.revoke_node_because(key, "revoked by the operator")
    }

    /// `provisioner node approve-enrollment KEY`: revokes the node's credentials so that
    /// exactly one new enrollment succeeds (the next one is refused again, first contact
    /// wins), for a node that lost its credential (reinstalled, its RAM cleared).
    pub fn approve_enrollment(&self, key: &str) -> Result<Revocation> {
        self.revoke_node_because(key, "revoked to approve a new enrollment")
    }

    fn revoke_node_because(&self, key: &str, why: &str) -> Result<Revocation> {
        let node_id = self.get_node(key)?.id;
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let revoked = revoke_in(&transaction, &node_id, why)?;
        transaction.commit()?;
        Ok(Revocation { node_id, revoked })
    }

    /// Whether the node holds a credential that is neither revoked nor expired.
    pub fn node_has_active_credential(&self, node_id: &str) -> Result<bool> {
        has_active(&self.connection(), node_id)
    }

    /// Every credential issued to the node, oldest first.
    pub fn node_credentials(&self, node_id: &str) -> Result<Vec<Credential>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT fingerprint, kind, issued_ms, not_after_ms, revoked_ms,
                    revoked_ms IS NULL AND not_after_ms > ?2
             FROM node_credentials WHERE node_id = ?1 ORDER BY issued_ms, fingerprint",
        )?;
        let credentials = statement
            .query_map(params![node_id, now_ms()], |row| {
                Ok(Credential {
                    fingerprint: row.get(0)?,
                    kind: row.get(1)?,
                    issued_at: rfc3339(row.get(2)?),
                    not_after: rfc3339(row.get(3)?),
                    revoked_at: row.get::<_, Option<i64>>(4)?.map(rfc3339),
                    active: row.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(credentials)
    }

    /// Onboarding, in one transaction: refuses a node that holds an active credential
    /// unless the caller presented that credential's certificate (`presented`: the node id
    /// of the caller's active client certificate; a node re-entering onboarding in the same
    /// boot), and refuses a caller whose certificate is another node's (changing nothing);
    /// else records the discovery and, unless the node waits for
    /// reprovisioning, issues a client secret and the certificate `sign` makes for the node
    /// id, recording both as the node's credentials, valid for `lifetime`.
    ///
    /// `caller` is the request's peer address, for the refusal's log line.
    pub fn enroll<E: From<StoreError> + From<EnrollmentRefused>>(
        &self,
        discovery: &Discovery,
        caller: &str,
        presented: Option<&str>,
        lifetime: Duration,
        sign: impl FnOnce(&Node) -> Result<Option<SignedCredential>, E>,
    ) -> Result<Enrolled, E> {
        let mut connection = self.connection();
        let transaction = connection.transaction().map_err(StoreError::from)?;
        let found = find_node(&transaction, &discovery.identity)?;
        if let Some(certificate_node) = presented
            && found
                .as_ref()
                .is_none_or(|node| node.id != certificate_node)
        {
            let claimed = found.map_or_else(
                || "a machine this provisioner does not know".to_string(),
                |node| format!("node {}", node.id),
            );
            tracing::warn!(
                certificate_node,
                claimed,
                caller,
                "onboarding refused: a node's certificate with another machine's identity"
            );
            return Err(EnrollmentRefused::NotItself {
                certificate_node: certificate_node.to_string(),
                claimed,
            }
            .into());
        }
        let re_entry = presented.is_some();
        if let Some(node) = found
            && !re_entry
            && has_active(&transaction, &node.id)?
        {
            tracing::warn!(
                node = %node.id,
                caller,
                "onboarding refused: the node holds an active credential (a second enrollment, or someone claiming its identity)"
            );
            return Err(EnrollmentRefused::AlreadyEnrolled { node_id: node.id }.into());
        }
        let discovered = discover_in(&transaction, discovery)?;
        let node = &discovered.node;
        if node.state.awaits_rearm() {
            transaction.commit().map_err(StoreError::from)?;
            return Ok(Enrolled {
                discovered,
                client_secret: None,
                certificate: None,
            });
        }
        let not_after = SystemTime::now() + lifetime;
        let (client_secret, secret_sha256) = new_client_secret(&transaction, &node.id)?;
        insert_credential(
            &transaction,
            &secret_sha256,
            &node.id,
            CLIENT_SECRET,
            not_after,
        )?;
        let certificate = sign(node)?;
        if let Some(certificate) = &certificate {
            insert_credential(
                &transaction,
                &certificate.fingerprint_hex,
                &node.id,
                CERTIFICATE,
                certificate.not_after,
            )?;
        }
        let issued = match (certificate.is_some(), re_entry) {
            (true, false) => "client certificate and client secret",
            (false, false) => "client secret",
            (true, true) => {
                "re-entered with its client certificate: a new certificate and client secret"
            }
            (false, true) => "re-entered with its client certificate: a new client secret",
        };
        insert_event(
            &transaction,
            &node.id,
            "enrolled",
            &format!(
                "{issued} issued to {caller}, valid until {}",
                rfc3339(ms(not_after))
            ),
        )?;
        transaction.commit().map_err(StoreError::from)?;
        Ok(Enrolled {
            discovered,
            client_secret: Some(client_secret),
            certificate,
        })
    }
}

fn has_active(connection: &Connection, node_id: &str) -> Result<bool> {
    Ok(connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM node_credentials
         WHERE node_id = ?1 AND revoked_ms IS NULL AND not_after_ms > ?2)",
        params![node_id, now_ms()],
        |row| row.get(0),
    )?)
}

fn insert_credential(
    connection: &Connection,
    fingerprint_hex: &str,
    node_id: &str,
    kind: &str,
    not_after: SystemTime,
) -> Result<()> {
    connection.execute(
        "INSERT INTO node_credentials (fingerprint, node_id, kind, issued_ms, not_after_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            fingerprint_hex.to_ascii_lowercase(),
            node_id,
            kind,
            now_ms(),
            ms(not_after)
        ],
    )?;
    Ok(())
}

fn ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
