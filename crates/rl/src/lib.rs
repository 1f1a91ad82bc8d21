//! RLVR math for 1-shot RLVR (Wang et al. 2504.20571, on verl 0.2's formulas): advantage
//! estimators, the actor and critic losses with their aggregation modes, KL estimators, reward
//! composition with HAPO's length reward. The optimiser is `oneshot-optim` (pretraining uses it
//! too); the trainer loop that ties these to the model is `oneshot-train`.

pub mod advantages;
pub mod agg;
pub mod filter;
pub mod grid;
pub mod hapo;
pub mod kl;
pub mod logits;
pub mod loss;
pub mod reward;

pub use advantages::AdvantageEstimator;
pub use agg::{AggScope, LossAgg};
pub use grid::TokenGrid;
pub use kl::KlKind;
pub use logits::token_logp_entropy;
pub use loss::{policy_loss, value_loss, PolicyLossConfig, PolicyLossInputs, PolicyLossMetrics};
