//! One layer of a paged KV cache with shared prompts: each distinct prompt's keys and values
//! are stored once and every sequence continuing it reads them; a sequence's own keys and
//! values live in blocks of [`BLOCK_TOKENS`] positions allocated as it grows, so a cache of n
//! sequences of one prompt holds the prompt once, the generated tokens, and less than one
//! unfilled block per sequence.
//!
//! Decoding steps attend inside the cache ([`PagedLayer::attend`]): rows x kv heads in
//! parallel, each a fixed-order f32 loop with [`crate::detmath::exp`], so the result does not
//! depend on the thread count or the CPU.
//!
//! A layer made with [`PagedLayer::on_device`] (the generic step path) keeps the prompts and
//! blocks as f32 tensors on that device instead, and attends with tensor ops, row by row, so
//! keys and values never cross to the host.
use crate::detmath;
use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// Positions per block of a sequence's own keys/values.
pub const BLOCK_TOKENS: usize = 16;

/// A prompt's keys and values, `[t, kv_heads, d]` each.
struct Prompt {
    k: Vec<f32>,
    v: Vec<f32>,
    /// On a device layer: `k` and `v` as f32 tensors (the host vectors stay empty).
    on_device: Option<(Tensor, Tensor)>,
    len: usize,
}

/// A running sequence: the prompt it continues and its own positions.
struct Row {
    prompt: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// On a device layer: the blocks as f32 tensors `[BLOCK_TOKENS, kv_heads, d]`.
    device_blocks: Vec<(Tensor, Tensor)>,
    len: usize,
}

pub struct PagedLayer {
    kv_heads: usize,
    head_dim: usize,
    /// Where keys and values live when not on the host.
    device: Option<Device>,
    /// Indexed by prompt id.
    prompts: Vec<Option<Prompt>>,
    rows: Vec<Row>,
}

