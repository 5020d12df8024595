//! Registering nodes: registrations stored in one transaction, each with what the operator
//! should know about the node it names.
//!
//! Apart from `registrations` because the warnings read nodes, and `nodes` already depends on
//! `registrations` (a node boots what its registration says).

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::identity::Identity;
use super::nodes::{NodeState, find_node};
use super::registrations::{Registration, RegistrationSpec, insert_csv, insert_registration};
use super::{Result, Store};

/// A stored registration and what the operator should know about it (e.g. "node N is already
/// provisioned; `provisioner node reprovision N` to install it again").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The registration as stored.
    pub registration: Registration,
    /// What the operator should know about it; empty when nothing.
    pub warnings: Vec<String>,
}

impl Store {
    /// Validates and stores one registration.
    pub fn register(&self, spec: &RegistrationSpec) -> Result<Registered> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let registration = insert_registration(&transaction, spec)?;
        let registered = with_warnings(&transaction, registration)?;
        transaction.commit()?;
        Ok(registered)
    }

    /// OEP's CSV (`Serial,UUID,OSProfile,Site,Secure,RemoteUser,Metadata`, header optional;
    /// a MAC column accepted too). All rows or none: an error names the line and column.
    pub fn import_registrations(&self, csv: &str) -> Result<Vec<Registered>> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let registered = insert_csv(&transaction, csv)?
            .into_iter()
            .map(|registration| with_warnings(&transaction, registration))
            .collect::<Result<Vec<_>>>()?;
        transaction.commit()?;
        Ok(registered)
    }
}

fn with_warnings(connection: &Connection, registration: Registration) -> Result<Registered> {
    let warnings = provisioned_warning(connection, &registration.identity())?
        .into_iter()
        .collect();
    Ok(Registered {
        registration,
        warnings,
    })
}

/// OEP users register nodes that are already installed and wonder why nothing happens.
fn provisioned_warning(connection: &Connection, identity: &Identity) -> Result<Option<String>> {
    let Some(node) = find_node(connection, identity)? else {
        return Ok(None);
    };
    Ok((node.state == NodeState::Provisioned).then(|| {
        format!(
            "node {} is already provisioned and boots from its disk; run `provisioner node reprovision {}` to install it again",
            node.id, node.id
        )
    }))
}
