//! Greedy evaluation in chunks, so progress can follow it.
use anyhow::{Context, Result};
use oneshot_lab::eval::{evaluate_greedy, EvalOptions, Evaluated, LabModel};
use oneshot_lab::metrics::LabScores;
use oneshot_lab::splits::LabProblem;
use oneshot_run::{Progress, Style};
use std::io::Write;
use std::path::Path;

/// Progress over `len` problems (a bar on a terminal, lines on a pipe), or nothing.
pub fn bar(show: bool, len: usize, what: &str) -> Progress {
    let style = if show { Style::Auto } else { Style::Quiet };
    Progress::with_style(what, len as u64, style).unit("problems")
}

/// Greedy responses to `problems`, judged, in chunks of `opts.batch_size`, ticking `bar` by
/// problems done.
pub fn evaluate_with_bar(
    lab: &LabModel,
    problems: &[LabProblem],
    opts: &EvalOptions,
    bar: &Progress,
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
