//! `oneshot train`: 1-shot RLVR from a TOML config (defaults: the paper's recipe), with every
//! key overridable (`--set section.key=value`) and the common ones as flags.

use std::path::PathBuf;

use oneshot_config::quoted;
use oneshot_run::{command_line, write_run_json};
use oneshot_train::dist::{self, World};
use oneshot_train::{train, RunOptions, TrainConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Run config (TOML); keys it lacks take the paper's defaults (see configs/one_shot_pi1.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model directory or hub id (sets model.path).
    #[arg(long)]
    model: Option<String>,
    /// Output directory (sets trainer.output_dir).
    #[arg(long)]
    output_dir: Option<String>,
    /// Training steps (sets trainer.total_steps).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed (sets trainer.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda or cuda:N (sets model.device).
    #[arg(long)]
    device: Option<String>,
    /// Training parquet file(s) (sets data.train_files).
    #[arg(long, value_delimiter = ',')]
    train_files: Vec<String>,
    /// Override any config key: `--set optim.lr=1e-5 --set rollout.n=4`.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    /// Continue from the newest checkpoint in the output directory.
    #[arg(long)]
    resume: bool,
    /// Stop after this many steps in total (the run can be resumed later).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Print the resolved config, and the world the launcher started this rank in, and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    threads: super::threads::Threads,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    args.threads.apply()?;
    // Flags are applied as overrides after the file, and `--set` after the flags.
    let mut overrides = Vec::new();
    if let Some(m) = &args.model {
        overrides.push(format!("model.path={}", quoted(m)));
    }
    if let Some(o) = &args.output_dir {
        overrides.push(format!("trainer.output_dir={}", quoted(o)));
    }
    if let Some(s) = args.steps {
        overrides.push(format!("trainer.total_steps={s}"));
    }
    if let Some(s) = args.seed {
        overrides.push(format!("trainer.seed={s}"));
    }
    if let Some(d) = &args.device {
        overrides.push(format!("model.device={}", quoted(d)));
    }
    if !args.train_files.is_empty() {
        let files: Vec<String> = args.train_files.iter().map(|f| quoted(f)).collect();
        overrides.push(format!("data.train_files=[{}]", files.join(", ")));
    }
    overrides.extend(args.set.iter().cloned());
    let cfg = TrainConfig::load(args.config.as_deref(), &overrides)?;
    if args.print_config {
        println!("# world: {}", World::from_env()?.describe());
        print!("{}", cfg.to_toml_string()?);
        return Ok(0);
    }
    let collective = dist::global()?;
    let world = collective.world();
    if world.size > 1 {
        eprintln!("{} ({})", world.describe(), collective.backend());
    }
    let run = || -> anyhow::Result<i32> {
        let record = match world.is_root() {
            true => Some(write_run_json(
                &cfg.output_dir(),
                &command_line(),
                serde_json::to_value(&cfg)?,
            )?),
            false => None,
        };
        let opts = RunOptions {
            resume: args.resume,
            stop_after: args.stop_after,
            ..RunOptions::default()
        };
        let summary = train(cfg.clone(), &opts)?;
        if let Some(mut record) = record {
            report(&summary);
            record.finish(&crate::cmd::kernel_report())?;
        }
        Ok(0)
    };
    match run() {
        Ok(code) => {
            dist::finalize();
            Ok(code)
        }
        // One rank's failure ends every rank at once (they would otherwise wait for it in
        // their next collective).
        Err(e) if world.size > 1 => collective.abort(1, &format!("error: {e:#}")),
        Err(e) => Err(e),
    }
}

fn report(summary: &oneshot_train::RunSummary) {
    println!(
        "trained {} steps; outputs in {}",
        summary.steps_done,
        summary.output_dir.display()
    );
    if let Some(c) = &summary.last_checkpoint {
        println!("last checkpoint: {}", c.display());
    }
}
