//! The service supervisor.
