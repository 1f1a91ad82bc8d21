//! Memory-bounded backward pass for a loss on response log-probs.
//!
//! The forward graph is cut into stages at detached tensors: (embedding + layers), final norm,
//! output head. The loss is first evaluated on detached log-probs to get d loss / d logp and
//! d loss / d entropy; each stage is then rebuilt (or kept, for the layers when
//! not recomputing) and back-propagated with the surrogate `(stage_out * grad_out).sum()`,
//! whose gradient w.r.t. the stage's inputs and parameters is exactly the chain rule's.
use crate::batch::Batch;
use crate::layers::{decoder_layer, embed, MatmulPrecision};
use crate::logprobs::{head_copy, head_logprobs, LogprobOptions, ResponseRows};
use crate::model::Model;
use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

/// Add the gradients `from` holds for `vars` into `into`.
fn accumulate(into: &mut GradStore, from: &GradStore, vars: &[Var]) -> Result<()> {
    for v in vars {
        if let Some(g) = from.get(v.as_tensor()) {
            let sum = match into.get(v.as_tensor()) {
                Some(prev) => (prev + g)?,
                None => g.clone(),
            };
            into.insert(v.as_tensor(), sum);
        }
    }
    Ok(())
}

/// `(out * grad).sum()`: back-propagating it gives `grad` as the gradient of `out`
/// (`grad` is treated as a constant).
fn surrogate(out: &Tensor, grad: &Tensor) -> Result<Tensor> {
    Ok((out.to_dtype(DType::F32)? * grad.detach().to_dtype(DType::F32)?)?.sum_all()?)
}

/// Gradient of a leaf, or zeros when the loss does not depend on it. Detached: candle's
/// gradient tensors are built from graph-tracked ops (e.g. d h = d logits . W keeps a link to
/// W), and used as a constant in the next stage's surrogate they would otherwise
/// back-propagate into the parameters a second time.
fn grad_or_zeros(g: &GradStore, leaf: &Var) -> Result<Tensor> {
    Ok(match g.get(leaf.as_tensor()) {
        Some(t) => t.detach(),
        None => leaf.as_tensor().zeros_like()?,
    })
}

