//! RLVR math for 1-shot RLVR (Wang et al. 2504.20571, on verl 0.2's formulas): advantage
//! estimators, the actor and critic losses with their aggregation modes, KL estimators, reward
//! composition with HAPO's length reward, the fused AdamW optimiser and learning-rate schedules.
//! The trainer loop that ties them to the model lives elsewhere.

pub mod advantages;
pub mod agg;
pub mod filter;
pub mod grid;
pub mod hapo;
pub mod kl;
pub mod logits;
pub mod loss;
pub mod optim;
pub mod reward;
pub mod schedule;

pub use advantages::AdvantageEstimator;
pub use agg::{AggScope, LossAgg};
pub use grid::TokenGrid;
pub use kl::KlKind;
pub use logits::token_logp_entropy;
pub use loss::{policy_loss, value_loss, PolicyLossConfig, PolicyLossInputs, PolicyLossMetrics};
pub use optim::{AdamW, AdamWConfig, GradAccumulator, StepStats};
pub use schedule::LrSchedule;
