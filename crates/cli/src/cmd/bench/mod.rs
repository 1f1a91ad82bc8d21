//! `oneshot bench <what>`: each benchmark in its own module.
use clap::Subcommand;

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
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.what {
        Bench::Verify(a) => verify::run(a),
    }
}
