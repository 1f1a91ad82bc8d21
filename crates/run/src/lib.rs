//! What every long command shares: [`Progress`] (a bar on a terminal, a line every few seconds
//! otherwise, with done/total, rate and ETA) and the run record [`write_run_json`] (`run.json`:
//! command, resolved configuration, commit, CPU, threads, kernel paths).

pub mod progress;
pub mod record;

pub use progress::{Progress, Style};
pub use record::{
    command_line, set_build_commit, write_run_json, KernelReport, Kernels, NoKernelReport,
    RunRecord,
};
