//! Data-parallel collectives for the trainer. Each process (rank) trains on its share of the
//! batch; the trainer meets the other ranks only through [`Collective`]: the initial
//! parameters and run state are broadcast from rank 0, gradients and scalars summed over
//! ranks, per-example outcomes gathered, and rank 0 alone writes files.
//!
//! Backends: [`Single`] (one process, the default), MPI (`mpi` feature, Open MPI or any MPI
//! through rsmpi) and NCCL for CUDA buffers (`nccl` feature, see `nccl`). Which one runs is
//! decided by the launcher's environment ([`World::from_env`]) in [`global`].

mod single;
mod world;

#[cfg(feature = "mpi")]
mod mpi_backend;
#[cfg(feature = "nccl")]
pub mod nccl;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Result};

pub use single::Single;
pub use world::{Launcher, World};

/// Values per all-reduce call when summing long gradient buffers: large enough to amortise a
/// call's latency, small enough that a send buffer is no large extra allocation.
pub const BUCKET_VALUES: usize = 1 << 22;

/// What a collective waits for the slowest rank before it stops the job
/// (`ONESHOT_DIST_TIMEOUT` seconds overrides it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The collectives the trainer uses. Every rank calls the same collectives in the same order
/// with buffers of the same length (all-gather's excepted).
pub trait Collective: Send + Sync {
    fn world(&self) -> World;
    /// The backend's name for logs.
    fn backend(&self) -> &'static str;
    /// Replaces `buf` on every rank with rank `root`'s bytes (lengths may differ before).
    fn broadcast(&self, buf: &mut Vec<u8>, root: usize) -> Result<()>;
    /// Element-wise sum over ranks, in place.
    fn all_reduce_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// Element-wise sum over ranks, in place.
    fn all_reduce_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Every rank's bytes, in rank order.
    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;
    fn barrier(&self) -> Result<()>;
    /// Ends every rank of the job with `code` after printing `msg` (this rank's failure).
    fn abort(&self, code: i32, msg: &str) -> !;
}

/// Sums a long buffer over ranks in buckets of [`BUCKET_VALUES`].
pub fn all_reduce_buckets(c: &dyn Collective, buf: &mut [f32]) -> Result<()> {
    if c.world().size == 1 {
        return Ok(());
    }
    for bucket in buf.chunks_mut(BUCKET_VALUES) {
        c.all_reduce_f32(bucket)?;
    }
    Ok(())
}

/// Broadcasts f32 values from `root` (every rank passes a buffer of the same length).
pub fn broadcast_f32(c: &dyn Collective, values: &mut [f32], root: usize) -> Result<()> {
    if c.world().size == 1 {
        return Ok(());
    }
    let mut bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    c.broadcast(&mut bytes, root)?;
    if bytes.len() != values.len() * 4 {
        bail!(
            "broadcast: rank {root} sent {} values, this rank expects {}",
            bytes.len() / 4,
            values.len()
        );
    }
    for (v, b) in values.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// The collective timeout of this process: `ONESHOT_DIST_TIMEOUT` (seconds) or the default.
pub fn timeout_from_env() -> Result<Duration> {
    match std::env::var("ONESHOT_DIST_TIMEOUT") {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
            _ => bail!("ONESHOT_DIST_TIMEOUT={v:?} must be a positive number of seconds"),
        },
    }
}

/// Ends the MPI library, if this process started it; call once, after the last collective and
/// before exiting (`mpirun` reports a rank that exits without it as failed).
pub fn finalize() {
    #[cfg(feature = "mpi")]
    mpi_backend::finalize();
}

static GLOBAL: OnceLock<Arc<dyn Collective>> = OnceLock::new();

/// The process's collective, set up on first use from the launcher's environment: MPI when a
/// launcher started several ranks, [`Single`] otherwise.
pub fn global() -> Result<Arc<dyn Collective>> {
    if let Some(c) = GLOBAL.get() {
        return Ok(c.clone());
    }
    let world = World::from_env()?;
    let c = connect(world)?;
    Ok(GLOBAL.get_or_init(|| c).clone())
}

#[cfg(feature = "mpi")]
fn connect(world: World) -> Result<Arc<dyn Collective>> {
    if world.size == 1 && !nccl_asked()? {
        return Ok(Arc::new(Single));
    }
    let mpi = mpi_backend::Mpi::init(world, timeout_from_env()?)?;
    #[cfg(feature = "nccl")]
    if nccl_asked()? {
        return Ok(Arc::new(nccl::Nccl::over(&mpi, world.local_rank)?));
    }
    Ok(Arc::new(mpi))
}

/// Whether `ONESHOT_DIST_BACKEND` asks for NCCL (`mpi`, the default, or `nccl`).
#[cfg(feature = "mpi")]
fn nccl_asked() -> Result<bool> {
    match std::env::var("ONESHOT_DIST_BACKEND").as_deref() {
        Err(_) | Ok("mpi") => Ok(false),
        Ok("nccl") if cfg!(feature = "nccl") => Ok(true),
        Ok("nccl") => bail!("ONESHOT_DIST_BACKEND=nccl, but this binary has no `nccl` feature"),
        Ok(other) => bail!("ONESHOT_DIST_BACKEND={other:?}: expected mpi or nccl"),
    }
}

#[cfg(not(feature = "mpi"))]
fn connect(world: World) -> Result<Arc<dyn Collective>> {
    #[cfg(feature = "nccl")]
    if std::env::var("ONESHOT_DIST_BACKEND").as_deref() == Ok("nccl") {
        return Ok(Arc::new(nccl::Nccl::from_env(world, world.local_rank)?));
    }
    if world.size > 1 {
        bail!(
            "the launcher ({}) started {} ranks, but this binary was built without the `mpi` \
             feature (cargo build --release --features mpi)",
            world.launcher.name(),
            world.size
        );
    }
    Ok(Arc::new(Single))
}
