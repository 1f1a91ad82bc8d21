//! Per-layer key/value cache for decoding. Two layouts:
//! - dense: a preallocated buffer `[b, kv_heads, capacity, d]` written in place and grown by
//!   doubling (a prefill, whose rows are then handed to a paged cache);
//! - paged ([`crate::paged_kv`]): each prompt's keys and values stored once and shared by every
//!   sequence continuing it, each sequence's own tokens in fixed-size blocks.
use crate::paged_kv::PagedLayer;
use anyhow::{bail, ensure, Result};
use candle_core::{DType, Tensor, D};

pub use crate::paged_kv::BLOCK_TOKENS;

pub enum LayerCache {
    Dense(DenseLayer),
    Paged(PagedLayer),
}

impl LayerCache {
    pub fn new(initial_capacity: usize) -> Self {
        Self::Dense(DenseLayer::new(initial_capacity))
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Dense(c) => c.len,
            Self::Paged(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether attention runs inside the cache ([`LayerCache::attend`]) rather than over the
    /// keys and values [`LayerCache::append`] returns.
    pub fn is_paged(&self) -> bool {
        matches!(self, Self::Paged(_))
    }

    /// Dense cache: append new keys/values `[b, kv_heads, t, d]` and return views of all cached
    /// keys and values `[b, kv_heads, len, d]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Dense(c) => c.append(k, v),
            Self::Paged(_) => bail!("a paged KV cache attends itself (LayerCache::attend)"),
        }
    }

    /// Paged cache, one decoding step: store each row's new key/value `[b, kv_heads, 1, d]`
    /// and return the attention output `[b, heads, 1, d]` of queries `q` over the row's
    /// prompt and its own tokens.
    pub fn attend(&mut self, q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
        match self {
            Self::Paged(c) => c.attend(q, k, v, scale),
            Self::Dense(_) => {
                bail!("a dense KV cache returns keys and values (LayerCache::append)")
            }
        }
    }
}

/// `[b, kv_heads, capacity, d]` buffers of which the first `len` positions are written.
pub struct DenseLayer {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    /// Capacity to allocate on first append (at least the first chunk's length).
    initial_capacity: usize,
}

impl DenseLayer {
    fn new(initial_capacity: usize) -> Self {
        Self {
            k: None,
            v: None,
            len: 0,
            initial_capacity,
        }
    }

    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
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

    /// Keys and values of batch row `row`, positions `start..len`, as `[t, kv_heads, d]`
    /// views on the cache's device.
    fn row_span_tensors(&self, row: usize, start: usize) -> Result<(Tensor, Tensor)> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else {
            bail!("row_span of an empty cache");
        };
        ensure!(
            start <= self.len,
            "row_span: start {start} past {}",
            self.len
        );
        let span = |t: &Tensor| -> Result<Tensor> {
            Ok(t.get(row)?
                .narrow(1, start, self.len - start)?
                .transpose(0, 1)?)
        };
        Ok((span(k)?, span(v)?))
    }

    /// Keys and values of batch row `row`, positions `start..len`, as f32 `[t, kv_heads, d]`.
    fn row_span(&self, row: usize, start: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (k, v) = self.row_span_tensors(row, start)?;
        let host = |t: Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        Ok((host(k)?, host(v)?))
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
    /// Dense caches, e.g. for a prefill.
    pub fn new(n_layers: usize, initial_capacity: usize) -> Self {
        Self {
            layers: (0..n_layers)
                .map(|_| LayerCache::new(initial_capacity))
                .collect(),
        }
    }

    /// Empty paged caches whose keys and values stay on `device`
    /// ([`PagedLayer::on_device`]).
    pub fn paged_on_device(
        n_layers: usize,
        kv_heads: usize,
        head_dim: usize,
        device: &candle_core::Device,
    ) -> Self {
        Self {
            layers: (0..n_layers)
                .map(|_| LayerCache::Paged(PagedLayer::on_device(kv_heads, head_dim, device)))
                .collect(),
        }
    }

    /// Empty paged caches (no prompts, no rows).
    pub fn paged(n_layers: usize, kv_heads: usize, head_dim: usize) -> Self {
        Self {
            layers: (0..n_layers)
                .map(|_| LayerCache::Paged(PagedLayer::new(kv_heads, head_dim)))
                .collect(),
        }
    }

    /// Positions held by a dense cache (0 for a paged one).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn paged_layers(&mut self) -> Result<impl Iterator<Item = &mut PagedLayer>> {
        ensure!(
            self.layers.iter().all(LayerCache::is_paged),
            "this operation needs a paged KV cache"
        );
        Ok(self.layers.iter_mut().map(|l| match l {
            LayerCache::Paged(p) => p,
            LayerCache::Dense(_) => unreachable!("checked above"),
        }))
    }

    /// Paged cache: store row `row` of the dense cache `dense`, from position `start` on (the
    /// left padding before it dropped), as shared prompt `id`.
    pub fn add_prompt(
        &mut self,
        id: usize,
        dense: &KvCache,
        row: usize,
        start: usize,
    ) -> Result<()> {
        ensure!(
            dense.layers.len() == self.layers.len(),
            "add_prompt: {} dense layers for {} paged ones",
            dense.layers.len(),
            self.layers.len()
        );
        for (p, d) in self.paged_layers()?.zip(&dense.layers) {
            let LayerCache::Dense(d) = d else {
                bail!("add_prompt: the source cache must be dense");
            };
            if p.is_on_device() {
                let (k, v) = d.row_span_tensors(row, start)?;
                p.add_prompt_tensors(id, &k, &v)?;
            } else {
                let (k, v) = d.row_span(row, start)?;
                p.add_prompt(id, k, v)?;
            }
        }
        Ok(())
    }

    /// Paged cache: forget shared prompt `id` (no row may still use it).
    pub fn remove_prompt(&mut self, id: usize) -> Result<()> {
        self.paged_layers()?.try_for_each(|p| p.remove_prompt(id))
    }

    /// Paged cache: a new last row continuing shared prompt `id`.
    pub fn push_row(&mut self, id: usize) -> Result<()> {
        self.paged_layers()?.try_for_each(|p| p.push_row(id))
    }

    /// Paged cache: keep only rows `keep` (ascending), in that order; the others' blocks are
    /// freed.
    pub fn retain_rows(&mut self, keep: &[usize]) -> Result<()> {
        ensure!(
            keep.windows(2).all(|w| w[0] < w[1]),
            "retain_rows: indices must be ascending"
        );
        self.paged_layers()?.try_for_each(|p| p.retain_rows(keep))
    }

    /// Bytes held: for a paged cache, each shared prompt once plus every row's blocks.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                LayerCache::Paged(p) => p.bytes(),
                LayerCache::Dense(d) => [&d.k, &d.v]
                    .iter()
                    .filter_map(|t| t.as_ref())
                    .map(|t| t.elem_count() * t.dtype().size_in_bytes())
                    .sum(),
            })
            .sum()
    }
}
