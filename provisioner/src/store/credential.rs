//! What the store shows of one node credential: a record without behaviour, shared by the
//! node detail (`nodes`) and the credential rules (`credentials`), which builds on the nodes.

/// One credential of a node, for `provisioner node show` and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    /// SHA-256 hex of the certificate's DER (or of the client secret).
    pub fingerprint: String,
    /// `certificate` or `client-secret`.
    pub kind: String,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
    /// When it expires (RFC 3339).
    pub not_after: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// Neither revoked nor expired: it authenticates the node now.
    pub active: bool,
}
