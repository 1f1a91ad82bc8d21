//! Progress reporting of an evaluation: a trait the harness calls, a silent implementation for
//! in-process callers (the trainer's validation) and [`Console`] for the CLI: a bar on a
//! terminal, otherwise a line every `ONESHOT_PROGRESS_SECS` seconds (see `oneshot_run::progress`).

use std::sync::Mutex;

use oneshot_run::progress::{Progress as Display, Style};

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

/// One `oneshot_run` progress display per benchmark, labelled `eval <benchmark>` and counting
/// samples.
pub struct Console {
    style: Style,
    current: Mutex<Option<Display>>,
}

impl Console {
    /// A bar on a terminal, lines otherwise.
    pub fn new() -> Self {
        Self::with_style(Style::Auto)
    }

    pub fn with_style(style: Style) -> Self {
        Console {
            style,
            current: Mutex::new(None),
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Display>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Console {
    fn start(&self, benchmark: &str, total: usize, already_done: usize) {
        let display = Display::with_style(format!("eval {benchmark}"), total as u64, self.style)
            .unit("samples")
            .resumed(already_done as u64);
        *self.current() = Some(display);
    }

    fn advance(&self, n: usize) {
        if let Some(display) = self.current().as_ref() {
            display.inc(n as u64);
        }
    }

    fn finish(&self) {
        if let Some(display) = self.current().take() {
            display.finish();
        }
    }
}
