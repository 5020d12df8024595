//! Tinkerbell's object model in and out of the provisioner: `provisioner apply -f FILE`
//! takes `Hardware`, `Template` and `Workflow` objects as kubectl users write them, and
//! `provisioner get` writes them back.
//!
//! - [`objects`]: the objects' envelope and the typed parts of their specs (both versions).
//! - [`convert`]: objects to the store's records and back, with upstream's workflow status.
//!
//! Records applied from objects have the id `namespace/name`. Each record keeps the object
//! it was applied from (every field, known to upstream or not) so that `get` writes back what
//! was applied and a second `apply` of that output is `unchanged`.

pub mod convert;
pub mod objects;

/// What applying an object did to its record (the store decides it).
pub use crate::store::Outcome;
