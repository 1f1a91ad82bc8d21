//! Sampled pass@k on held-out problems: k responses per problem at a temperature, a problem
//! counting as solved when any response is right in any form (lenient), the way the paper
//! reports pass@8 at T = 0.6.
use anyhow::Result;
use oneshot_lab::eval::LabModel;
use oneshot_lab::metrics::LabJudge;
use oneshot_lab::splits::LabProblem;
use oneshot_lab::task::Family;
use oneshot_model::SamplerConfig;
use serde::{Deserialize, Serialize};

/// pass@k of one model on a set of problems.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    pub k: usize,
    pub temperature: f64,
    /// Problems sampled.
    pub problems: usize,
    /// Share of problems with at least one lenient-correct sample.
    pub pass: f64,
    /// The same over the problems outside the excluded family (pi_1's).
    pub other_pass: f64,
    /// Share of all samples that are lenient-correct (avg@k).
    pub mean: f64,
}

/// What to sample.
#[derive(Debug, Clone, Copy)]
pub struct PassSpec {
    pub k: usize,
    pub temperature: f64,
    pub max_new_tokens: usize,
    /// Sequences decoded together.
    pub batch: usize,
    /// Seeds the samples, so two models are compared on the same random streams.
    pub seed: u64,
}

/// The random stream of sample `j` of problem `idx`: fixed across training steps.
fn sample_seed(seed: u64, idx: usize, j: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((idx as u64) << 16 | j as u64)
}

/// k sampled responses per problem, judged leniently; `excluded` names the family left out of
/// `other_pass`.
pub fn pass_at_k(
    lab: &LabModel,
    problems: &[LabProblem],
    spec: &PassSpec,
    excluded: Family,
) -> Result<PassAtK> {
    let judge = LabJudge::default();
    let tok = &lab.tokenizer;
    let sampler = SamplerConfig {
        temperature: spec.temperature,
        top_p: 1.0,
        top_k: 0,
    };
    let gen = lab.generate_options(sampler, spec.max_new_tokens);
    let k = spec.k.max(1);
    let (mut solved, mut other_solved, mut other_n, mut right) = (0usize, 0usize, 0usize, 0usize);
    // Whole problems per chunk, so each problem's k samples are judged together.
    let per_chunk = (spec.batch / k).max(1);
    for chunk in problems.chunks(per_chunk) {
        let mut prompts = Vec::with_capacity(chunk.len() * k);
        let mut seeds = Vec::with_capacity(chunk.len() * k);
        for p in chunk {
            let ids = lab.prompt_ids(&p.problem)?;
            for j in 0..k {
                prompts.push(ids.clone());
                seeds.push(sample_seed(spec.seed, p.idx, j));
            }
        }
        let gens = lab
            .model
            .generate_continuous(&prompts, &seeds, &gen, spec.batch, None)?;
        let ids: Vec<Vec<u32>> = gens.into_iter().map(|g| g.tokens).collect();
        let texts = tok.decode_batch(&ids, true)?;
        for (p, samples) in chunk.iter().zip(texts.chunks(k)) {
            let hits = samples
                .iter()
                .filter(|r| judge.judge(r, &p.answer, &p.steps).lenient)
                .count();
            right += hits;
            solved += (hits > 0) as usize;
            if p.family != excluded {
                other_n += 1;
                other_solved += (hits > 0) as usize;
            }
        }
    }
    let share = |c: usize, of: usize| if of == 0 { 0.0 } else { c as f64 / of as f64 };
    Ok(PassAtK {
        k,
        temperature: spec.temperature,
        problems: problems.len(),
        pass: share(solved, problems.len()),
        other_pass: share(other_solved, other_n),
        mean: share(right, problems.len() * k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_seeds_differ_across_samples_problems_and_runs() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..3 {
            for idx in 0..50 {
                for j in 0..8 {
                    assert!(seen.insert(sample_seed(seed, idx, j)), "{seed} {idx} {j}");
                }
            }
        }
    }
}
