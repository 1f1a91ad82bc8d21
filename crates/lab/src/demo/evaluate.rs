//! Greedy evaluation in chunks, so a progress bar can follow it, and progress-bar helpers.
use crate::eval::{evaluate_greedy, EvalOptions, Evaluated, LabModel};
use crate::metrics::LabScores;
use crate::splits::LabProblem;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::path::Path;

/// A bar of `len` units on stderr, or a hidden one.
pub fn bar(show: bool, len: usize, what: &str) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let b = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>22} [{wide_bar}] {pos}/{len} {elapsed_precise} ETA {eta_precise} {msg}",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_prefix(what.to_string());
    b
}

/// Greedy responses to `problems`, judged, in chunks of `opts.batch_size`, ticking `bar` by
/// problems done.
pub fn evaluate_with_bar(
    lab: &LabModel,
    problems: &[LabProblem],
    opts: &EvalOptions,
    bar: &ProgressBar,
) -> Result<(Vec<Evaluated>, LabScores)> {
    let mut items = Vec::with_capacity(problems.len());
    for chunk in problems.chunks(opts.batch_size.max(1)) {
        let (part, _) = evaluate_greedy(lab, chunk, opts)?;
        items.extend(part);
        bar.inc(chunk.len() as u64);
    }
    let scores = scores_of(&items);
    Ok((items, scores))
}

pub fn scores_of(items: &[Evaluated]) -> LabScores {
    LabScores::new(
        &items
            .iter()
            .map(|e| (e.family, e.judged))
            .collect::<Vec<_>>(),
    )
}

/// One judged response per line.
pub fn write_responses(path: &Path, items: &[Evaluated]) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for e in items {
        serde_json::to_writer(&mut f, e)?;
        f.write_all(b"\n")?;
    }
    f.flush()
        .with_context(|| format!("writing {}", path.display()))
}
