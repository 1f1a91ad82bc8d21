//! The NCCL backend (feature `cuda`): one rank per GPU, sums over NVLink or InfiniBand.
//!
//! libnccl is opened at run time (dlopen) on the first use, not linked: a `cuda` binary starts
//! and trains on machines without NCCL, and only choosing this backend needs `libnccl.so.2`
//! (`ONESHOT_NCCL_LIB` names the file, otherwise the loader's search path is used). Devices,
//! streams and buffers are candle's cudarc, on the device's primary context, so a communicator
//! made here sums candle's buffers on candle's stream.
//!
//! The ranks meet through NCCL's unique id, which rank 0 makes and the others get from the
//! launcher's environment (`ONESHOT_NCCL_ID`, the id's 128 bytes as hex) or, when MPI is also
//! built in, from an MPI broadcast ([`Nccl::over`]). Host buffers are staged through the GPU;
//! [`Nccl::all_reduce_device`] sums a device buffer where it is. Every call waits for its
//! stream with the collective deadline (`ONESHOT_DIST_TIMEOUT`): a peer that died leaves the
//! operation pending, and at the deadline the communicator is aborted and the call fails.

use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cudarc::driver::{
    sys as cu, CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr,
};

use crate::nccl_lib::{
    check, lib, Lib, RawComm, Stream, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_IN_PROGRESS, NCCL_SUCCESS,
    NCCL_SUM, NCCL_UINT64, NCCL_UINT8,
};
pub use crate::nccl_lib::{id_from_hex, id_to_hex, Id};
use crate::{timeout_from_env, Collective, World};

/// Element types NCCL sums, with their `ncclDataType_t`.
pub trait NcclType: DeviceRepr + Copy + Default {
    const DATATYPE: c_int;
}
impl NcclType for u8 {
    const DATATYPE: c_int = NCCL_UINT8;
}
impl NcclType for u64 {
    const DATATYPE: c_int = NCCL_UINT64;
}
impl NcclType for f32 {
    const DATATYPE: c_int = NCCL_FLOAT32;
}
impl NcclType for f64 {
    const DATATYPE: c_int = NCCL_FLOAT64;
}

fn cuda_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> anyhow::Error + '_ {
    move |e| anyhow!("CUDA {what}: {e:?}")
}

/// A communicator; `None` after an abort.
struct CommBox(Option<RawComm>);

// SAFETY: the communicator is used only under the mutex, one call at a time, and NCCL allows a
// communicator to be used from any thread as long as calls are not concurrent.
unsafe impl Send for CommBox {}

pub struct Nccl {
    world: World,
    lib: &'static Lib,
    stream: Arc<CudaStream>,
    comm: Mutex<CommBox>,
    timeout: Duration,
}

