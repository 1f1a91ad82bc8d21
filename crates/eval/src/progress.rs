//! Progress reporting of an evaluation: a trait the harness calls, a silent implementation for
//! in-process callers (the trainer's validation) and a terminal bar with ETA for the CLI.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// Told about each benchmark's samples as they finish.
pub trait Progress: Sync {
    /// A benchmark starts: `total` samples of which `already_done` come from an earlier run.
    fn start(&self, _benchmark: &str, _total: usize, _already_done: usize) {}
    /// `n` more samples are finished.
    fn advance(&self, _n: usize) {}
    /// The benchmark is finished.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// An indicatif bar on stderr (hidden when stderr is not a terminal), one per benchmark.
#[derive(Default)]
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Progress for Bar {
    fn start(&self, benchmark: &str, total: usize, already_done: usize) {
        let bar = ProgressBar::new(total as u64);
        let style = ProgressStyle::with_template(
            "{prefix:>14} [{elapsed_precise}] {wide_bar} {pos}/{len} samples, ETA {eta}",
        )
        .expect("the progress template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(benchmark.to_owned());
        // Resumed samples are counted as done without counting towards the rate (and the ETA).
        bar.set_position(already_done as u64);
        bar.reset_eta();
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, n: usize) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            bar.inc(n as u64);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish();
        }
    }
}
