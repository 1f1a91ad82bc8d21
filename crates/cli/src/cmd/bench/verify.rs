//! `oneshot bench verify` (being built with the checker).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("oneshot bench verify is not built yet")
}
