//! Output buffers for the kernels.
//!
//! A fresh multi-hundred-MB buffer costs more in first-touch page faults than the kernel that
//! fills it (measured: ~90 ms to touch 311 MB with 4 KiB pages vs ~13 ms for a second pass).
//! Large buffers are therefore advised to use transparent huge pages before they are touched,
//! and zero-filled in parallel so the remaining faults are spread over the rayon threads.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this size the advice is not worth a system call.
const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;
/// Elements each rayon task fills.
const FILL_CHUNK: usize = 256 * 1024;

/// A `Vec` of `len` copies of `zero`, allocated as described in the module docs.
pub(crate) fn filled<T: Copy + Send + Sync>(len: usize, zero: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(v.spare_capacity_mut());
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(FILL_CHUNK)
        .for_each(|c| {
            c.iter_mut().for_each(|x| {
                x.write(zero);
            })
        });
    // SAFETY: the first `len` elements were all initialised just above.
    unsafe { v.set_len(len) };
    v
}

/// Bytes of a cache line: the alignment of [`Aligned`] buffers.
pub(crate) const CACHE_LINE: usize = 64;

/// A zero-filled buffer whose first element starts a cache line.
///
/// The packed panels of the tile kernels are read in rows of 64 bytes (an AMX tile row, a
/// 16-lane vector). glibc hands out 16-byte-aligned blocks (large ones from mmap sit 16 bytes
/// past a page start), so an unaligned panel makes every such row straddle two cache lines; the
/// bf16 forward measured several percent slower whenever the allocator's luck went that way.
pub(crate) struct Aligned<T> {
    storage: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy + Send + Sync> Aligned<T> {
    /// `len` copies of `zero`, starting on a cache line (allocated as [`filled`]).
    pub(crate) fn filled(len: usize, zero: T) -> Self {
        let size = std::mem::size_of::<T>().max(1);
        let slack = CACHE_LINE.div_ceil(size);
        let storage = filled(len + slack, zero);
        let start = storage.as_ptr().align_offset(CACHE_LINE).min(slack);
        Self {
            storage,
            start,
            len,
        }
    }
}

impl<T> std::ops::Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl<T> std::ops::DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(mem: &mut [MaybeUninit<T>]) {
    let bytes = std::mem::size_of_val(mem);
    if bytes < HUGE_PAGE_MIN_BYTES {
        return;
    }
    // Only whole 2 MiB pages inside the allocation are advised.
    let start = mem.as_mut_ptr() as usize;
    let aligned = start.div_ceil(HUGE_PAGE) * HUGE_PAGE;
    let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end > aligned {
        // SAFETY: the range lies inside memory this Vec owns and nothing has touched yet;
        // MADV_HUGEPAGE only changes how the kernel backs it. Failure (e.g. THP disabled) is
        // harmless, so the result is ignored.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_mem: &mut [MaybeUninit<T>]) {}

#[cfg(test)]
mod tests {
    #[test]
    fn filled_buffers_hold_the_value() {
        for len in [0, 1, 1000, 3 << 20] {
            let v = super::filled(len, 1.5f32);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 1.5));
        }
    }

    #[test]
    fn aligned_buffers_start_a_cache_line_and_hold_the_value() {
        for len in [0, 1, 17, 16 * 1024, 3 << 20] {
            let v = super::Aligned::filled(len, 7u32);
            assert_eq!(v.len(), len);
            assert_eq!(v.as_ptr() as usize % super::CACHE_LINE, 0, "len {len}");
            assert!(v.iter().all(|&x| x == 7));
        }
    }
}
