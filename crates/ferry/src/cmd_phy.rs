//! `ferry phy`: physical-layer tools.

use clap::Args;

/// Arguments of `ferry phy`.
#[derive(Args)]
pub struct PhyArgs {}

/// Runs `ferry phy`.
pub fn run(_args: PhyArgs) -> anyhow::Result<()> {
    anyhow::bail!("`ferry phy` is not written yet")
}
