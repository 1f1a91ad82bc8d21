//! The MPI backend (rsmpi). Every collective is started non-blocking and polled against the
//! job's timeout, so a rank whose peer died or hangs stops the job (`MPI_Abort`, which ends
//! every rank) with a message instead of waiting for ever. A launcher that sees a rank exit
//! stops the others sooner (`mpirun` does at once; `srun` with `--kill-on-bad-exit=1`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::request::{Request, Scope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use crate::{Collective, World};

/// Exit status of a job stopped by a collective's timeout.
pub const TIMEOUT_EXIT: i32 = 124;

/// The universe, kept so [`finalize`] can end MPI before the process exits (an MPI process
/// that exits without `MPI_Finalize` is reported as failed by `mpirun`).
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

pub struct Mpi {
    world: World,
    timeout: Duration,
    comm: Mutex<Comm>,
}

struct Comm(SimpleCommunicator);

// SAFETY: MPI was initialised with at least `Threading::Serialized`, and every use of the
// communicator goes through the mutex, so no two threads call MPI at once.
unsafe impl Send for Comm {}

impl Mpi {
    /// Initialises MPI and checks that its world is the launcher's.
    pub fn init(world: World, timeout: Duration) -> Result<Self> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| anyhow!("MPI was already initialised in this process"))?;
        if level < Threading::Serialized {
            bail!("the MPI library offers thread level {level:?}; the trainer needs Serialized");
        }
        let comm = universe.world();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        if (rank, size) != (world.rank, world.size) {
            bail!(
                "MPI says rank {rank} of {size}, the launcher's environment ({}) rank {} of {}",
                world.launcher.name(),
                world.rank,
                world.size
            );
        }
        *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(universe);
        Ok(Self {
            world,
            timeout,
            comm: Mutex::new(Comm(comm)),
        })
    }

    fn comm(&self) -> std::sync::MutexGuard<'_, Comm> {
        self.comm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for `req`, stopping the whole job if it takes longer than the timeout.
    fn wait<'a, R: ?Sized, S: Scope<'a>>(
        &self,
        comm: &SimpleCommunicator,
        mut req: Request<'a, R, S>,
        what: &str,
    ) {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            match req.test() {
                Ok(_) => return,
                Err(r) => req = r,
            }
            if start.elapsed() > self.timeout {
                eprintln!(
                    "rank {} of {}: {what} did not complete within {:.0} s: another rank died, \
                     failed or hangs (ONESHOT_DIST_TIMEOUT sets the limit); stopping the job",
                    self.world.rank,
                    self.world.size,
                    self.timeout.as_secs_f64()
                );
                comm.abort(TIMEOUT_EXIT);
            }
            polls += 1;
            if polls < 2000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    fn all_reduce<T: Equivalence + Copy>(&self, buf: &mut [T], what: &str) {
        let guard = self.comm();
        let comm = &guard.0;
        let send = buf.to_vec();
        mpi::request::scope(|sc| {
            let req = comm.immediate_all_reduce_into(sc, &send[..], buf, SystemOperation::sum());
            self.wait(comm, req, what);
        });
    }
}

/// Ends MPI (once, before the process exits); collectives must not be used afterwards.
pub fn finalize() {
    drop(UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take());
}

impl Collective for Mpi {
    fn world(&self) -> World {
        self.world
    }

    fn backend(&self) -> &'static str {
        "MPI"
    }

    fn broadcast(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        if root >= self.world.size {
            bail!(
                "broadcast from rank {root} in a world of {}",
                self.world.size
            );
        }
        let guard = self.comm();
        let comm = &guard.0;
        let origin = comm.process_at_rank(root as i32);
        let mut len = [buf.len() as u64];
        mpi::request::scope(|sc| {
            let req = origin.immediate_broadcast_into(sc, &mut len[..]);
            self.wait(comm, req, "broadcast (length)");
        });
        buf.resize(len[0] as usize, 0);
        mpi::request::scope(|sc| {
            let req = origin.immediate_broadcast_into(sc, &mut buf[..]);
            self.wait(comm, req, "broadcast");
        });
        Ok(())
    }

    fn all_reduce_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce(buf, "all-reduce (f32)");
        Ok(())
    }

    fn all_reduce_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.all_reduce(buf, "all-reduce (f64)");
        Ok(())
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let guard = self.comm();
        let comm = &guard.0;
        let n = self.world.size;
        let len = [i32::try_from(mine.len())
            .map_err(|_| anyhow!("all-gather of {} bytes (more than 2 GiB)", mine.len()))?];
        let mut lens = vec![0i32; n];
        mpi::request::scope(|sc| {
            let req = comm.immediate_all_gather_into(sc, &len[..], &mut lens[..]);
            self.wait(comm, req, "all-gather (lengths)");
        });
        let displs: Vec<i32> = lens
            .iter()
            .scan(0i32, |at, &l| {
                let d = *at;
                *at += l;
                Some(d)
            })
            .collect();
        let total: usize = lens.iter().map(|&l| l as usize).sum();
        let mut all = vec![0u8; total];
        {
            let mut part = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
            mpi::request::scope(|sc| {
                let req = comm.immediate_all_gather_varcount_into(sc, mine, &mut part);
                self.wait(comm, req, "all-gather");
            });
        }
        Ok(lens
            .iter()
            .zip(&displs)
            .map(|(&l, &d)| all[d as usize..(d + l) as usize].to_vec())
            .collect())
    }

    fn barrier(&self) -> Result<()> {
        let guard = self.comm();
        let comm = &guard.0;
        let req = comm.immediate_barrier();
        self.wait(comm, req, "barrier");
        Ok(())
    }

    fn abort(&self, code: i32, msg: &str) -> ! {
        eprintln!("rank {} of {}: {msg}", self.world.rank, self.world.size);
        // MPI_Abort needs no lock: it ends the process, whatever another thread is doing.
        SimpleCommunicator::world().abort(code.max(1))
    }
}
