//! A toy training run for the data-parallel tests (`tests/data_parallel.rs`), under a launcher
//! or alone:
//!
//!   toy_run CONFIG.toml [--set KEY=VALUE]... [--resume] [--kill-rank R --kill-at-step S]
//!
//! With `--kill-rank`, rank R kills itself (SIGKILL) once step S is done, before its
//! checkpoint, as a crashed node would.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oneshot_train::{train_with, RunOptions, TrainConfig};

fn main() {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => match oneshot_dist::global() {
            Ok(c) if c.world().size > 1 => c.abort(1, &format!("error: {e:#}")),
            _ => {
                eprintln!("error: {e:#}");
                1
            }
        },
    };
    oneshot_dist::finalize();
    std::process::exit(code);
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let config = PathBuf::from(
        args.next()
            .context("usage: toy_run CONFIG.toml [options]")?,
    );
    let (mut sets, mut resume, mut kill_rank, mut kill_at) = (Vec::new(), false, None, None);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().with_context(|| format!("{what} needs a value"));
        match a.as_str() {
            "--set" => sets.push(value("--set")?),
            "--resume" => resume = true,
            "--kill-rank" => kill_rank = Some(value("--kill-rank")?.parse::<usize>()?),
            "--kill-at-step" => kill_at = Some(value("--kill-at-step")?.parse::<usize>()?),
            other => bail!("unknown argument {other}"),
        }
    }
    let cfg = TrainConfig::load(Some(&config), &sets)?;
    let rank = oneshot_dist::global()?.world().rank;
    let opts = RunOptions {
        resume,
        ..RunOptions::default()
    };
    train_with(cfg, &opts, |t, _| {
        if Some(rank) == kill_rank && Some(t.state.step) == kill_at {
            eprintln!("rank {rank}: killing myself after step {}", t.state.step);
            let pid = std::process::id().to_string();
            std::process::Command::new("kill")
                .args(["-9", &pid])
                .status()?;
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
        Ok(())
    })?;
    Ok(())
}
