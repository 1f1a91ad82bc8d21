//! The run configuration: a TOML file whose defaults are the paper's recipe (docs/PAPER.md),
//! overridable key by key (`--set section.key=value`, see `oneshot-config`), validated, and
//! saved resolved with the run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oneshot_rl::{AdvantageEstimator, KlKind, LossAgg};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    pub rollout: RolloutSection,
    pub reward: RewardSection,
    pub algorithm: AlgorithmSection,
    pub optim: OptimSection,
    pub trainer: TrainerSection,
    pub validation: ValidationSection,
    pub lora: LoraSection,
    pub debug: DebugSection,
}

/// How training prompts are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PromptTemplate {
    /// The prompt messages through the model's chat template (verl).
    Chat,
    /// The messages' contents joined by newlines.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// Local HF directory or hub id (`org/name[@revision]`).
    pub path: String,
    /// Parameter dtype: f32, bf16 or f16 (the optimiser keeps f32 master weights either way).
    pub dtype: oneshot_model::WeightDtype,
    /// `cpu` or `cuda` / `cuda:N` (needs the `cuda` feature).
    pub device: oneshot_model::DeviceSpec,
    /// Recompute each layer's activations in the backward pass instead of keeping them (less
    /// memory, ~1/3 more compute; HF calls this gradient checkpointing).
    #[serde(alias = "gradient_checkpointing")]
    pub recompute_layers: bool,
    /// Rows of `[rows, vocab]` logits alive at once in the log-prob passes.
    pub logprob_chunk_rows: usize,
    /// Projection products: `f32`, or `bf16` (operands rounded to bf16, f32 accumulation,
    /// forward and backward: PyTorch's CPU autocast; faster on CPUs with AVX512_BF16).
    pub matmul: oneshot_model::MatmulPrecision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// verl-format parquet file(s) of training prompts.
    pub train_files: Vec<String>,
    /// `chat`: the prompt messages through the model's chat template (verl); `plain`: the
    /// messages' contents joined by newlines.
    pub prompt_template: PromptTemplate,
    /// Prompt rows per step (the paper: 128, the one example repeated).
    pub train_batch_size: usize,
    /// Longest prompt in tokens; a longer one is an error naming its row.
    pub max_prompt_length: usize,
    /// Shuffle the rows each epoch (seeded by the run seed and the epoch).
    pub shuffle: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutSection {
    /// Responses per prompt row; each row's n responses form one advantage group.
    pub n: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub max_response_length: usize,
    /// Sequences generated together (bounds the KV cache).
    pub generation_batch_size: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSection {
    /// Reward of a correct answer (1 in the paper; 0 for a format-only ablation).
    pub correct_value: f64,
    /// Extra reward for a complete `\boxed{...}` (0 = off, the paper).
    pub format_value: f64,
    /// HAPO's history-aware length reward (docs/PAPER.md §6).
    pub length_reward: bool,
    /// Its weight w in [0, 1].
    pub length_weight: f64,
    /// Only the last `\boxed{}` counts (the paper's reward); false also accepts other answer forms.
    pub boxed_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlgorithmSection {
    pub adv_estimator: AdvantageEstimator,
    /// Discount and GAE lambda (REINFORCE++ and GAE).
    pub gamma: f64,
    pub lam: f64,
    /// KL to the frozen reference as a loss term (the paper) ...
    pub use_kl_loss: bool,
    pub kl_loss_coef: f64,
    pub kl_loss_type: KlKind,
    /// ... or subtracted from the token rewards before the advantages.
    pub kl_in_reward: bool,
    pub kl_reward_coef: f64,
    pub kl_reward_type: KlKind,
    pub entropy_coef: f64,
    pub clip_ratio_low: f64,
    pub clip_ratio_high: f64,
    /// Dual-clip constant (> 1), 0 = off.
    pub clip_ratio_c: f64,
    pub loss_agg_mode: LossAgg,
    /// Drop groups whose advantages are all zero; skip the update when none is left.
    pub drop_zero_adv_groups: bool,
    /// Critic (adv_estimator = gae): learning rate and value clip range.
    pub critic_lr: f64,
    pub value_clip: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    pub lr: f64,
    /// `constant` (the paper), `warmup-constant` or `warmup-cosine`.
    pub schedule: oneshot_optim::Schedule,
    pub warmup_steps: usize,
    pub min_lr_ratio: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    /// Global grad-norm clip; 0 = off.
    pub max_grad_norm: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerSection {
    pub total_steps: usize,
    /// Prompt rows per mini-batch (one optimiser step each); the paper: the whole batch.
    pub mini_batch_size: usize,
    pub ppo_epochs: usize,
    /// Token budget (rows x padded length) of one micro-batch of the backward pass.
    pub micro_batch_tokens: usize,
    /// Rows per micro-batch for `loss_agg_mode = micro-batch-token-mean` (verl 0.2's
    /// `ppo_micro_batch_size`), which needs fixed micro-batches.
    pub micro_batch_rows: usize,
    pub seed: u64,
    /// Checkpoint every N steps (0 = only at the end).
    pub save_every: usize,
    /// Keep only the newest N checkpoints (0 = keep all).
    pub keep_checkpoints: usize,
    pub output_dir: String,
    pub plots: bool,
    pub tensorboard: bool,
    pub progress_bar: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationSection {
    /// Validate every N steps (0 = never); also before the first step when `before_train`.
    pub every: usize,
    pub before_train: bool,
    /// Benchmarks of `oneshot-data`'s registry, evaluated by `oneshot-eval` exactly as
    /// `oneshot eval` does (the benchmark's decoding protocol: greedy, or temperature 0.6 x 8
    /// samples for AIME/AMC). An entry ending in `.jsonl` is read directly (`problem`/`answer`
    /// fields; greedy, one sample).
    pub benchmarks: Vec<String>,
    /// Problems per benchmark (0 = all), the first ones in file order (`oneshot eval --limit N`).
    pub limit: usize,
    /// Replaces the protocol's 3,072 new tokens (`oneshot eval --max-tokens`).
    pub max_new_tokens: usize,
    /// Directory holding `<name>/test.jsonl` for registry benchmarks (default: the shared data;
    /// empty: `$ONESHOT_DATA`).
    pub data_dir: String,
    /// `qwen25-math-cot` (the paper's evaluation prompt), `chat` or `plain`.
    pub prompt_template: oneshot_data::prompt::PromptTemplate,
    /// Rollouts per engine call (`oneshot eval --batch-size`; does not change any result).
    pub generation_batch_size: usize,
}

/// LoRA: train low-rank adapters on a frozen base instead of every weight (docs/LORA.md).
/// LoRA wants a far larger `optim.lr` than full fine-tuning (about 10x; 1e-5..1e-4 for
/// 1.5B-class models).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSection {
    pub enabled: bool,
    /// Rank of each adapter.
    pub r: usize,
    /// Adapter scale numerator: the update is `alpha / r * B A` (`alpha / sqrt(r)` with rsLoRA).
    pub alpha: f64,
    /// Dropout on the adapters' input, in the update's forward only.
    pub dropout: f64,
    /// Module names (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
    /// `down_proj`) or `all-linear`.
    pub target_modules: Vec<String>,
    /// dtype the frozen base is kept in (`f32`, `bf16`); empty = `model.dtype`.
    pub base_dtype: String,
    pub use_rslora: bool,
    /// Rollouts decode from a copy with the adapters merged (made once per generation
    /// call); false applies them at every token, which saves that copy's memory
    /// (docs/LORA.md has the speeds).
    pub merge_for_decode: bool,
}

impl Default for LoraSection {
    fn default() -> Self {
        Self {
            enabled: false,
            r: 16,
            alpha: 32.0,
            dropout: 0.0,
            target_modules: vec!["all-linear".into()],
            base_dtype: String::new(),
            use_rslora: false,
            merge_for_decode: true,
        }
    }
}

impl LoraSection {
    /// The model crate's adapter config.
    pub fn model_config(&self) -> Result<oneshot_model::LoraConfig> {
        let cfg = oneshot_model::LoraConfig {
            r: self.r,
            alpha: self.alpha,
            dropout: self.dropout,
            targets: oneshot_model::LoraTarget::parse_list(&self.target_modules)
                .context("lora.target_modules")?,
            use_rslora: self.use_rslora,
        };
        cfg.validate().context("lora")?;
        Ok(cfg)
    }

    /// The base weights' dtype: `base_dtype`, else the model's.
    pub fn base_dtype(&self, model: oneshot_model::WeightDtype) -> Result<candle_core::DType> {
        match self.base_dtype.as_str() {
            "" => Ok(model.dtype()),
            s => oneshot_model::parse_dtype(s).context("lora.base_dtype"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebugSection {
    /// Fault injection for tests: the loss of this step (1-based) is made NaN (0 = off).
    pub nan_loss_at_step: usize,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: String::new(),
            dtype: oneshot_model::WeightDtype::Bf16,
            device: oneshot_model::DeviceSpec::Cpu,
            recompute_layers: false,
            logprob_chunk_rows: 256,
            matmul: oneshot_model::MatmulPrecision::F32,
        }
    }
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            train_files: vec!["../shared/data/train/pi1_r128.parquet".into()],
            prompt_template: PromptTemplate::Chat,
            train_batch_size: 128,
            max_prompt_length: 1024,
            shuffle: true,
        }
    }
}

impl Default for RolloutSection {
    fn default() -> Self {
        Self {
            n: 8,
            temperature: 0.6,
            top_p: 1.0,
            top_k: 0,
            max_response_length: 3072,
            generation_batch_size: 256,
        }
    }
}

impl Default for RewardSection {
    fn default() -> Self {
        Self {
            correct_value: 1.0,
            format_value: 0.0,
            length_reward: false,
            length_weight: 1.0,
            boxed_only: true,
        }
    }
}

impl Default for AlgorithmSection {
    fn default() -> Self {
        Self {
            adv_estimator: AdvantageEstimator::Grpo,
            gamma: 1.0,
            lam: 1.0,
            use_kl_loss: true,
            kl_loss_coef: 0.001,
            kl_loss_type: KlKind::K3,
            kl_in_reward: false,
            kl_reward_coef: 0.001,
            kl_reward_type: KlKind::K1,
            entropy_coef: 0.001,
            clip_ratio_low: 0.2,
            clip_ratio_high: 0.2,
            clip_ratio_c: 0.0,
            loss_agg_mode: LossAgg::TokenMean,
            drop_zero_adv_groups: false,
            critic_lr: 1e-5,
            value_clip: 0.5,
        }
    }
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            schedule: oneshot_optim::Schedule::Constant,
            warmup_steps: 0,
            min_lr_ratio: 0.0,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
        }
    }
}

impl Default for TrainerSection {
    fn default() -> Self {
        Self {
            total_steps: 2000,
            mini_batch_size: 128,
            ppo_epochs: 1,
            micro_batch_tokens: 16384,
            micro_batch_rows: 8,
            seed: 1,
            save_every: 20,
            keep_checkpoints: 0,
            output_dir: "runs/one_shot".into(),
            plots: true,
            tensorboard: false,
            progress_bar: true,
        }
    }
}

impl Default for ValidationSection {
    fn default() -> Self {
        Self {
            every: 20,
            before_train: false,
            benchmarks: vec!["math500".into()],
            limit: 0,
            max_new_tokens: 3072,
            data_dir: "../shared/data/benchmarks".into(),
            prompt_template: oneshot_data::prompt::PromptTemplate::Qwen25MathCot,
            generation_batch_size: 64,
        }
    }
}

impl TrainConfig {
    /// Reads a config file (missing keys take the paper's defaults), then applies overrides.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let cfg: TrainConfig = oneshot_config::load(path, overrides)?;
        let what = path.map_or("the default config".to_string(), |p| {
            p.display().to_string()
        });
        cfg.validate().with_context(|| format!("in {what}"))?;
        Ok(cfg)
    }

    pub fn from_toml_str(text: &str) -> Result<Self> {
        let cfg: TrainConfig = toml::from_str(text).context("parsing config")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml_string(&self) -> Result<String> {
        oneshot_config::to_toml(self)
    }

    /// Checks ranges and combinations, naming the key.
    pub fn validate(&self) -> Result<()> {
        let d = &self.data;
        let r = &self.rollout;
        let t = &self.trainer;
        let a = &self.algorithm;
        if self.model.path.is_empty() {
            bail!("model.path is empty (give --model DIR or set model.path)");
        }
        if d.train_files.is_empty() {
            bail!("data.train_files is empty");
        }
        for (name, v) in [
            ("data.train_batch_size", d.train_batch_size),
            ("rollout.n", r.n),
            ("rollout.max_response_length", r.max_response_length),
            ("rollout.generation_batch_size", r.generation_batch_size),
            ("trainer.mini_batch_size", t.mini_batch_size),
            ("trainer.ppo_epochs", t.ppo_epochs),
            ("trainer.micro_batch_tokens", t.micro_batch_tokens),
            ("trainer.micro_batch_rows", t.micro_batch_rows),
            ("model.logprob_chunk_rows", self.model.logprob_chunk_rows),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if !d.train_batch_size.is_multiple_of(t.mini_batch_size) {
            bail!(
                "trainer.mini_batch_size {} must divide data.train_batch_size {}",
                t.mini_batch_size,
                d.train_batch_size
            );
        }
        if !(r.temperature > 0.0 && r.temperature.is_finite()) {
            bail!("rollout.temperature must be > 0 (log-probs are taken on logits / temperature), got {}", r.temperature);
        }
        if !(r.top_p > 0.0 && r.top_p <= 1.0) {
            bail!("rollout.top_p must be in (0, 1], got {}", r.top_p);
        }
        if !(0.0..=1.0).contains(&self.reward.length_weight) {
            bail!(
                "reward.length_weight must be in [0, 1], got {}",
                self.reward.length_weight
            );
        }
        if a.clip_ratio_low < 0.0 || a.clip_ratio_high < 0.0 {
            bail!("algorithm.clip_ratio_low/high must be >= 0");
        }
        if a.clip_ratio_c != 0.0 && a.clip_ratio_c <= 1.0 {
            bail!(
                "algorithm.clip_ratio_c must be > 1 (or 0 = off), got {}",
                a.clip_ratio_c
            );
        }
        if a.use_kl_loss && a.kl_in_reward {
            bail!("algorithm.use_kl_loss and algorithm.kl_in_reward are exclusive (pick one place for the KL)");
        }
        if a.adv_estimator.needs_critic()
            && a.critic_lr.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            bail!("algorithm.critic_lr must be > 0 for adv_estimator = gae");
        }
        if self.lora.enabled {
            self.lora.model_config()?;
            self.lora.base_dtype(self.model.dtype)?;
        }
        self.schedule().validate().context("optim")?;
        self.adamw().validate().context("optim")?;
        Ok(())
    }

    pub fn schedule(&self) -> oneshot_optim::LrSchedule {
        let o = &self.optim;
        o.schedule.with(
            o.lr,
            o.warmup_steps,
            self.trainer.total_steps,
            o.min_lr_ratio,
        )
    }

    pub fn adamw(&self) -> oneshot_optim::AdamWConfig {
        let o = &self.optim;
        oneshot_optim::AdamWConfig {
            lr: o.lr,
            betas: (o.betas[0], o.betas[1]),
            eps: o.eps,
            weight_decay: o.weight_decay,
            max_grad_norm: (o.max_grad_norm > 0.0).then_some(o.max_grad_norm),
        }
    }

    pub fn policy_loss(&self) -> oneshot_rl::PolicyLossConfig {
        let a = &self.algorithm;
        oneshot_rl::PolicyLossConfig {
            clip_low: a.clip_ratio_low,
            clip_high: a.clip_ratio_high,
            dual_clip: (a.clip_ratio_c > 0.0).then_some(a.clip_ratio_c),
            kl: (a.use_kl_loss && a.kl_loss_coef != 0.0).then_some(
                oneshot_rl::loss::KlLossConfig {
                    kind: a.kl_loss_type,
                    coef: a.kl_loss_coef,
                },
            ),
            entropy_coef: a.entropy_coef,
            agg: a.loss_agg_mode,
        }
    }

    pub fn reward(&self) -> oneshot_rl::reward::RewardConfig {
        let r = &self.reward;
        oneshot_rl::reward::RewardConfig {
            correct_value: r.correct_value,
            format_value: (r.format_value != 0.0).then_some(r.format_value),
            length_weight: r.length_reward.then_some(r.length_weight),
        }
    }

    /// Whether the frozen reference policy is needed at all.
    pub fn needs_reference(&self) -> bool {
        let a = &self.algorithm;
        (a.use_kl_loss && a.kl_loss_coef != 0.0) || (a.kl_in_reward && a.kl_reward_coef != 0.0)
    }

    pub fn output_dir(&self) -> PathBuf {
        PathBuf::from(&self.trainer.output_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_paper_recipe() {
        let cfg = TrainConfig::load(None, &["model.path=/m".into()]).unwrap();
        assert_eq!(cfg.data.train_batch_size, 128);
        assert_eq!(cfg.rollout.n, 8);
        assert_eq!(cfg.rollout.temperature, 0.6);
        assert_eq!(cfg.rollout.max_response_length, 3072);
        assert_eq!(cfg.optim.lr, 1e-6);
        assert_eq!(cfg.optim.weight_decay, 0.01);
        assert_eq!(cfg.optim.max_grad_norm, 1.0);
        assert_eq!(cfg.trainer.mini_batch_size, 128);
        assert_eq!(cfg.trainer.total_steps, 2000);
        assert_eq!(cfg.algorithm.kl_loss_coef, 0.001);
        assert_eq!(cfg.algorithm.kl_loss_type, KlKind::K3);
        assert_eq!(cfg.algorithm.entropy_coef, 0.001);
        assert_eq!(cfg.algorithm.loss_agg_mode, LossAgg::TokenMean);
    }

    #[test]
    fn overrides_parse_values_and_reject_typos() {
        let cfg = TrainConfig::load(
            None,
            &[
                "model.path=/m".into(),
                "optim.lr=3e-5".into(),
                "algorithm.adv_estimator=rloo".into(),
                "data.train_files=[\"a.parquet\", \"b.parquet\"]".into(),
                "algorithm.loss_agg_mode=seq-mean-token-mean".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.optim.lr, 3e-5);
        assert_eq!(cfg.algorithm.adv_estimator, AdvantageEstimator::Rloo);
        assert_eq!(cfg.data.train_files, vec!["a.parquet", "b.parquet"]);
        assert_eq!(cfg.algorithm.loss_agg_mode, LossAgg::SeqMeanTokenMean);

        let err = format!(
            "{:#}",
            TrainConfig::load(None, &["model.path=/m".into(), "optim.lrr=1".into()]).unwrap_err()
        );
        assert!(err.contains("lrr"), "{err}");
        let err = format!(
            "{:#}",
            TrainConfig::load(None, &["optim.lr".into()]).unwrap_err()
        );
        assert!(err.contains("key=value"), "{err}");
        let err = format!(
            "{:#}",
            TrainConfig::load(
                None,
                &["model.path=/m".into(), "trainer.mini_batch_size=5".into()]
            )
            .unwrap_err()
        );
        assert!(err.contains("must divide"), "{err}");
    }

    #[test]
    fn lora_section_parses_and_names_bad_fields() {
        let cfg = TrainConfig::load(
            None,
            &[
                "model.path=/m".into(),
                "lora.enabled=true".into(),
                "lora.r=8".into(),
                "lora.target_modules=[\"q_proj\", \"v_proj\"]".into(),
                "lora.base_dtype=\"bf16\"".into(),
            ],
        )
        .unwrap();
        let m = cfg.lora.model_config().unwrap();
        assert_eq!(m.r, 8);
        assert_eq!(m.targets.len(), 2);
        assert_eq!(
            cfg.lora.base_dtype(cfg.model.dtype).unwrap(),
            candle_core::DType::BF16
        );
        for (bad, names) in [
            ("lora.target_modules=[\"lm_head\"]", "lm_head"),
            ("lora.r=0", "rank"),
            ("lora.dropout=1.5", "dropout"),
            ("lora.base_dtype=\"int8\"", "base_dtype"),
        ] {
            let err = TrainConfig::load(
                None,
                &[
                    "model.path=/m".into(),
                    "lora.enabled=true".into(),
                    bad.into(),
                ],
            )
            .unwrap_err();
            let err = format!("{err:#}");
            assert!(err.contains(names), "{bad}: {err}");
        }
    }

    #[test]
    fn resolved_config_round_trips() {
        let cfg = TrainConfig::load(
            None,
            &["model.path=/m".into(), "reward.length_reward=true".into()],
        )
        .unwrap();
        let text = cfg.to_toml_string().unwrap();
        assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), cfg);
    }
}
