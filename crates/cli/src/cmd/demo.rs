//! `oneshot demo`: 1-shot RLVR reproduced on the built-in lab, offline, in minutes on a CPU
//! (base eval, selection pass, variance ranking, 1-shot RLVR on pi_1, final eval, report), and
//! `oneshot lab reproduce` (the paper's ablations on the lab, several seeds).
use std::path::{Path, PathBuf};

use anyhow::bail;
use oneshot_lab::demo::{files, run_demo, run_reproduce, Budget, DemoConfig, ReproduceConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Output directory (report.md, summary.json, plots, runs).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Seed of the RL runs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `quick` (within 10 minutes on 2 cores) or `full`.
    #[arg(long, default_value = "quick")]
    budget: String,
    /// Base model directory (default: the repository's `lab/base`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Seed of the lab pool/benchmark (default: the one the base was pretrained against).
    #[arg(long)]
    data_seed: Option<u64>,
    /// Hide the progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(clap::Args)]
pub struct ReproduceArgs {
    /// Number of seeds (0, 1, ...) per run.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    #[arg(long, default_value = "runs/reproduce")]
    out: PathBuf,
    #[arg(long, default_value = "quick")]
    budget: String,
    /// Base model directory (default: the repository's `lab/base`).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long)]
    data_seed: Option<u64>,
    #[arg(long)]
    no_progress: bool,
}

/// The committed base: `lab/base` of the workspace this binary was built in, else of the
/// current directory, else next to the binary (for a copied release tree).
fn default_model() -> anyhow::Result<PathBuf> {
    let mut candidates = vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/base"),
        PathBuf::from("lab/base"),
    ];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|d| d.join("lab/base")));
    }
    for c in &candidates {
        if c.join("config.json").is_file() {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "no base model found (looked for lab/base with a config.json in: {}); pass --model DIR or run `oneshot lab pretrain --out lab/base`",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

fn resolve_model(model: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match model {
        Some(m) => Ok(m),
        None => default_model(),
    }
}

pub fn run(a: Args) -> anyhow::Result<i32> {
    let cfg = DemoConfig {
        model: resolve_model(a.model)?,
        out: a.out,
        seed: a.seed,
        data_seed: a.data_seed,
        budget: Budget::by_name(&a.budget)?,
        progress: !a.no_progress,
    };
    eprintln!(
        "oneshot demo: base {}, budget {}, output {}",
        cfg.model.display(),
        cfg.budget.name,
        cfg.out.display()
    );
    let o = run_demo(&cfg)?;
    println!(
        "\n{}",
        oneshot_lab::demo::report::comparison_table(&o.base, &o.one_shot)
    );
    println!(
        "pi_1 = pool example {} ({}): {} (answer {})",
        o.pi1.index,
        o.pi1.family.name(),
        o.pi1.problem,
        o.pi1.answer
    );
    println!(
        "pi_1 train accuracy by step: {}",
        o.train_curve
            .iter()
            .map(|(_, a)| format!("{:.2}", a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "held-out strict by step: {}",
        o.test_curve
            .iter()
            .map(|p| format!("{}:{:.1}%", p.step, 100.0 * p.strict))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "\nstrict {:.1}% -> {:.1}%, lenient {:.1}% -> {:.1}%, in {:.0}s; report: {}",
        100.0 * o.base.all.strict,
        100.0 * o.one_shot.all.strict,
        100.0 * o.base.all.lenient,
        100.0 * o.one_shot.all.lenient,
        o.wall_seconds,
        cfg.out.join(files::REPORT).display()
    );
    Ok(0)
}

pub fn reproduce(a: ReproduceArgs) -> anyhow::Result<i32> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let cfg = ReproduceConfig {
        model: resolve_model(a.model)?,
        out: a.out,
        seeds: (0..a.seeds).collect(),
        data_seed: a.data_seed,
        budget: Budget::by_name(&a.budget)?,
        progress: !a.no_progress,
    };
    run_reproduce(&cfg)?;
    print!(
        "{}",
        std::fs::read_to_string(cfg.out.join(files::REPRODUCE_MD))?
    );
    Ok(0)
}
