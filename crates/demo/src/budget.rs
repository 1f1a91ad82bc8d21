//! How much work each stage of the demo does. `quick` is sized to finish within about two
//! minutes on two CPU cores with the committed base; `full` trains 1-shot far past pi_1's
//! saturation with a denser held-out curve and sampled pass@k (about twenty minutes); `tiny`
//! exists for tests (seconds with a tiny model).
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The budgets by name (`--budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BudgetName {
    Quick,
    Full,
    Tiny,
    Golden,
}

impl BudgetName {
    pub fn budget(self) -> Budget {
        match self {
            BudgetName::Quick => Budget::quick(),
            BudgetName::Full => Budget::full(),
            BudgetName::Tiny => Budget::tiny(),
            BudgetName::Golden => Budget::golden(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub name: String,
    /// Held-out problems of the before/after evaluation (0 = the whole benchmark).
    pub eval_limit: usize,
    /// Held-out problems of the test curve during 1-shot training (the first ones of the
    /// evaluation set, so the step-0 point is read from the base evaluation).
    pub curve_limit: usize,
    /// Test-curve point every this many 1-shot steps.
    pub curve_every: usize,
    /// Longest greedy response and longest rollout, in tokens.
    pub max_new_tokens: usize,
    /// Prompts decoded together in the greedy evaluations.
    pub eval_batch: usize,
    /// Selection pass: pool examples, epochs over them, rows per step, rollouts per row.
    pub selection_pool: usize,
    pub selection_epochs: usize,
    pub selection_batch: usize,
    pub selection_n: usize,
    /// 1-shot RLVR: steps, rows per step (all pi_1), rollouts per row.
    pub one_shot_steps: usize,
    pub one_shot_batch: usize,
    pub one_shot_n: usize,
    /// RL settings shared by both passes (the rest is the paper's recipe).
    pub lr: f64,
    pub temperature: f64,
    pub entropy_coef: f64,
    pub kl_coef: f64,
    /// pi_1's rollout accuracy from which 1-shot training counts as saturated.
    #[serde(default = "default_saturation")]
    pub saturation: f64,
    /// Held-out pass@k at every test point: k samples per problem (0 = off), at
    /// `pass_temperature`, on the first `pass_limit` problems of the curve set; a problem
    /// counts when any sample is right in any form (lenient).
    #[serde(default)]
    pub pass_k: usize,
    #[serde(default)]
    pub pass_limit: usize,
    #[serde(default = "default_pass_temperature")]
    pub pass_temperature: f64,
    /// Train LoRA adapters of this rank (all-linear, alpha = 2r, lr x [`LORA_LR_FACTOR`])
    /// instead of every weight (`--lora R`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_rank: Option<usize>,
}

/// The paper's 100% is rare for a tiny model sampled at temperature 1 (a few slips per 64
/// rollouts remain), so 95%.
pub const SATURATED: f64 = 0.95;

fn default_saturation() -> f64 {
    SATURATED
}

/// The paper's evaluation temperature for sampled pass@k.
fn default_pass_temperature() -> f64 {
    0.6
}

/// LoRA's learning rate over full fine-tuning's in the lab runs: adapters start at zero
/// effect and need a far larger step (docs/LORA.md).
pub const LORA_LR_FACTOR: f64 = 10.0;

impl Budget {
    /// Within ten minutes on two cores (measured numbers in the README fragment).
    pub fn quick() -> Self {
        Self {
            name: "quick".into(),
            eval_limit: 0,
            curve_limit: 100,
            curve_every: 8,
            max_new_tokens: 128,
            eval_batch: 100,
            selection_pool: 64,
            selection_epochs: 3,
            selection_batch: 32,
            selection_n: 4,
            one_shot_steps: 40,
            one_shot_batch: 8,
            one_shot_n: 8,
            lr: 1e-4,
            temperature: 1.0,
            entropy_coef: 0.001,
            kl_coef: 0.001,
            saturation: SATURATED,
            pass_k: 0,
            pass_limit: 0,
            pass_temperature: default_pass_temperature(),
            lora_rank: None,
        }
    }

    /// A long 1-shot run, well past pi_1's saturation, with a larger selection pass, a denser
    /// held-out curve on 200 problems and sampled pass@8 (T = 0.6) on the first 100 of them.
    ///
    /// Measured on two cores (SPR-b, docs/LAB.md): 752, 804 and 1,050 s at seeds 0-2 with the
    /// committed base, most of it the 160 one-shot steps with their 17 held-out points (200
    /// greedy + 800 sampled responses each); a run whose responses switch to step-by-step
    /// working is the slower one.
    pub fn full() -> Self {
        Self {
            name: "full".into(),
            curve_limit: 200,
            curve_every: 10,
            selection_pool: 128,
            selection_epochs: 4,
            selection_n: 8,
            one_shot_steps: 160,
            one_shot_batch: 16,
            pass_k: 8,
            pass_limit: 100,
            ..Self::quick()
        }
    }

    /// Seconds with a tiny model: for tests only.
    pub fn tiny() -> Self {
        Self {
            name: "tiny".into(),
            eval_limit: 12,
            curve_limit: 6,
            curve_every: 2,
            max_new_tokens: 24,
            eval_batch: 6,
            selection_pool: 8,
            selection_epochs: 2,
            selection_batch: 4,
            selection_n: 4,
            one_shot_steps: 4,
            one_shot_batch: 2,
            one_shot_n: 4,
            lr: 1e-3,
            ..Self::quick()
        }
    }

    /// The golden run: the committed base on a slice of every stage, under a minute with the
    /// portable kernels, so its summary pins the pipeline's behaviour on every CPU.
    pub fn golden() -> Self {
        Self {
            name: "golden".into(),
            eval_limit: 60,
            curve_limit: 20,
            curve_every: 3,
            max_new_tokens: 64,
            eval_batch: 60,
            selection_pool: 8,
            selection_epochs: 2,
            selection_batch: 8,
            selection_n: 4,
            one_shot_steps: 6,
            one_shot_batch: 4,
            one_shot_n: 4,
            ..Self::quick()
        }
    }

    /// Checks the sizes fit together, naming the field.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("curve_every", self.curve_every),
            ("max_new_tokens", self.max_new_tokens),
            ("eval_batch", self.eval_batch),
            ("selection_pool", self.selection_pool),
            ("selection_epochs", self.selection_epochs),
            ("selection_batch", self.selection_batch),
            ("selection_n", self.selection_n),
            ("one_shot_steps", self.one_shot_steps),
            ("one_shot_batch", self.one_shot_batch),
            ("one_shot_n", self.one_shot_n),
        ] {
            if v == 0 {
                bail!("budget {}: {name} must be at least 1", self.name);
            }
        }
        if !(0.0..=1.0).contains(&self.saturation) {
            bail!(
                "budget {}: saturation {} must be a rollout accuracy in [0, 1]",
                self.name,
                self.saturation
            );
        }
        if self.pass_k > 0 && (self.pass_limit == 0 || self.pass_temperature <= 0.0) {
            bail!(
                "budget {}: pass_k {} needs pass_limit >= 1 and pass_temperature > 0 (got {} and {})",
                self.name,
                self.pass_k,
                self.pass_limit,
                self.pass_temperature
            );
        }
        if self.lora_rank == Some(0) {
            bail!(
                "budget {}: the LoRA rank (--lora) must be at least 1",
                self.name
            );
        }
        // Whole epochs only, so every pool example gets the same number of accuracy entries.
        if !self.selection_pool.is_multiple_of(self.selection_batch) {
            bail!(
                "budget {}: selection_batch {} must divide selection_pool {}",
                self.name,
                self.selection_batch,
                self.selection_pool
            );
        }
        if self.selection_epochs < 2 {
            bail!(
                "budget {}: selection_epochs must be at least 2 (a variance needs several epochs)",
                self.name
            );
        }
        if self.eval_limit != 0 && self.curve_limit > self.eval_limit {
            bail!(
                "budget {}: curve_limit {} exceeds eval_limit {}",
                self.name,
                self.curve_limit,
                self.eval_limit
            );
        }
        Ok(())
    }

    /// Steps of the selection pass.
    pub fn selection_steps(&self) -> usize {
        self.selection_epochs * self.selection_pool / self.selection_batch
    }
}

/// Everything `oneshot demo` needs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The base model directory (HF layout, lab tokenizer).
    pub model: PathBuf,
    pub out: PathBuf,
    /// Seed of the RL runs (rollouts, data order).
    pub seed: u64,
    /// Seed of the pool/benchmark; `None` = the one the base was pretrained against
    /// (`lab_pretrain.json`), so the benchmark is held out from its corpus.
    pub data_seed: Option<u64>,
    pub budget: Budget,
    /// Draw progress bars on stderr.
    pub progress: bool,
}
