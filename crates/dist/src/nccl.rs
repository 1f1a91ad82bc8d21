//! The NCCL backend (feature `nccl`, through cudarc): one rank per GPU, sums over NVLink or
//! InfiniBand. The ranks meet through NCCL's unique id, which rank 0 makes and the others get
//! from the launcher's environment (`ONESHOT_NCCL_ID`, the id's 128 bytes as hex) or, when
//! MPI is also built in, from an MPI broadcast ([`Nccl::over`]). Host buffers are staged
//! through the GPU; [`Nccl::all_reduce_device`] sums a device buffer where it is.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};

use crate::{Collective, World};

pub struct Nccl {
    world: World,
    stream: Arc<CudaStream>,
    comm: Mutex<CommBox>,
}

struct CommBox(Comm);

// SAFETY: the communicator is used only under the mutex, one call at a time, and NCCL allows a
// communicator to be used from any thread as long as calls are not concurrent.
unsafe impl Send for CommBox {}

fn nccl_err(what: &str) -> impl Fn(cudarc::nccl::result::NcclError) -> anyhow::Error + '_ {
    move |e| anyhow!("NCCL {what}: {e:?}")
}

fn cuda_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> anyhow::Error + '_ {
    move |e| anyhow!("CUDA {what}: {e:?}")
}

/// An id as the hex text `ONESHOT_NCCL_ID` carries.
pub fn id_to_hex(id: &Id) -> String {
    id.internal()
        .iter()
        .map(|&c| format!("{:02x}", c as u8))
        .collect()
}

/// The id of `ONESHOT_NCCL_ID`'s hex text.
pub fn id_from_hex(text: &str) -> Result<Id> {
    let text = text.trim();
    if text.len() != 256 {
        bail!("ONESHOT_NCCL_ID has {} hex digits, not 256", text.len());
    }
    let mut internal = [0 as std::ffi::c_char; 128];
    for (i, c) in internal.iter_mut().enumerate() {
        let byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .with_context(|| format!("ONESHOT_NCCL_ID: bad hex at {}", 2 * i))?;
        *c = byte as std::ffi::c_char;
    }
    Ok(Id::uninit(internal))
}

impl Nccl {
    /// Joins the communicator of `id` as `world.rank`, on GPU `ordinal`.
    pub fn new(world: World, ordinal: usize, id: Id) -> Result<Self> {
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("opening the device"))?;
        let stream = ctx.default_stream();
        let comm = Comm::from_rank(stream.clone(), world.rank, world.size, id)
            .map_err(nccl_err("joining the communicator"))?;
        Ok(Self {
            world,
            stream,
            comm: Mutex::new(CommBox(comm)),
        })
    }

    /// The world of one (a fresh id) or the launcher's, with the id from `ONESHOT_NCCL_ID`.
    pub fn from_env(world: World, ordinal: usize) -> Result<Self> {
        let id = match world.size {
            1 => Id::new().map_err(nccl_err("making a unique id"))?,
            _ => id_from_hex(&std::env::var("ONESHOT_NCCL_ID").with_context(|| {
                format!(
                    "{} ranks over NCCL need ONESHOT_NCCL_ID (rank 0's id, or MPI to send it)",
                    world.size
                )
            })?)?,
        };
        Self::new(world, ordinal, id)
    }

    /// Rank 0 makes the id and `host` (another backend, e.g. MPI) sends it to every rank.
    pub fn over(host: &dyn Collective, ordinal: usize) -> Result<Self> {
        let world = host.world();
        let mut bytes = match world.rank {
            0 => {
                let id = Id::new().map_err(nccl_err("making a unique id"))?;
                id_to_hex(&id).into_bytes()
            }
            _ => Vec::new(),
        };
        host.broadcast(&mut bytes, 0)?;
        let id = id_from_hex(std::str::from_utf8(&bytes).context("the NCCL id is not text")?)?;
        Self::new(world, ordinal, id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CommBox> {
        self.comm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sums a device buffer over ranks in place (the gradient path without host copies).
    pub fn all_reduce_device(&self, buf: &mut CudaSlice<f32>) -> Result<()> {
        let g = self.lock();
        g.0.all_reduce_in_place(buf, &ReduceOp::Sum)
            .map_err(nccl_err("all-reduce"))?;
        self.stream.synchronize().map_err(cuda_err("synchronising"))
    }

    fn staged_sum<T>(&self, buf: &mut [T]) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::NcclType + Copy,
    {
        let mut dev = self.stream.clone_htod(buf).map_err(cuda_err("upload"))?;
        {
            let g = self.lock();
            g.0.all_reduce_in_place(&mut dev, &ReduceOp::Sum)
                .map_err(nccl_err("all-reduce"))?;
        }
        let host = self.stream.clone_dtoh(&dev).map_err(cuda_err("download"))?;
        buf.copy_from_slice(&host);
        Ok(())
    }
}

impl Collective for Nccl {
    fn world(&self) -> World {
        self.world
    }

    fn backend(&self) -> &'static str {
        "NCCL"
    }

    fn broadcast(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let mut len = [buf.len() as u64];
        let mut dev = self
            .stream
            .clone_htod(&len[..])
            .map_err(cuda_err("upload"))?;
        {
            let g = self.lock();
            g.0.broadcast_in_place(&mut dev, root as i32)
                .map_err(nccl_err("broadcast"))?;
        }
        len[0] = self.stream.clone_dtoh(&dev).map_err(cuda_err("download"))?[0];
        buf.resize(len[0] as usize, 0);
        if buf.is_empty() {
            return Ok(());
        }
        let mut dev = self
            .stream
            .clone_htod(&buf[..])
            .map_err(cuda_err("upload"))?;
        {
            let g = self.lock();
            g.0.broadcast_in_place(&mut dev, root as i32)
                .map_err(nccl_err("broadcast"))?;
        }
        *buf = self.stream.clone_dtoh(&dev).map_err(cuda_err("download"))?;
        Ok(())
    }

    fn all_reduce_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.staged_sum(buf)
    }

    fn all_reduce_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.staged_sum(buf)
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        // Lengths first (a sum of one-hot rows), then every rank's bytes padded to the longest.
        let n = self.world.size;
        let mut lens = vec![0u64; n];
        lens[self.world.rank] = mine.len() as u64;
        self.staged_sum(&mut lens)?;
        let width = lens.iter().copied().max().unwrap_or(0) as usize;
        if width == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let mut padded = mine.to_vec();
        padded.resize(width, 0);
        let send = self
            .stream
            .clone_htod(&padded)
            .map_err(cuda_err("upload"))?;
        let mut recv = self
            .stream
            .alloc_zeros::<u8>(width * n)
            .map_err(cuda_err("alloc"))?;
        {
            let g = self.lock();
            g.0.all_gather(&send, &mut recv)
                .map_err(nccl_err("all-gather"))?;
        }
        let all = self
            .stream
            .clone_dtoh(&recv)
            .map_err(cuda_err("download"))?;
        Ok(lens
            .iter()
            .enumerate()
            .map(|(r, &l)| all[r * width..r * width + l as usize].to_vec())
            .collect())
    }

    fn barrier(&self) -> Result<()> {
        let mut one = [1f32];
        self.staged_sum(&mut one)
    }

    fn abort(&self, code: i32, msg: &str) -> ! {
        eprintln!("rank {} of {}: {msg}", self.world.rank, self.world.size);
        std::process::exit(code.max(1))
    }
}
