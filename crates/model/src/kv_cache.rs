//! Per-layer key/value cache for decoding: preallocated buffers `[b, kv_heads, capacity, d]`
//! written in place, grown by doubling, and compacted when sequences leave the batch.
use anyhow::Result;
use candle_core::{Tensor, D};

pub struct LayerCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    /// Capacity to allocate on first append (at least the first chunk's length).
    initial_capacity: usize,
}

impl LayerCache {
    pub fn new(initial_capacity: usize) -> Self {
        Self {
            k: None,
            v: None,
            len: 0,
            initial_capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append new keys/values `[b, kv_heads, t, d]` (contiguous) and return views of all
    /// cached keys and values `[b, kv_heads, len, d]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let needed = self.len + t;
        let cap = self.k.as_ref().map(|b| b.dim(2)).transpose()?.unwrap_or(0);
        if needed > cap {
            let new_cap = needed.max(2 * cap).max(self.initial_capacity);
            self.k = Some(grow(self.k.as_ref(), k, self.len, new_cap)?);
            self.v = Some(grow(self.v.as_ref(), v, self.len, new_cap)?);
        }
        let (kb, vb) = (self.k.as_ref().unwrap(), self.v.as_ref().unwrap());
        kb.slice_set(&k.contiguous()?, 2, self.len)?;
        vb.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((kb.narrow(2, 0, self.len)?, vb.narrow(2, 0, self.len)?))
    }

    /// Insert `n` masked (zero) positions before the cached ones, so rows joining with a
    /// longer prompt line up at the end of the time axis.
    pub fn pad_front(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        for buf in [&mut self.k, &mut self.v] {
            if let Some(t) = buf.take() {
                let (b, h, _, d) = t.dims4()?;
                let zeros = Tensor::zeros((b, h, n, d), t.dtype(), t.device())?;
                *buf = Some(Tensor::cat(&[&zeros, &t.narrow(2, 0, self.len)?], 2)?);
            }
        }
        self.len += n;
        Ok(())
    }

    /// Drop the first `n` positions (no running row attends to them any more).
    pub fn drop_front(&mut self, n: usize) -> Result<()> {
        let n = n.min(self.len);
        if n == 0 {
            return Ok(());
        }
        for buf in [&mut self.k, &mut self.v] {
            if let Some(t) = buf.take() {
                *buf = Some(t.narrow(2, n, self.len - n)?.contiguous()?);
            }
        }
        self.len -= n;
        Ok(())
    }

    /// Append the rows of `other` (same length) after this cache's rows.
    pub fn append_rows(&mut self, other: &LayerCache) -> Result<()> {
        anyhow::ensure!(
            self.len == other.len,
            "append_rows: cache lengths {} and {} differ",
            self.len,
            other.len
        );
        for (buf, o) in [(&mut self.k, &other.k), (&mut self.v, &other.v)] {
            *buf = match (buf.take(), o) {
                (Some(a), Some(b)) => Some(Tensor::cat(
                    &[&a.narrow(2, 0, self.len)?, &b.narrow(2, 0, self.len)?],
                    0,
                )?),
                (a, None) => a,
                (None, Some(b)) => Some(b.narrow(2, 0, self.len)?.contiguous()?),
            };
        }
        Ok(())
    }

    /// Keep only the batch rows in `keep` (a u32 index tensor), in that order.
    pub fn retain_rows(&mut self, keep: &Tensor) -> Result<()> {
        if let (Some(k), Some(v)) = (&self.k, &self.v) {
            self.k = Some(k.index_select(keep, 0)?);
            self.v = Some(v.index_select(keep, 0)?);
        }
        Ok(())
    }
}

/// A zeroed buffer of `new_cap` positions holding the first `len` positions of `old`.
fn grow(old: Option<&Tensor>, like: &Tensor, len: usize, new_cap: usize) -> Result<Tensor> {
    let (b, h, _, d) = like.dims4()?;
    let buf = Tensor::zeros((b, h, new_cap, d), like.dtype(), like.device())?;
    if let Some(old) = old {
        if len > 0 {
            buf.slice_set(&old.narrow(D::Minus2, 0, len)?.contiguous()?, 2, 0)?;
        }
    }
    Ok(buf)
}

/// One cache per layer.
pub struct KvCache {
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    pub fn new(n_layers: usize, initial_capacity: usize) -> Self {
        Self {
            layers: (0..n_layers)
                .map(|_| LayerCache::new(initial_capacity))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn retain_rows(&mut self, keep: &Tensor) -> Result<()> {
        for l in &mut self.layers {
            l.retain_rows(keep)?;
        }
        Ok(())
    }

    /// See [`LayerCache::pad_front`].
    pub fn pad_front(&mut self, n: usize) -> Result<()> {
        self.layers.iter_mut().try_for_each(|l| l.pad_front(n))
    }

    /// See [`LayerCache::drop_front`].
    pub fn drop_front(&mut self, n: usize) -> Result<()> {
        self.layers.iter_mut().try_for_each(|l| l.drop_front(n))
    }

    /// See [`LayerCache::append_rows`].
    pub fn append_rows(&mut self, other: &KvCache) -> Result<()> {
        self.layers
            .iter_mut()
            .zip(&other.layers)
            .try_for_each(|(a, b)| a.append_rows(b))
    }
}
