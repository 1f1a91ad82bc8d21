//! Progress of a long command: done/total, rate and ETA. On a terminal it is an indicatif bar;
//! otherwise (a log file, a pipe, CI) it is one plain line on stderr every
//! `ONESHOT_PROGRESS_SECS` seconds (default 10, 0 = on every update), such as
//!
//! ```text
//! eval math500: 120/500 samples, 2.3 samples/s, ETA 2m45s
//! train: 40/200 steps, 0.052 steps/s, ETA 51m17s | loss 0.312 reward 0.58
//! eval math500: 500/500 samples in 3m37s, 2.3 samples/s
//! ```
//!
//! The last line is the one [`Progress::finish`] prints. There is no background thread: the
//! interval is checked on each update, so callers update per item, batch or step.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Seconds between progress lines when stderr is not a terminal.
pub const INTERVAL_ENV: &str = "ONESHOT_PROGRESS_SECS";
/// The interval when [`INTERVAL_ENV`] is unset.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A bar when stderr is a terminal, lines otherwise.
    Auto,
    /// An indicatif bar on stderr.
    Bar,
    /// Plain lines on stderr every interval.
    Lines,
    /// Nothing (a `--no-progress` switch, or in-process callers such as tests).
    Quiet,
}

/// The line interval from [`INTERVAL_ENV`]; an unreadable value is reported once and the
/// default used (a typo in a progress setting should not stop a run).
pub fn interval_from_env() -> Duration {
    let Some(raw) = std::env::var_os(INTERVAL_ENV) else {
        return DEFAULT_INTERVAL;
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs),
        _ => {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                eprintln!(
                    "warning: {INTERVAL_ENV}={text:?} is not a number of seconds >= 0; using {}",
                    DEFAULT_INTERVAL.as_secs()
                )
            });
            DEFAULT_INTERVAL
        }
    }
}

enum Output {
    Bar(ProgressBar),
    Lines(Box<dyn Write + Send>),
    Quiet,
}

struct State {
    label: String,
    unit: String,
    total: u64,
    done: u64,
    /// Done before this run started (resumed work): counted as done, not towards the rate.
    resumed: u64,
    started: Instant,
    last_line: Instant,
    interval: Duration,
    message: String,
    output: Output,
    finished: bool,
}

/// A progress display shared by reference (updates take `&self`, so rayon workers and callbacks
/// can report through it). See the module docs for what it prints.
pub struct Progress {
    state: Mutex<State>,
}

