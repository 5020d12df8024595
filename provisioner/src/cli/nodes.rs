//! `provisioner node ...` and `provisioner profile ...`. PLACEHOLDER: being written.

use clap::Subcommand;
use provisioner::store::Store;

use super::output::Output;

#[derive(Subcommand)]
pub enum NodeCommand {
    List,
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    List,
}

pub fn node(_store: &Store, _out: &Output, _command: NodeCommand) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}

pub fn profile(_store: &Store, _out: &Output, _command: ProfileCommand) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
