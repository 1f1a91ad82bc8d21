//! `oneshot select`: rank the pool by historical variance (or at random) and write the few-shot
//! training file (verl parquet) with the chosen examples repeated.

use std::path::PathBuf;

use anyhow::Context;
use oneshot_data::select::{
    indices_at_ranks, rank_by_variance, rank_random, ranking_table, read_history, repeat_rows,
};
use oneshot_data::verl::{read_verl_parquet, write_verl_parquet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Descending population std of the per-epoch accuracies (the paper's pi_1, pi_2, ...).
    Variance,
    /// A seeded random order of the pool.
    Random,
}

#[derive(clap::Args)]
pub struct Args {
    /// Accuracy history: {"<extra_info.index>": [epoch accuracies]} (needed for `variance`).
    #[arg(long)]
    history: Option<PathBuf>,
    /// The pool, a verl-format parquet file (e.g. dsr_sub.parquet).
    #[arg(long)]
    pool: PathBuf,
    /// 1-based rank(s) to take, comma separated (`1,13`): pi_1 and pi_13.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    rank: Vec<usize>,
    /// Rows in the output file; each chosen example fills one contiguous block.
    #[arg(long, default_value_t = 128)]
    repeat: usize,
    /// Output verl parquet file.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Method::Variance)]
    method: Method,
    /// Seed of `--method random`.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many ranks to print.
    #[arg(long, default_value_t = 20)]
    top: usize,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let pool = read_verl_parquet(&args.pool).context("reading the pool")?;
    let history = args
        .history
        .as_deref()
        .map(read_history)
        .transpose()
        .context("reading the history")?;
    let ranking = match args.method {
        Method::Variance => {
            let history = history
                .as_ref()
                .context("--method variance needs --history")?;
            rank_by_variance(history)
        }
        Method::Random => {
            let indices: Vec<i64> = pool.iter().map(|r| r.index).collect();
            rank_random(&indices, args.seed, history.as_ref())
        }
    };
    println!("{}", ranking_table(&ranking, &pool, args.top));
    let chosen = indices_at_ranks(&ranking, &args.rank)?;
    let labels: Vec<String> = args
        .rank
        .iter()
        .zip(&chosen)
        .map(|(r, i)| format!("pi_{r} = index {i}"))
        .collect();
    println!("chosen: {}", labels.join(", "));
    if let Some(out) = &args.out {
        let rows = repeat_rows(&pool, &chosen, args.repeat)?;
        write_verl_parquet(out, &rows).with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {} rows to {}", rows.len(), out.display());
    }
    Ok(0)
}
