//! Data-parallel collectives for the trainer. Each process (rank) trains on its share of the
//! batch; the trainer meets the other ranks only through [`Collective`]: the initial
//! parameters and run state are broadcast from rank 0, gradients and scalars summed over
//! ranks, per-example outcomes gathered, and rank 0 alone writes files.
//!
//! Backends: [`Single`] (one process, the default), MPI (`mpi` feature, Open MPI or any MPI
//! through rsmpi) and NCCL for CUDA buffers (`cuda` feature, see `nccl`; libnccl is opened at run
//! time, so only choosing that backend needs NCCL installed). Which one runs is
//! decided by the launcher's environment ([`World::from_env`]) in [`global`].

mod single;
mod world;

#[cfg(feature = "mpi")]
mod mpi_backend;
#[cfg(feature = "cuda")]
pub mod nccl;
mod nccl_lib;

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
    /// The NCCL backend, for sums of device buffers in place (`None`: host buffers only).
    #[cfg(feature = "cuda")]
    fn nccl(&self) -> Option<&nccl::Nccl> {
        None
    }
    /// Ends every rank of the job with `code` after printing `msg` (this rank's failure).
    fn abort(&self, code: i32, msg: &str) -> !;
}

/// The buckets a buffer of `len` values is summed in: `(offset, length)` pairs of at most
/// `bucket` values (the last one shorter), in order, covering the buffer once. Host and
/// device sums cut a buffer the same way.
pub fn bucket_ranges(len: usize, bucket: usize) -> impl Iterator<Item = (usize, usize)> {
    let bucket = bucket.max(1);
    (0..len)
        .step_by(bucket)
        .map(move |off| (off, bucket.min(len - off)))
}

/// The buckets of a device buffer of T whose values start `start` elements after address
/// `base`: `(address, length)` per bucket of [`bucket_ranges`]`(len, bucket)`.
pub fn bucket_addresses<T>(
    base: u64,
    start: usize,
    len: usize,
    bucket: usize,
) -> impl Iterator<Item = (u64, usize)> {
    let size = std::mem::size_of::<T>() as u64;
    bucket_ranges(len, bucket).map(move |(off, n)| (base + (start + off) as u64 * size, n))
}

/// Sums a long buffer over ranks in buckets of [`BUCKET_VALUES`].
pub fn all_reduce_buckets(c: &dyn Collective, buf: &mut [f32]) -> Result<()> {
    if c.world().size == 1 {
        return Ok(());
    }
    for (off, n) in bucket_ranges(buf.len(), BUCKET_VALUES) {
        c.all_reduce_f32(&mut buf[off..off + n])?;
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
    #[cfg(feature = "cuda")]
    if nccl_asked()? {
        return Ok(Arc::new(nccl::Nccl::over(&mpi, world.local_rank)?));
    }
    Ok(Arc::new(mpi))
}

/// Whether `ONESHOT_DIST_BACKEND` asks for NCCL (`mpi`, the default, or `nccl`).
fn nccl_asked() -> Result<bool> {
    match std::env::var("ONESHOT_DIST_BACKEND").as_deref() {
        Err(_) | Ok("mpi") => Ok(false),
        Ok("nccl") if cfg!(feature = "cuda") => Ok(true),
        Ok("nccl") => bail!("ONESHOT_DIST_BACKEND=nccl, but this binary has no `cuda` feature"),
        Ok(other) => bail!("ONESHOT_DIST_BACKEND={other:?}: expected mpi or nccl"),
    }
}

#[cfg(not(feature = "mpi"))]
fn connect(world: World) -> Result<Arc<dyn Collective>> {
    if nccl_asked()? {
        #[cfg(feature = "cuda")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_a_buffer_once_in_order() {
        let got: Vec<_> = bucket_ranges(10, 4).collect();
        assert_eq!(got, vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(
            bucket_ranges(8, 4).collect::<Vec<_>>(),
            vec![(0, 4), (4, 4)]
        );
        assert_eq!(bucket_ranges(3, 4).collect::<Vec<_>>(), vec![(0, 3)]);
        assert_eq!(bucket_ranges(0, 4).count(), 0);
        // A zero bucket size is one value a bucket, not an endless loop.
        assert_eq!(
            bucket_ranges(2, 0).collect::<Vec<_>>(),
            vec![(0, 1), (1, 1)]
        );
        for (len, b) in [(1usize, 1usize), (17, 5), (1 << 12, 1 << 10), (1000, 999)] {
            let mut next = 0;
            for (off, n) in bucket_ranges(len, b) {
                assert_eq!(off, next);
                assert!(n >= 1 && n <= b);
                next = off + n;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn device_buckets_step_by_the_element_size_from_the_first_value() {
        let got: Vec<_> = bucket_addresses::<f32>(0x1000, 3, 10, 4).collect();
        assert_eq!(got, vec![(0x100c, 4), (0x101c, 4), (0x102c, 2)]);
        let got: Vec<_> = bucket_addresses::<f64>(64, 0, 5, 2).collect();
        assert_eq!(got, vec![(64, 2), (80, 2), (96, 1)]);
        assert_eq!(bucket_addresses::<f32>(8, 1, 0, 4).count(), 0);
    }

    #[test]
    fn bucketed_sum_in_a_world_of_one_leaves_values() {
        let mut v: Vec<f32> = (0..10).map(|i| i as f32).collect();
        all_reduce_buckets(&Single, &mut v).unwrap();
        assert_eq!(v, (0..10).map(|i| i as f32).collect::<Vec<_>>());
    }
}