impl Nccl {
    /// Joins the communicator of `id` as `world.rank`, on GPU `ordinal`.
    pub fn new(world: World, ordinal: usize, id: Id) -> Result<Self> {
        let lib = lib()?;
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("opening the device"))?;
        let stream = ctx.default_stream();
        let mut comm: RawComm = std::ptr::null_mut();
        // SAFETY: the device's context is current on this thread (CudaContext::new binds it);
        // `comm` receives the communicator.
        check(lib, "joining the communicator", unsafe {
            (lib.comm_init_rank)(
                &mut comm,
                world.size as c_int,
                id.raw(),
                world.rank as c_int,
            )
        })?;
        Ok(Self {
            world,
            lib,
            stream,
            comm: Mutex::new(CommBox(Some(comm))),
            timeout: timeout_from_env()?,
        })
    }

    /// The world of one (a fresh id) or the launcher's, with the id from `ONESHOT_NCCL_ID`.
    pub fn from_env(world: World, ordinal: usize) -> Result<Self> {
        let id = match world.size {
            1 => Id::new()?,
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
            0 => id_to_hex(&Id::new()?).into_bytes(),
            _ => Vec::new(),
        };
        host.broadcast(&mut bytes, 0)?;
        let id = id_from_hex(std::str::from_utf8(&bytes).context("the NCCL id is not text")?)?;
        Self::new(world, ordinal, id)
    }

    /// The stream the host-buffer collectives run on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Runs `op` on the communicator, then waits for `stream` with the deadline.
    fn run(
        &self,
        what: &str,
        stream: &CudaStream,
        op: impl FnOnce(&Lib, RawComm) -> c_int,
    ) -> Result<()> {
        let mut g = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        let Some(comm) = g.0 else {
            bail!("NCCL {what}: the communicator was aborted by an earlier failure");
        };
        stream
            .context()
            .bind_to_thread()
            .map_err(cuda_err("binding the device"))?;
        check(self.lib, what, op(self.lib, comm))?;
        let start = Instant::now();
        loop {
            // SAFETY: the stream belongs to this process's live context.
            match unsafe { cu::cuStreamQuery(stream.cu_stream()) } {
                cu::CUresult::CUDA_SUCCESS => return Ok(()),
                cu::CUresult::CUDA_ERROR_NOT_READY => {}
                e => bail!("NCCL {what}: the stream failed: {e:?}"),
            }
            let mut async_err = NCCL_SUCCESS;
            // SAFETY: `comm` is live; NCCL writes one ncclResult_t.
            unsafe { (self.lib.comm_get_async_error)(comm, &mut async_err) };
            let failed = async_err != NCCL_SUCCESS && async_err != NCCL_IN_PROGRESS;
            if failed || start.elapsed() > self.timeout {
                // SAFETY: aborting a live communicator ends its pending operations; it is
                // not used again (the box holds `None` after this).
                unsafe { (self.lib.comm_abort)(comm) };
                g.0 = None;
                if failed {
                    check(self.lib, what, async_err)?;
                }
                bail!(
                    "NCCL {what}: rank {} of {} waited {:.0} s (ONESHOT_DIST_TIMEOUT) for the \
                     other ranks; one of them died or hangs",
                    self.world.rank,
                    self.world.size,
                    self.timeout.as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Sums a device buffer over ranks in place (the gradient path without host copies).
    pub fn all_reduce_device<T: NcclType>(&self, buf: &mut CudaSlice<T>) -> Result<()> {
        let stream = self.stream.clone();
        let n = buf.len();
        let (ptr, _record) = buf.device_ptr_mut(&stream);
        // SAFETY: `ptr` holds `n` values of T that this call borrows mutably.
        unsafe { self.all_reduce_raw::<T>(ptr, n, &stream) }
    }

    /// Sums `len` values of T at device address `ptr` over ranks in place, on `stream`, and
    /// waits for the sum.
    ///
    /// # Safety
    /// `ptr` must address `len` values of T in this rank's GPU memory, on this communicator's
    /// device, that nothing else reads or writes until the call returns.
    pub unsafe fn all_reduce_raw<T: NcclType>(
        &self,
        ptr: cu::CUdeviceptr,
        len: usize,
        stream: &CudaStream,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let cu_stream = stream.cu_stream() as Stream;
        self.run("all-reduce", stream, |lib, comm| {
            let p = ptr as *mut c_void;
            // SAFETY: in place on the caller's buffer (see above).
            unsafe { (lib.all_reduce)(p, p, len, T::DATATYPE, NCCL_SUM, comm, cu_stream) }
        })
    }

    fn staged_sum<T: NcclType>(&self, buf: &mut [T]) -> Result<()> {
        let mut dev = self.stream.clone_htod(buf).map_err(cuda_err("upload"))?;
        self.all_reduce_device(&mut dev)?;
        let host = self.stream.clone_dtoh(&dev).map_err(cuda_err("download"))?;
        buf.copy_from_slice(&host);
        Ok(())
    }

    fn broadcast_device<T: NcclType>(&self, buf: &mut CudaSlice<T>, root: usize) -> Result<()> {
        let stream = self.stream.clone();
        let n = buf.len();
        let (ptr, _record) = buf.device_ptr_mut(&stream);
        let cu_stream = stream.cu_stream() as Stream;
        self.run("broadcast", &stream, |lib, comm| {
            let p = ptr as *mut c_void;
            // SAFETY: in place on `buf`, borrowed mutably for the call.
            unsafe { (lib.broadcast)(p, p, n, T::DATATYPE, root as c_int, comm, cu_stream) }
        })
    }
}

impl Drop for Nccl {
    fn drop(&mut self) {
        let g = self.comm.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(comm) = g.0.take() {
            // SAFETY: the communicator is live and no call is in flight (`&mut self`).
            unsafe { (self.lib.comm_destroy)(comm) };
        }
    }
}

impl Collective for Nccl {
    fn world(&self) -> World {
        self.world
    }

    fn backend(&self) -> &'static str {
        "NCCL"
    }

    fn nccl(&self) -> Option<&Nccl> {
        Some(self)
    }

    fn broadcast(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let mut dev = self
            .stream
            .clone_htod(&[buf.len() as u64][..])
            .map_err(cuda_err("upload"))?;
        self.broadcast_device(&mut dev, root)?;
        let len = self.stream.clone_dtoh(&dev).map_err(cuda_err("download"))?[0];
        buf.resize(len as usize, 0);
        if buf.is_empty() {
            return Ok(());
        }
        let mut dev = self
            .stream
            .clone_htod(&buf[..])
            .map_err(cuda_err("upload"))?;
        self.broadcast_device(&mut dev, root)?;
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
        let stream = self.stream.clone();
        let send = stream.clone_htod(&padded).map_err(cuda_err("upload"))?;
        let mut recv = stream
            .alloc_zeros::<u8>(width * n)
            .map_err(cuda_err("alloc"))?;
        {
            let (src, _r) = send.device_ptr(&stream);
            let (dst, _w) = recv.device_ptr_mut(&stream);
            let cu_stream = stream.cu_stream() as Stream;
            self.run("all-gather", &stream, |lib, comm| {
                // SAFETY: `send` holds `width` bytes and `recv` `width * n`, both live here.
                unsafe {
                    (lib.all_gather)(
                        src as *const c_void,
                        dst as *mut c_void,
                        width,
                        NCCL_UINT8,
                        comm,
                        cu_stream,
                    )
                }
            })?;
        }
        let all = stream.clone_dtoh(&recv).map_err(cuda_err("download"))?;
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
