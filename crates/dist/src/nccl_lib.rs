//! libnccl, opened at run time (dlopen) rather than linked: the entry points the NCCL backend
//! calls, NCCL's unique id and its hex form. Nothing here touches a GPU, so it builds and is
//! tested without CUDA; `nccl` (feature `cuda`) runs the collectives through it.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

/// NCCL's `ncclUniqueId`: 128 opaque bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawId {
    pub(crate) internal: [c_char; 128],
}

pub(crate) type RawComm = *mut c_void;
/// A `CUstream` as NCCL takes it.
pub(crate) type Stream = *mut c_void;

// nccl.h's `ncclDataType_t` and `ncclRedOp_t` values (stable across NCCL 2.x).
pub(crate) const NCCL_UINT8: c_int = 1;
pub(crate) const NCCL_UINT64: c_int = 5;
pub(crate) const NCCL_FLOAT32: c_int = 7;
pub(crate) const NCCL_FLOAT64: c_int = 8;
pub(crate) const NCCL_SUM: c_int = 0;
pub(crate) const NCCL_SUCCESS: c_int = 0;
pub(crate) const NCCL_IN_PROGRESS: c_int = 7;

/// The libnccl entry points the backend calls.
pub(crate) struct Lib {
    pub(crate) get_unique_id: unsafe extern "C" fn(*mut RawId) -> c_int,
    pub(crate) comm_init_rank: unsafe extern "C" fn(*mut RawComm, c_int, RawId, c_int) -> c_int,
    pub(crate) comm_destroy: unsafe extern "C" fn(RawComm) -> c_int,
    pub(crate) comm_abort: unsafe extern "C" fn(RawComm) -> c_int,
    pub(crate) comm_get_async_error: unsafe extern "C" fn(RawComm, *mut c_int) -> c_int,
    pub(crate) get_error_string: unsafe extern "C" fn(c_int) -> *const c_char,
    pub(crate) all_reduce: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        c_int,
        c_int,
        RawComm,
        Stream,
    ) -> c_int,
    pub(crate) broadcast: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        c_int,
        c_int,
        RawComm,
        Stream,
    ) -> c_int,
    pub(crate) all_gather:
        unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, RawComm, Stream) -> c_int,
    /// Keeps the library loaded while the function pointers above live.
    pub(crate) _lib: libloading::Library,
}

/// The file names tried when `ONESHOT_NCCL_LIB` is not set.
const LIB_NAMES: [&str; 2] = ["libnccl.so.2", "libnccl.so"];

pub(crate) fn lib() -> Result<&'static Lib> {
    static LIB: OnceLock<std::result::Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(|| load().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

pub(crate) fn load() -> Result<Lib> {
    let names: Vec<String> = match std::env::var("ONESHOT_NCCL_LIB") {
        Ok(path) => vec![path],
        Err(_) => LIB_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    load_from(&names)
}

pub(crate) fn load_from(names: &[String]) -> Result<Lib> {
    let mut errors = Vec::new();
    let mut found = None;
    for name in names {
        // SAFETY: loading libnccl runs its initialisers, which have no preconditions.
        match unsafe { libloading::Library::new(name) } {
            Ok(l) => {
                found = Some(l);
                break;
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    let Some(lib) = found else {
        bail!(
            "the NCCL backend needs libnccl, which could not be loaded ({}); install NCCL 2 \
             (e.g. the nvidia-nccl-cu13 wheel, whose nvidia/nccl/lib holds libnccl.so.2) and \
             put its folder on LD_LIBRARY_PATH, or set ONESHOT_NCCL_LIB to the file",
            errors.join("; ")
        );
    };
    // SAFETY: each symbol is read with nccl.h's signature of that function.
    unsafe {
        macro_rules! sym {
            ($name:literal) => {
                *lib.get(concat!($name, "\0").as_bytes())
                    .with_context(|| format!("libnccl has no {}", $name))?
            };
        }
        Ok(Lib {
            get_unique_id: sym!("ncclGetUniqueId"),
            comm_init_rank: sym!("ncclCommInitRank"),
            comm_destroy: sym!("ncclCommDestroy"),
            comm_abort: sym!("ncclCommAbort"),
            comm_get_async_error: sym!("ncclCommGetAsyncError"),
            get_error_string: sym!("ncclGetErrorString"),
            all_reduce: sym!("ncclAllReduce"),
            broadcast: sym!("ncclBroadcast"),
            all_gather: sym!("ncclAllGather"),
            _lib: lib,
        })
    }
}

pub(crate) fn check(lib: &Lib, what: &str, code: c_int) -> Result<()> {
    if code == NCCL_SUCCESS {
        return Ok(());
    }
    // SAFETY: ncclGetErrorString returns a static NUL-terminated string for any code.
    let text = unsafe { CStr::from_ptr((lib.get_error_string)(code)) };
    bail!("NCCL {what}: {} (code {code})", text.to_string_lossy())
}

/// NCCL's unique id of a communicator.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Id(pub [u8; 128]);

impl Id {
    /// A fresh id (rank 0 makes it; needs libnccl).
    pub fn new() -> Result<Self> {
        let lib = lib()?;
        let mut raw = RawId { internal: [0; 128] };
        // SAFETY: `raw` is an ncclUniqueId for NCCL to fill.
        check(lib, "making a unique id", unsafe {
            (lib.get_unique_id)(&mut raw)
        })?;
        Ok(Self(raw.internal.map(|c| c as u8)))
    }

    pub(crate) fn raw(&self) -> RawId {
        RawId {
            internal: self.0.map(|b| b as c_char),
        }
    }
}

/// An id as the hex text `ONESHOT_NCCL_ID` carries.
pub fn id_to_hex(id: &Id) -> String {
    id.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id of `ONESHOT_NCCL_ID`'s hex text.
pub fn id_from_hex(text: &str) -> Result<Id> {
    let text = text.trim();
    if text.len() != 256 || !text.is_ascii() {
        bail!(
            "ONESHOT_NCCL_ID has {} characters, not 256 hex digits",
            text.len()
        );
    }
    let mut id = [0u8; 128];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .with_context(|| format!("ONESHOT_NCCL_ID: bad hex at {}", 2 * i))?;
    }
    Ok(Id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex() {
        let mut bytes = [0u8; 128];
        bytes
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 37) as u8);
        let id = Id(bytes);
        let hex = id_to_hex(&id);
        assert_eq!(hex.len(), 256);
        assert!(id_from_hex(&hex).unwrap() == id);
        assert!(id_from_hex("00").is_err());
        assert!(id_from_hex(&"zz".repeat(128)).is_err());
    }

    #[test]
    fn a_missing_library_is_named() {
        let err = load_from(&["/nonexistent/libnccl.so.2".to_string()])
            .err()
            .expect("no such library")
            .to_string();
        assert!(err.contains("the NCCL backend needs libnccl"), "{err}");
        assert!(err.contains("/nonexistent/libnccl.so.2"), "{err}");
    }
}
