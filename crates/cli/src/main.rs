//! `oneshot`: one binary for 1-shot RLVR — verify, select, train, eval, score, demo, bench.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses the command line
//! and dispatches. A subcommand returns the process exit code it wants (0 = success,
//! 2 = "ran, but some input was bad"), and any error is printed with its cause chain.

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "oneshot",
    version,
    about = "Reinforcement learning with verifiable rewards from one example"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check model answers against gold answers with the math answer checker.
    Verify(cmd::verify::Args),
    /// Benchmarks (checker speed, model speed).
    Bench(cmd::bench::Args),
    /// Rank the training pool by historical variance and write the few-shot training file.
    Select(cmd::select::Args),
    /// Score responses generated elsewhere against a benchmark (samples, summary, table).
    Score(cmd::score::Args),
    /// Generate on the math benchmarks with the paper's protocol, check, summarise (resumable).
    Eval(cmd::eval::Args),
    /// 1-shot RLVR training (GRPO/PPO/...; the paper's recipe by default).
    Train(cmd::train::Args),
    /// The synthetic math lab: task generation, base-model pretraining, lab evaluation.
    Lab(cmd::lab::Args),
    /// 1-shot RLVR reproduced on the built-in lab in minutes on a CPU: base vs 1-shot report.
    Demo(cmd::demo::Args),
    /// A LoRA run's adapters in PEFT's layout, or merged into an HF checkpoint (--merge).
    Export(cmd::export::Args),
}

fn main() {
    oneshot_kernels::alloc::keep_freed_memory();
    oneshot_run::set_build_commit(env!("ONESHOT_GIT_COMMIT"));
    let cli = Cli::parse();
    // A mistyped ONESHOT_ISA stops the run here instead of being ignored by the kernels.
    if let Err(e) = oneshot_kernels::isa::from_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let result = match cli.command {
        Command::Verify(args) => cmd::verify::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Select(args) => cmd::select::run(args),
        Command::Score(args) => cmd::score::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Lab(args) => cmd::lab::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Export(args) => cmd::export::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}
