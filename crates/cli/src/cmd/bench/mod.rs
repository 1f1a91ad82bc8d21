//! `oneshot bench <what>`: each benchmark in its own module.
use clap::Subcommand;

mod model;
mod rollout;
mod verify;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Time the answer checker on labelled cases, single-threaded and on all cores.
    Verify(verify::Args),
    /// Time the model engine on random weights of a given shape: forward log-probs, KV-cache
    /// decoding at several batch sizes, and a training step.
    Model(model::Args),
    /// Time the 1-shot rollout: samples of one prompt with continuous batching, seeded lengths.
    Rollout(rollout::Args),
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.what {
        Bench::Verify(a) => verify::run(a),
        Bench::Model(a) => model::run(a),
        Bench::Rollout(a) => rollout::run(a),
    }
}