impl Progress {
    /// `total` items under `label` (e.g. `"train"`, `"eval math500"`), counted in "items";
    /// name the unit with [`Progress::unit`]. A total of 0 means unknown (no ETA).
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        Self::with_style(label, total, Style::Auto)
    }

    /// [`Progress::new`] with an explicit style (e.g. [`Style::Quiet`] for `--no-progress`).
    pub fn with_style(label: impl Into<String>, total: u64, style: Style) -> Self {
        let style = match style {
            Style::Auto if std::io::stderr().is_terminal() => Style::Bar,
            Style::Auto => Style::Lines,
            other => other,
        };
        let output = match style {
            Style::Bar => Output::Bar(ProgressBar::with_draw_target(
                Some(total),
                ProgressDrawTarget::stderr(),
            )),
            Style::Lines => Output::Lines(Box::new(std::io::stderr())),
            _ => Output::Quiet,
        };
        Self::build(label.into(), total, output, interval_from_env())
    }

    /// Lines written to `out` every `interval` (for tests of what callers print).
    pub fn to_writer(
        label: impl Into<String>,
        total: u64,
        interval: Duration,
        out: Box<dyn Write + Send>,
    ) -> Self {
        Self::build(label.into(), total, Output::Lines(out), interval)
    }

    /// Shows nothing.
    pub fn quiet() -> Self {
        Self::build(String::new(), 0, Output::Quiet, DEFAULT_INTERVAL)
    }

    fn build(label: String, total: u64, output: Output, interval: Duration) -> Self {
        let now = Instant::now();
        let state = State {
            label,
            unit: "items".into(),
            total,
            done: 0,
            resumed: 0,
            started: now,
            last_line: now,
            interval,
            message: String::new(),
            output,
            finished: false,
        };
        let progress = Progress {
            state: Mutex::new(state),
        };
        progress.with(|s| s.style_bar());
        progress
    }

    /// Names what is counted, plural (`"samples"`, `"steps"`).
    pub fn unit(self, unit: impl Into<String>) -> Self {
        self.with(|s| {
            s.unit = unit.into();
            s.style_bar();
        });
        self
    }

    /// `done` items were finished by an earlier run (a resume): they count as done but not
    /// towards the rate and ETA.
    pub fn resumed(self, done: u64) -> Self {
        self.with(|s| {
            s.resumed = done;
            s.done = done;
            if let Output::Bar(bar) = &s.output {
                bar.set_position(done);
                bar.reset_eta();
            }
        });
        self
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// `done` items are finished in all.
    pub fn set(&self, done: u64) {
        self.with(|s| {
            s.done = done;
            s.updated();
        });
    }

    /// `k` more items are finished.
    pub fn inc(&self, k: u64) {
        self.with(|s| {
            s.done += k;
            s.updated();
        });
    }

    /// A short note shown after the counts (e.g. `loss 0.31`); it is printed with the next line.
    pub fn message(&self, message: impl Into<String>) {
        self.with(|s| {
            s.message = message.into();
            if let Output::Bar(bar) = &s.output {
                bar.set_message(s.message.clone());
            }
        });
    }

    /// Runs `f`, which prints to stderr, with the bar cleared so that its output is not torn.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let bar = self.with(|s| match &s.output {
            Output::Bar(bar) => Some(bar.clone()),
            _ => None,
        });
        match bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Items finished so far.
    pub fn done(&self) -> u64 {
        self.with(|s| s.done)
    }

    /// Prints the final line (or leaves the bar drawn). Later calls do nothing.
    pub fn finish(&self) {
        self.with(|s| {
            if std::mem::replace(&mut s.finished, true) {
                return;
            }
            let elapsed = s.started.elapsed();
            let line = format!(
                "{}: {} {} in {}, {} {}/s",
                s.label,
                s.counts(),
                s.unit,
                duration(elapsed),
                rate(s.rate(elapsed)),
                s.unit
            );
            s.emit(line);
            if let Output::Bar(bar) = &s.output {
                bar.finish();
            }
        });
    }
}

impl State {
    fn style_bar(&self) {
        if let Output::Bar(bar) = &self.output {
            let template = format!(
                "{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {}, ETA {{eta}} {{msg}}",
                self.unit.replace(['{', '}'], "")
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(self.label.clone());
        }
    }

    fn counts(&self) -> String {
        if self.total > 0 {
            format!("{}/{}", self.done, self.total)
        } else {
            self.done.to_string()
        }
    }

    /// Items per second over this run (resumed items excluded).
    fn rate(&self, elapsed: Duration) -> f64 {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.done.saturating_sub(self.resumed) as f64 / secs
    }

    fn updated(&mut self) {
        match &self.output {
            Output::Bar(bar) => bar.set_position(self.done),
            Output::Lines(_) => {
                let now = Instant::now();
                if now.duration_since(self.last_line) >= self.interval && !self.finished {
                    self.last_line = now;
                    let elapsed = now.duration_since(self.started);
                    let per_sec = self.rate(elapsed);
                    let eta = if self.total == 0 {
                        String::new()
                    } else if per_sec > 0.0 {
                        let left = self.total.saturating_sub(self.done) as f64 / per_sec;
                        format!(", ETA {}", duration(Duration::from_secs_f64(left)))
                    } else {
                        ", ETA ?".to_owned()
                    };
                    let line = format!(
                        "{}: {} {}, {} {}/s{eta}",
                        self.label,
                        self.counts(),
                        self.unit,
                        rate(per_sec),
                        self.unit
                    );
                    self.emit(line);
                }
            }
            Output::Quiet => {}
        }
    }

    fn emit(&mut self, mut line: String) {
        if let Output::Lines(out) = &mut self.output {
            if !self.message.is_empty() {
                line.push_str(" | ");
                line.push_str(&self.message);
            }
            line.push('\n');
            // A progress line that cannot be written is not worth failing the run for.
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

/// A rate with about three significant digits.
fn rate(per_sec: f64) -> String {
    if per_sec >= 100.0 {
        format!("{per_sec:.0}")
    } else if per_sec >= 10.0 {
        format!("{per_sec:.1}")
    } else if per_sec >= 1.0 {
        format!("{per_sec:.2}")
    } else {
        format!("{per_sec:.3}")
    }
}

/// `45s`, `2m45s`, `1h02m`, `3d04h`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    let (days, hours, minutes, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours:02}h")
    } else if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}