pub(crate) fn logprobs_with_grad(
    model: &Model,
    batch: &Batch,
    response_start: usize,
    temperature: f64,
    opts: &LogprobOptions,
    loss_fn: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<(f32, GradStore)> {
    let device = model.device().clone();
    let vars: Vec<Var> = model.vars().into_iter().map(|(_, v)| v).collect();
    let rows = ResponseRows::new(batch, response_start, &device)?;
    let (w, w_det) = model.update_weights();
    let ctx = model.batch_ctx(batch)?;
    let ids = batch.ids_tensor(&device)?;
    let (b, t) = (batch.batch, batch.seq_len);
    let hid = model.config.hidden_size;
    let dims = model.dims();

    // Stage 1 forward: embeddings and layers. Checkpointing keeps only detached layer inputs.
    let embedded = embed(&w.embed, &ids)?;
    let mut layer_inputs: Vec<Tensor> = Vec::new();
    let body_out = if opts.recompute_layers {
        let mut x = embedded.detach();
        for lw in &w_det.layers {
            layer_inputs.push(x.clone());
            x = decoder_layer(lw, &x, &ctx.inputs(), dims, None)?;
        }
        x
    } else {
        let mut x = embedded.clone();
        for lw in &w.layers {
            x = decoder_layer(lw, &x, &ctx.inputs(), dims, None)?;
        }
        x
    };
    let body_leaf = Var::from_tensor(&body_out.detach())?;

    // Stage 2 forward: final norm and the response rows.
    let normed =
        oneshot_kernels::rms_norm(body_leaf.as_tensor(), &w.norm, model.config.rms_norm_eps)?;
    let h_rows = normed
        .reshape((b * t, hid))?
        .index_select(&rows.hidden_idx, 0)?;

    // Stage 3 forward (no graph): log-probs, entropies, then the caller's loss on leaves.
    let h_det = h_rows.detach();
    let matmul = model.matmul_precision();
    // One bf16 copy of the head serves the forward and the backward chunks.
    let copy = head_copy(&w_det.lm_head, matmul, rows.n)?;
    let (lp, en) = if rows.n == 0 {
        let z = Tensor::zeros(0, DType::F32, &device)?;
        (z.clone(), z)
    } else {
        head_logprobs(
            &h_det,
            &w_det.lm_head,
            &rows.targets,
            temperature,
            opts.chunk_rows,
            matmul,
            copy.as_ref(),
        )?
    };
    let lp_leaf = Var::from_tensor(&rows.scatter(&lp)?)?;
    let en_leaf = Var::from_tensor(&rows.scatter(&en)?)?;
    let loss = loss_fn(lp_leaf.as_tensor(), en_leaf.as_tensor())?;
    if loss.elem_count() != 1 {
        bail!("loss_fn must return a scalar, got shape {:?}", loss.dims());
    }
    let loss_value = loss.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?[0];
    let g_loss = loss.backward()?;
    let g_lp = rows.gather(&grad_or_zeros(&g_loss, &lp_leaf)?)?;
    let g_en = rows.gather(&grad_or_zeros(&g_loss, &en_leaf)?)?;
    drop(g_loss);

    let mut grads = GradStore::default();
    // Stage 3 backward, chunk by chunk: gradient w.r.t. the head and the hidden rows.
    let mut g_h_chunks = Vec::new();
    let chunk = opts.chunk_rows.max(1);
    for start in (0..rows.n).step_by(chunk) {
        let len = chunk.min(rows.n - start);
        let h_leaf = Var::from_tensor(&h_det.narrow(0, start, len)?)?;
        let logits = match matmul {
            // A frozen head (LoRA): the gradient goes to the hidden rows only, no dW.
            _ if !w.lm_head.track_op() => {
                crate::lora::frozen::frozen_product(h_leaf.as_tensor(), &w.lm_head, matmul)?
            }
            MatmulPrecision::Bf16 => {
                oneshot_kernels::linear_bf16(h_leaf.as_tensor(), &w.lm_head, copy.as_ref())?
            }
            MatmulPrecision::F32 => {
                crate::layers::project(h_leaf.as_tensor(), &w.lm_head, MatmulPrecision::F32)?
            }
        };
        let (lp_c, en_c) = oneshot_kernels::logprobs_and_entropy(
            &logits,
            &rows.targets.narrow(0, start, len)?,
            temperature,
        )?;
        let s = (surrogate(&lp_c, &g_lp.narrow(0, start, len)?)?
            + surrogate(&en_c, &g_en.narrow(0, start, len)?)?)?;
        let g = s.backward()?;
        accumulate(&mut grads, &g, &vars)?;
        g_h_chunks.push(grad_or_zeros(&g, &h_leaf)?);
    }
    // Stage 2 backward.
    let mut g_body = body_leaf.as_tensor().zeros_like()?;
    if rows.n > 0 {
        let g_h = Tensor::cat(&g_h_chunks, 0)?;
        let g = surrogate(&h_rows, &g_h)?.backward()?;
        accumulate(&mut grads, &g, &vars)?;
        g_body = grad_or_zeros(&g, &body_leaf)?;
    }
    drop(h_rows);
    drop(normed);
    // Stage 1 backward.
    if opts.recompute_layers {
        let mut g_out = g_body;
        for (lw, x_in) in w.layers.iter().zip(layer_inputs.iter()).rev() {
            let x_leaf = Var::from_tensor(x_in)?;
            let out = decoder_layer(lw, x_leaf.as_tensor(), &ctx.inputs(), dims, None)?;
            let g = surrogate(&out, &g_out)?.backward()?;
            accumulate(&mut grads, &g, &vars)?;
            g_out = grad_or_zeros(&g, &x_leaf)?;
        }
        let g = surrogate(&embedded, &g_out)?.backward()?;
        accumulate(&mut grads, &g, &vars)?;
    } else {
        let g = surrogate(&body_out, &g_body)?.backward()?;
        accumulate(&mut grads, &g, &vars)?;
    }
    Ok((loss_value, grads))
}
