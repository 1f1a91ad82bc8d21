//! `oneshot demo` and `oneshot lab reproduce`: the paper's pipeline end to end on the lab, on a
//! CPU, in minutes.
//!
//! The demo ([`pipeline::run_demo`]): evaluate the base on the held-out lab benchmark (strict /
//! lenient / boxed); a short RLVR pass over part of the pool records each example's rollout
//! accuracy per epoch (the trainer's history); the pool is ranked by historical variance
//! (`oneshot-data`'s selection) and pi_1 picked; 1-shot RLVR on pi_1 (repeated to the batch,
//! the paper's loss with its entropy bonus) logs pi_1's train accuracy each step and held-out
//! accuracy every few steps; a final evaluation gives the before/after table. Outputs:
//! `report.md`, `summary.json`, `curves.png`, `families.png` and the runs' own files.
//!
//! [`reproduce`] runs the paper's ablations on the lab with several seeds, and [`selection`]
//! compares 1-shot runs on the top, random and bottom examples of the variance ranking; both
//! resume from their JSON file ([`study`]).
//!
//! - [`budget`]: how much work each stage does (`quick`, `full`, and `tiny`/`golden` for tests).
//! - [`evaluate`]: chunked greedy evaluation with a progress bar; [`sampled`]: pass@k.
//! - [`rl`]: trainer configs for the lab, run by `oneshot-train`'s loop.
//! - [`curve`]: the 1-shot run's held-out points, train metrics and post-saturation reading.
//! - [`plots`], [`report`]: the PNG figures, `report.md` and `summary.json`.
//! - [`stage`], [`stats`]: the runs the studies are made of, and their mean ± std.
pub mod budget;
pub mod curve;
pub mod evaluate;
pub mod pipeline;
pub mod plots;
pub mod report;
pub mod reproduce;
pub mod rl;
pub mod sampled;
pub mod selection;
pub mod stage;
pub mod stats;
pub mod study;

pub use budget::{Budget, BudgetName, DemoConfig};
pub use pipeline::{run_demo, DemoOutcome};
pub use reproduce::{run_reproduce, ReproduceConfig};
pub use selection::{run_selection_study, SelectionConfig};

/// File names the demo writes into `--out`.
pub mod files {
    pub const REPORT: &str = "report.md";
    pub const SUMMARY: &str = "summary.json";
    pub const CURVES_PNG: &str = "curves.png";
    pub const FAMILIES_PNG: &str = "families.png";
    /// Directory of the generated pool and benchmark.
    pub const DATA_DIR: &str = "data";
    /// Directory of the selection pass (metrics, `rollout_accuracy.json`, ranking).
    pub const SELECTION_DIR: &str = "selection";
    /// Directory of the 1-shot run (metrics, curves, the trained model).
    pub const ONE_SHOT_DIR: &str = "one_shot";
    pub const HISTORY: &str = "rollout_accuracy.json";
    pub const RANKING: &str = "ranking.md";
    pub const METRICS: &str = "metrics.jsonl";
    pub const BASE_RESPONSES: &str = "base_responses.jsonl";
    pub const ONE_SHOT_RESPONSES: &str = "one_shot_responses.jsonl";
    pub const REPRODUCE_MD: &str = "reproduce.md";
    pub const REPRODUCE_JSON: &str = "reproduce.json";
    pub const SELECTION_MD: &str = "selection.md";
    pub const SELECTION_JSON: &str = "selection.json";
}
