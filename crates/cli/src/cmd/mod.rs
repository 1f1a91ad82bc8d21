//! One module per subcommand, plus the argument groups several share (`benchmarks`, `threads`).
pub mod bench;
pub mod benchmarks;
pub mod demo;
pub mod eval;
pub mod export;
pub mod lab;
pub mod score;
pub mod select;
pub mod threads;
pub mod train;
pub mod verify;

/// What `run.json` records about the kernels that ran in this process.
pub fn kernel_report() -> impl oneshot_run::KernelReport {
    oneshot_run::Kernels
}
