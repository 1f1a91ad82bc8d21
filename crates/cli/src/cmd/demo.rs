//! `oneshot demo`: 1-shot RLVR reproduced on the built-in lab, offline, in minutes on a CPU
//! (base eval, selection pass, variance ranking, 1-shot RLVR on pi_1, final eval, report),
//! `oneshot lab reproduce` (the paper's ablations on the lab, several seeds) and `oneshot lab
//! selection` (1-shot runs on the top, random and bottom examples of the variance ranking).
use std::path::{Path, PathBuf};

use anyhow::bail;
use oneshot_demo::{
    files, run_demo, run_reproduce, run_selection_study, Budget, BudgetName, DemoConfig,
    ReproduceConfig, SelectionConfig,
};
use oneshot_run::{command_line, write_run_json};

/// What the demo and `lab reproduce` share: the base, the budget, the data seed, progress.
#[derive(clap::Args)]
pub struct LabRunArgs {
    /// How much work each stage does: `quick` (about two minutes on 2 cores), `full`, or
    /// `tiny`/`golden` (tests).
    #[arg(long, value_enum, default_value_t = BudgetName::Quick)]
    budget: BudgetName,
    /// Base model directory (default: the repository's `lab/base`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Seed of the lab pool/benchmark (default: the one the base was pretrained against).
    #[arg(long)]
    data_seed: Option<u64>,
    /// Hide the progress display.
    #[arg(long)]
    no_progress: bool,
    /// Train LoRA adapters of rank R (all-linear, alpha 2R, 10x the budget's lr) instead of
    /// every weight.
    #[arg(long, value_name = "R")]
    lora: Option<usize>,
    #[command(flatten)]
    threads: super::threads::Threads,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output directory (report.md, summary.json, plots, runs).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Seed of the RL runs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    lab: LabRunArgs,
}

#[derive(clap::Args)]
pub struct ReproduceArgs {
    /// Number of seeds (0, 1, ...) per run.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    #[arg(long, default_value = "runs/reproduce")]
    out: PathBuf,
    #[command(flatten)]
    lab: LabRunArgs,
}

#[derive(clap::Args)]
pub struct SelectionArgs {
    /// Number of seeds (0, 1, ...) per example.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Examples per group (top, random, bottom of the variance ranking).
    #[arg(long, default_value_t = 4)]
    k: usize,
    #[arg(long, default_value = "runs/selection")]
    out: PathBuf,
    #[command(flatten)]
    lab: LabRunArgs,
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

impl LabRunArgs {
    /// The named budget, with LoRA when `--lora` is given.
    fn budget(&self) -> Budget {
        Budget {
            lora_rank: self.lora,
            ..self.budget.budget()
        }
    }
}

fn resolve_model(model: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match model {
        Some(m) => Ok(m),
        None => default_model(),
    }
}

/// What `run.json` records of a lab run's configuration.
fn run_config(
    model: &Path,
    budget: &Budget,
    data_seed: Option<u64>,
) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "model": model.display().to_string(),
        "data_seed": data_seed,
        "budget": serde_json::to_value(budget)?,
    }))
}

/// A slip rate for the terminal: measured only where some response showed its working.
fn slip(r: &oneshot_lab::metrics::Rates) -> String {
    if r.worked_n == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * r.slip)
    }
}

pub fn run(a: Args) -> anyhow::Result<i32> {
    a.lab.threads.apply()?;
    let cfg = DemoConfig {
        model: resolve_model(a.lab.model.clone())?,
        out: a.out,
        seed: a.seed,
        data_seed: a.lab.data_seed,
        budget: a.lab.budget(),
        progress: !a.lab.no_progress,
    };
    let mut record = write_run_json(
        &cfg.out,
        &command_line(),
        run_config(&cfg.model, &cfg.budget, cfg.data_seed)?,
    )?;
    eprintln!(
        "oneshot demo: base {}, budget {}, output {}",
        cfg.model.display(),
        cfg.budget.name,
        cfg.out.display()
    );
    let o = run_demo(&cfg)?;
    println!(
        "\n{}",
        oneshot_demo::report::comparison_table(&o.base, &o.one_shot, Some(o.pi1.family))
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
            .map(|p| format!("{:.2}", p.pi1_accuracy))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "held-out strict / lenient on the other families by step: {}",
        o.test_curve
            .iter()
            .map(|p| {
                let r = &p.other_families;
                format!(
                    "{}:{:.1}/{:.1}%",
                    p.step,
                    100.0 * r.strict,
                    100.0 * r.lenient
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let other = &o.other_families;
    println!(
        "\nfamilies other than {}: strict {:.1}% -> {:.1}%, lenient {:.1}% -> {:.1}%, direct {:.1}% -> {:.1}%, slip {} -> {}",
        other.excluded.name(),
        100.0 * other.base.strict,
        100.0 * other.one_shot.strict,
        100.0 * other.base.lenient,
        100.0 * other.one_shot.lenient,
        100.0 * other.base.direct,
        100.0 * other.one_shot.direct,
        slip(&other.base),
        slip(&other.one_shot),
    );
    println!(
        "all: strict {:.1}% -> {:.1}%, lenient {:.1}% -> {:.1}%, in {:.0}s; report: {}",
        100.0 * o.base.all.strict,
        100.0 * o.one_shot.all.strict,
        100.0 * o.base.all.lenient,
        100.0 * o.one_shot.all.lenient,
        o.wall_seconds,
        cfg.out.join(files::REPORT).display()
    );
    record.finish(&crate::cmd::kernel_report())?;
    Ok(0)
}

pub fn reproduce(a: ReproduceArgs) -> anyhow::Result<i32> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    a.lab.threads.apply()?;
    let cfg = ReproduceConfig {
        model: resolve_model(a.lab.model.clone())?,
        out: a.out,
        seeds: (0..a.seeds).collect(),
        data_seed: a.lab.data_seed,
        budget: a.lab.budget(),
        progress: !a.lab.no_progress,
    };
    let mut record = write_run_json(
        &cfg.out,
        &command_line(),
        run_config(&cfg.model, &cfg.budget, cfg.data_seed)?,
    )?;
    run_reproduce(&cfg)?;
    record.finish(&crate::cmd::kernel_report())?;
    print!(
        "{}",
        std::fs::read_to_string(cfg.out.join(files::REPRODUCE_MD))?
    );
    Ok(0)
}

pub fn selection(a: SelectionArgs) -> anyhow::Result<i32> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if a.k == 0 {
        bail!("--k must be at least 1");
    }
    a.lab.threads.apply()?;
    let cfg = SelectionConfig {
        model: resolve_model(a.lab.model.clone())?,
        out: a.out,
        seeds: (0..a.seeds).collect(),
        k: a.k,
        data_seed: a.lab.data_seed,
        budget: a.lab.budget(),
        progress: !a.lab.no_progress,
    };
    let mut record = write_run_json(
        &cfg.out,
        &command_line(),
        run_config(&cfg.model, &cfg.budget, cfg.data_seed)?,
    )?;
    run_selection_study(&cfg)?;
    record.finish(&crate::cmd::kernel_report())?;
    print!(
        "{}",
        std::fs::read_to_string(cfg.out.join(files::SELECTION_MD))?
    );
    Ok(0)
}
