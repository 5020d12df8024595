//! `provisioner init` and the admin listener's flags of `serve`. PLACEHOLDER: being written.

use super::output::Output;

/// Flags of `serve` for the admin API and page (flattened into `ServeArgs`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AdminArgs {}

#[derive(clap::Args)]
pub struct InitArgs {}

pub fn init(_args: &InitArgs, _out: &Output) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
