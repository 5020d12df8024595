//! The command line's parts, a module per command group.

pub mod admin;
pub mod audit;
pub mod nodes;
pub mod objects;
pub mod output;
pub mod records;
pub mod remote;
pub mod serve;
