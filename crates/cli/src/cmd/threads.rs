//! `--threads`, shared by every command that computes: one flag, applied once at start-up.

use anyhow::{ensure, Result};

/// Flatten into a command's arguments with `#[command(flatten)]`, then call [`Threads::apply`]
/// before any work starts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Threads {
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Threads {
    /// Sizes the global rayon pool (our kernels) and sets `RAYON_NUM_THREADS` (read by candle's
    /// CPU matmul) when `--threads` is given. Call it before anything uses rayon: the global
    /// pool can be built only once.
    pub fn apply(&self) -> Result<()> {
        if let Some(n) = self.threads {
            ensure!(n >= 1, "--threads must be at least 1 (got {n})");
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            // Fails only if the pool already exists, in which case its size stands.
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .ok();
        }
        Ok(())
    }
}
