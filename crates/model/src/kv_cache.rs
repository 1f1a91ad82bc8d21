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
        Self { k: None, v: None, len: 0, initial_capacity }
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
        Self { layers: (0..n_layers).map(|_| LayerCache::new(initial_capacity)).collect() }
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
}