impl PagedLayer {
    pub fn new(kv_heads: usize, head_dim: usize) -> Self {
        Self {
            kv_heads,
            head_dim,
            device: None,
            prompts: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// A layer whose keys and values stay on `device` (tensor ops only).
    pub fn on_device(kv_heads: usize, head_dim: usize, device: &Device) -> Self {
        Self {
            device: Some(device.clone()),
            ..Self::new(kv_heads, head_dim)
        }
    }

    /// Whether keys and values live on a device ([`PagedLayer::on_device`]).
    pub fn is_on_device(&self) -> bool {
        self.device.is_some()
    }

    /// [`PagedLayer::add_prompt`] from tensors `[t, kv_heads, d]` (any float dtype), kept on
    /// their device as f32 copies.
    pub fn add_prompt_tensors(&mut self, id: usize, k: &Tensor, v: &Tensor) -> Result<()> {
        let (t, kv, d) = k.dims3()?;
        ensure!(
            (kv, d) == (self.kv_heads, self.head_dim) && v.dims() == k.dims(),
            "add_prompt: keys {:?} / values {:?}, want [t, {}, {}]",
            k.dims(),
            v.dims(),
            self.kv_heads,
            self.head_dim
        );
        // A fresh copy, so the prompt does not keep the buffer it was cut from alive.
        let own = |x: &Tensor| -> Result<Tensor> { Ok(x.to_dtype(DType::F32)?.copy()?) };
        self.insert_prompt(
            id,
            Prompt {
                k: Vec::new(),
                v: Vec::new(),
                on_device: Some((own(k)?, own(v)?)),
                len: t,
            },
        )
    }

    fn insert_prompt(&mut self, id: usize, prompt: Prompt) -> Result<()> {
        if self.prompts.len() <= id {
            self.prompts.resize_with(id + 1, || None);
        }
        ensure!(self.prompts[id].is_none(), "prompt {id} is already cached");
        self.prompts[id] = Some(prompt);
        Ok(())
    }

    /// Floats per position (all kv heads).
    fn width(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    pub fn add_prompt(&mut self, id: usize, k: Vec<f32>, v: Vec<f32>) -> Result<()> {
        let w = self.width();
        ensure!(
            k.len() == v.len() && k.len().is_multiple_of(w),
            "add_prompt: {} keys and {} values are not whole positions of {w}",
            k.len(),
            v.len()
        );
        if let Some(dev) = &self.device {
            let len = k.len() / w;
            let shape = (len, self.kv_heads, self.head_dim);
            let (k, v) = (
                Tensor::from_vec(k, shape, dev)?,
                Tensor::from_vec(v, shape, dev)?,
            );
            return self.add_prompt_tensors(id, &k, &v);
        }
        let len = k.len() / w;
        self.insert_prompt(
            id,
            Prompt {
                k,
                v,
                on_device: None,
                len,
            },
        )
    }

    pub fn remove_prompt(&mut self, id: usize) -> Result<()> {
        ensure!(
            self.rows.iter().all(|r| r.prompt != id),
            "prompt {id} is still read by a running row"
        );
        match self.prompts.get_mut(id).and_then(Option::take) {
            Some(_) => Ok(()),
            None => bail!("prompt {id} is not cached"),
        }
    }

    pub fn push_row(&mut self, prompt: usize) -> Result<()> {
        ensure!(
            self.prompts.get(prompt).is_some_and(Option::is_some),
            "row for prompt {prompt}, which is not cached"
        );
        self.rows.push(Row {
            prompt,
            k: Vec::new(),
            v: Vec::new(),
            device_blocks: Vec::new(),
            len: 0,
        });
        Ok(())
    }

    pub fn retain_rows(&mut self, keep: &[usize]) -> Result<()> {
        if let Some(&bad) = keep.iter().find(|&&i| i >= self.rows.len()) {
            bail!("retain_rows: row {bad} of {}", self.rows.len());
        }
        let mut next = keep.iter().peekable();
        let mut i = 0;
        self.rows.retain(|_| {
            let kept = next.peek() == Some(&&i);
            if kept {
                next.next();
            }
            i += 1;
            kept
        });
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        let on_device = |pair: &(Tensor, Tensor)| pair.0.elem_count() + pair.1.elem_count();
        let prompts: usize = self
            .prompts
            .iter()
            .flatten()
            .map(|p| p.k.capacity() + p.v.capacity() + p.on_device.as_ref().map_or(0, on_device))
            .sum();
        let rows: usize = self
            .rows
            .iter()
            .map(|r| {
                r.k.iter().chain(&r.v).map(Vec::capacity).sum::<usize>()
                    + r.device_blocks.iter().map(on_device).sum::<usize>()
            })
            .sum();
        (prompts + rows) * std::mem::size_of::<f32>()
    }

    /// One decoding step: q `[b, heads, 1, d]`, k/v `[b, kv_heads, 1, d]` for the `b` rows in
    /// order; returns `[b, heads, 1, d]` in q's dtype.
    pub fn attend(&mut self, q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
        let (b, heads, t, d) = q.dims4()?;
        let (kv, w) = (self.kv_heads, self.width());
        ensure!(
            t == 1 && b == self.rows.len() && d == self.head_dim && heads % kv == 0,
            "paged attention: q {:?} for {} rows of {kv} kv heads x {} (one new token per row)",
            q.dims(),
            self.rows.len(),
            self.head_dim
        );
        ensure!(
            k.dims() == [b, kv, 1, d] && v.dims() == k.dims(),
            "paged attention: k {:?} / v {:?}, want [{b}, {kv}, 1, {d}]",
            k.dims(),
            v.dims()
        );
        if let Some(dev) = self.device.clone() {
            return self.attend_on_device(&dev, q, k, v, scale);
        }
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let (qf, kf, vf) = (flat(q)?, flat(k)?, flat(v)?);
        for (r, row) in self.rows.iter_mut().enumerate() {
            let at = row.len % BLOCK_TOKENS;
            if at == 0 {
                row.k.push(vec![0.0; BLOCK_TOKENS * w]);
                row.v.push(vec![0.0; BLOCK_TOKENS * w]);
            }
            let (kb, vb) = (row.k.last_mut().unwrap(), row.v.last_mut().unwrap());
            kb[at * w..(at + 1) * w].copy_from_slice(&kf[r * w..(r + 1) * w]);
            vb[at * w..(at + 1) * w].copy_from_slice(&vf[r * w..(r + 1) * w]);
            row.len += 1;
        }
        let rep = heads / kv;
        let mut out = vec![0.0f32; b * heads * d];
        let (rows, prompts) = (&self.rows, &self.prompts);
        out.par_chunks_mut(rep * d)
            .enumerate()
            .for_each(|(item, out)| {
                let (r, g) = (item / kv, item % kv);
                let row = &rows[r];
                let prompt = prompts[row.prompt]
                    .as_ref()
                    .expect("pushed rows have prompts");
                let q = &qf[(r * heads + g * rep) * d..(r * heads + (g + 1) * rep) * d];
                attend_one(prompt, row, g, w, d, q, scale as f32, out);
            });
        Ok(Tensor::from_vec(out, (b, heads, 1, d), q.device())?.to_dtype(q.dtype())?)
    }

    /// [`PagedLayer::attend`] on a device layer: each row's new key and value are written
    /// into its last block on the device, then each row attends over its prompt and blocks
    /// with tensor ops (grouped query heads against their kv head, softmax in f32).
    fn attend_on_device(
        &mut self,
        dev: &Device,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        let (b, heads, _, d) = q.dims4()?;
        let kv = self.kv_heads;
        let f32_on = |t: &Tensor| -> Result<Tensor> { Ok(t.to_device(dev)?.to_dtype(DType::F32)?) };
        let (qf, kf, vf) = (f32_on(q)?, f32_on(k)?, f32_on(v)?);
        for (r, row) in self.rows.iter_mut().enumerate() {
            let at = row.len % BLOCK_TOKENS;
            if at == 0 {
                let zeros = || Tensor::zeros((BLOCK_TOKENS, kv, d), DType::F32, dev);
                row.device_blocks.push((zeros()?, zeros()?));
            }
            let (kb, vb) = row.device_blocks.last().expect("pushed above");
            // [kv, 1, d] -> [1, kv, d]: one position.
            let pos =
                |x: &Tensor| -> Result<Tensor> { Ok(x.get(r)?.transpose(0, 1)?.contiguous()?) };
            kb.slice_set(&pos(&kf)?, 0, at)?;
            vb.slice_set(&pos(&vf)?, 0, at)?;
            row.len += 1;
        }
        let rep = heads / kv;
        let mut outs = Vec::with_capacity(b);
        for (r, row) in self.rows.iter().enumerate() {
            let Some(Some(Prompt {
                on_device: Some((pk, pv)),
                ..
            })) = self.prompts.get(row.prompt)
            else {
                bail!(
                    "paged attention: row {r}'s prompt {} is not on the device",
                    row.prompt
                );
            };
            // Positions `[t_k, kv, d]` -> `[kv, t_k, d]`: the prompt's, then the row's.
            let gather =
                |prompt: &Tensor, pick: fn(&(Tensor, Tensor)) -> &Tensor| -> Result<Tensor> {
                    let mut parts = vec![prompt.clone()];
                    let full = row.len / BLOCK_TOKENS;
                    for (i, blk) in row.device_blocks.iter().enumerate() {
                        let used = if i < full {
                            BLOCK_TOKENS
                        } else {
                            row.len % BLOCK_TOKENS
                        };
                        if used > 0 {
                            parts.push(pick(blk).narrow(0, 0, used)?);
                        }
                    }
                    Ok(Tensor::cat(&parts, 0)?.transpose(0, 1)?.contiguous()?)
                };
            let keys = gather(pk, |p| &p.0)?;
            let vals = gather(pv, |p| &p.1)?;
            let qr = qf.get(r)?.reshape((kv, rep, d))?;
            let scores = (qr.matmul(&keys.t()?)? * scale)?;
            let probs = oneshot_kernels::reference::softmax_last_dim(&scores)?;
            outs.push(probs.matmul(&vals)?.reshape((heads, 1, d))?);
        }
        Ok(Tensor::stack(&outs, 0)?.to_dtype(q.dtype())?)
    }
}

oneshot_kernels::multiversion! {
    /// Attention of the `rep` query heads `q` (`[rep, d]`) sharing kv head `g` over the prompt's
    /// positions, then the row's: softmax of `scale * q.k` and the weighted sum of values.
    #[allow(clippy::too_many_arguments)]
    fn attend_one(
        prompt: &Prompt,
        row: &Row,
        g: usize,
        w: usize,
        d: usize,
        q: &[f32],
        scale: f32,
        out: &mut [f32],
    ) {
        // Each position's key and value for head g, prompt first, then the row's blocks.
        let own = (0..row.len).map(|p| {
            let (blk, at) = (p / BLOCK_TOKENS, (p % BLOCK_TOKENS) * w + g * d);
            (&row.k[blk][at..at + d], &row.v[blk][at..at + d])
        });
        let positions = (0..prompt.len)
            .map(|p| {
                let at = p * w + g * d;
                (&prompt.k[at..at + d], &prompt.v[at..at + d])
            })
            .chain(own);
        let t_k = prompt.len + row.len;
        let rep = q.len() / d;
        let mut scores = vec![0.0f32; rep * t_k];
        for (j, (key, _)) in positions.clone().enumerate() {
            for h in 0..rep {
                scores[h * t_k + j] = dot(&q[h * d..(h + 1) * d], key) * scale;
            }
        }
        for h in 0..rep {
            let s = &mut scores[h * t_k..(h + 1) * t_k];
            let max = s.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            // The exponentials in their own loop (vectorised), then the sum in the same order.
            for x in s.iter_mut() {
                *x = detmath::exp(*x - max);
            }
            let sum = s.iter().fold(0.0f32, |acc, &x| acc + x);
            let inv = 1.0 / sum;
            s.iter_mut().for_each(|x| *x *= inv);
        }
        for (j, (_, val)) in positions.enumerate() {
            for h in 0..rep {
                let p = scores[h * t_k + j];
                for (o, &x) in out[h * d..(h + 1) * d].iter_mut().zip(val) {
                    *o += p * x;
                }
            }
        }
    }
}

/// Dot product with 8 independent accumulators (vectorisable, fixed order).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Softmax attention of one query over explicit keys/values, in f64.
    fn naive(q: &[f32], keys: &[Vec<f32>], vals: &[Vec<f32>], scale: f64) -> Vec<f64> {
        let s: Vec<f64> = keys
            .iter()
            .map(|k| {
                q.iter()
                    .zip(k)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        (0..q.len())
            .map(|c| {
                e.iter()
                    .zip(vals)
                    .map(|(p, v)| p * v[c] as f64)
                    .sum::<f64>()
                    / z
            })
            .collect()
    }

    #[test]
    fn attends_over_the_shared_prompt_then_each_rows_own_tokens() {
        attends_over_shared_prompts(PagedLayer::new(2, 4));
    }

    /// The device layer (the generic path's) on the CPU: the same attention and accounting.
    #[test]
    fn a_device_layer_attends_the_same() {
        let layer = PagedLayer::on_device(2, 4, &Device::Cpu);
        assert!(layer.is_on_device());
        attends_over_shared_prompts(layer);
    }

    fn attends_over_shared_prompts(mut layer: PagedLayer) {
        let (kv, d, heads) = (2, 4, 4);
        let w = kv * d;
        let val = |i: usize| ((i * 37 % 101) as f32 * 0.05).sin();
        // Prompt 0 of 3 positions, prompt 1 of 1; rows 0, 2 read prompt 0, row 1 prompt 1.
        let pk: Vec<f32> = (0..3 * w).map(val).collect();
        let pv: Vec<f32> = (0..3 * w).map(|i| val(i + 500)).collect();
        layer.add_prompt(0, pk.clone(), pv.clone()).unwrap();
        layer
            .add_prompt(1, pk[..w].to_vec(), pv[..w].to_vec())
            .unwrap();
        for p in [0, 1, 0] {
            layer.push_row(p).unwrap();
        }
        let dev = Device::Cpu;
        // Each row's own keys and values so far, one Vec per position.
        type Own = (Vec<Vec<f32>>, Vec<Vec<f32>>);
        let mut own: Vec<Own> = vec![Default::default(); 3];
        // Enough steps to cross a block boundary.
        for step in 0..BLOCK_TOKENS + 3 {
            let qf: Vec<f32> = (0..3 * heads * d).map(|i| val(i + 1000 * step)).collect();
            let kf: Vec<f32> = (0..3 * w).map(|i| val(i + 1000 * step + 7)).collect();
            let vf: Vec<f32> = (0..3 * w).map(|i| val(i + 1000 * step + 13)).collect();
            let t =
                |x: &Vec<f32>, h: usize| Tensor::from_vec(x.clone(), (3, h, 1, d), &dev).unwrap();
            let out = layer
                .attend(&t(&qf, heads), &t(&kf, kv), &t(&vf, kv), 0.5)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for r in 0..3 {
                own[r].0.push(kf[r * w..(r + 1) * w].to_vec());
                own[r].1.push(vf[r * w..(r + 1) * w].to_vec());
                let plen = if r == 1 { 1 } else { 3 };
                for h in 0..heads {
                    let g = h / (heads / kv);
                    let head = |x: &[f32]| x[g * d..(g + 1) * d].to_vec();
                    let keys: Vec<Vec<f32>> = (0..plen)
                        .map(|p| head(&pk[p * w..]))
                        .chain(own[r].0.iter().map(|k| head(k)))
                        .collect();
                    let vals: Vec<Vec<f32>> = (0..plen)
                        .map(|p| head(&pv[p * w..]))
                        .chain(own[r].1.iter().map(|v| head(v)))
                        .collect();
                    let qh = &qf[(r * heads + h) * d..(r * heads + h + 1) * d];
                    let want = naive(qh, &keys, &vals, 0.5);
                    let got = &out[(r * heads + h) * d..(r * heads + h + 1) * d];
                    for (a, b) in got.iter().zip(&want) {
                        assert!((*a as f64 - b).abs() < 1e-5, "step {step} row {r} head {h}");
                    }
                }
            }
        }
        // Rows leave: the prompt row 1 used can go, its blocks are freed.
        let before = layer.bytes();
        assert!(
            layer.remove_prompt(1).is_err(),
            "row 1 still reads prompt 1"
        );
        layer.retain_rows(&[0, 2]).unwrap();
        layer.remove_prompt(1).unwrap();
        let block = BLOCK_TOKENS * w * 4 * 2;
        assert_eq!(before - layer.bytes(), 2 * block + 2 * w * 4);
    }
}
