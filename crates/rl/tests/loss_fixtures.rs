//! The actor/critic losses against `tests/fixtures/losses.json`, made by
//! `scripts/make_loss_fixtures.py` (verl's formulas in float64 numpy with analytic gradients).

use candle_core::{DType, Device, Tensor, Var, D};
use oneshot_rl::agg::{AggScope, LossAgg};
use oneshot_rl::kl::KlKind;
use oneshot_rl::loss::{
    policy_loss, value_loss, KlLossConfig, PolicyLossConfig, PolicyLossInputs, ValueLossInputs,
};
use oneshot_rl::{token_logp_entropy, TokenGrid};
use serde_json::Value;

const TOL: f64 = 1e-6;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/losses.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).expect("losses.json parses")
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not numeric: {other}"),
    }
}

fn grid(v: &Value) -> TokenGrid {
    let rows: Vec<Vec<f32>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| flat(r).into_iter().map(|x| x as f32).collect())
        .collect();
    TokenGrid::from_rows(&rows).unwrap()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOL * w.abs().max(1.0),
            "{what}[{i}]: got {g}, want {w} (diff {:.3e})",
            (g - w).abs()
        );
    }
}

fn tensor_vals(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn parse_config(c: &Value) -> PolicyLossConfig {
    let agg: LossAgg = serde_json::from_value(c["agg"].clone()).unwrap();
    let kl = if c["kl"].is_null() {
        None
    } else {
        let kind = match c["kl"]["kind"].as_str().unwrap() {
            "k1" => KlKind::K1,
            "k2" => KlKind::K2,
            "k3" => KlKind::K3,
            k => panic!("kl kind {k}"),
        };
        Some(KlLossConfig {
            kind,
            coef: c["kl"]["coef"].as_f64().unwrap(),
        })
    };
    PolicyLossConfig {
        clip_low: c["clip_low"].as_f64().unwrap(),
        clip_high: c["clip_high"].as_f64().unwrap(),
        dual_clip: c["dual_clip"].as_f64(),
        kl,
        entropy_coef: c["entropy_coef"].as_f64().unwrap(),
        agg,
    }
}

struct Inputs {
    mask: TokenGrid,
    old: TokenGrid,
    refp: TokenGrid,
    adv: TokenGrid,
    logp: TokenGrid,
    entropy: TokenGrid,
    logits: Vec<f64>,
    targets: Vec<u32>,
    dims: (usize, usize, usize),
    temperature: f64,
    micro_batches: usize,
}

fn inputs(fx: &Value) -> Inputs {
    let i = &fx["inputs"];
    let mask = grid(&i["mask"]);
    let vocab = i["logits"][0][0].as_array().unwrap().len();
    Inputs {
        old: grid(&i["old_logp"]),
        refp: grid(&i["ref_logp"]),
        adv: grid(&i["advantages"]),
        logp: grid(&i["logp"]),
        entropy: grid(&i["entropy"]),
        logits: flat(&i["logits"]),
        targets: flat(&i["targets"]).into_iter().map(|x| x as u32).collect(),
        dims: (mask.rows, mask.cols, vocab),
        temperature: fx["temperature"].as_f64().unwrap(),
        micro_batches: fx["micro_batches"].as_u64().unwrap() as usize,
        mask,
    }
}

/// The fixture's mini-batch is processed as `micro_batches` equal micro-batches (which only
/// `micro-batch-token-mean` depends on).
fn scope_for(inp: &Inputs) -> AggScope {
    AggScope::minibatch(&inp.mask, inp.mask.rows / inp.micro_batches).unwrap()
}

fn loss_inputs<'a>(inp: &'a Inputs, logp: &'a Tensor, ent: &'a Tensor) -> PolicyLossInputs<'a> {
    PolicyLossInputs {
        logp,
        entropy: Some(ent),
        old_logp: &inp.old,
        ref_logp: Some(&inp.refp),
        advantages: &inp.adv,
        mask: &inp.mask,
    }
}

/// Slices rows `[start, start + len)` of a grid.
fn rows(g: &TokenGrid, start: usize, len: usize) -> TokenGrid {
    TokenGrid::new(
        len,
        g.cols,
        g.data[start * g.cols..(start + len) * g.cols].to_vec(),
    )
    .unwrap()
}

#[test]
fn every_policy_case_matches_values_metrics_and_logp_gradients() {
    let fx = fixture();
    let inp = inputs(&fx);
    let dev = Device::Cpu;
    let cases = fx["policy_cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let cfg = parse_config(&case["config"]);
        let logp = Var::from_tensor(&inp.logp.to_tensor(&dev).unwrap()).unwrap();
        let ent = Var::from_tensor(&inp.entropy.to_tensor(&dev).unwrap()).unwrap();
        let out = policy_loss(&loss_inputs(&inp, &logp, &ent), &cfg, &scope_for(&inp)).unwrap();
        let m = &case["metrics"];
        let got = out.metrics;
        for (field, value) in [
            ("loss", got.loss),
            ("pg_loss", got.pg_loss),
            ("kl_loss", got.kl_loss),
            ("entropy", got.entropy),
            ("clipfrac_low", got.clipfrac_low),
            ("clipfrac_high", got.clipfrac_high),
            ("dual_clipfrac", got.dual_clipfrac),
            ("approx_kl", got.approx_kl),
            ("ratio_mean", got.ratio_mean),
            ("ratio_min", got.ratio_min),
            ("ratio_max", got.ratio_max),
        ] {
            assert_close(
                &[value],
                &[m[field].as_f64().unwrap()],
                &format!("{name}.{field}"),
            );
        }
        assert_close(
            &[got.clipfrac_low + got.clipfrac_high],
            &[m["pg_clipfrac"].as_f64().unwrap()],
            &format!("{name}.pg_clipfrac"),
        );
        assert_close(
            &[tensor_vals(&out.loss)[0]],
            &[m["loss"].as_f64().unwrap()],
            name,
        );
        let grads = out.loss.backward().unwrap();
        let g_logp = tensor_vals(grads.get(logp.as_tensor()).expect("logp gradient"));
        assert_close(
            &g_logp,
            &flat(&case["grad_logp"]),
            &format!("{name}.grad_logp"),
        );
        let g_ent = grads.get(ent.as_tensor()).map(tensor_vals);
        let want_ent = flat(&case["grad_entropy"]);
        match g_ent {
            Some(g) => assert_close(&g, &want_ent, &format!("{name}.grad_entropy")),
            None => assert!(
                want_ent.iter().all(|&x| x == 0.0),
                "{name}: entropy gradient missing"
            ),
        }
    }
}

/// Differentiable log-softmax written with plain candle ops, independent of oneshot-kernels.
fn candle_logp_entropy(logits: &Tensor, targets: &Tensor, temperature: f64) -> (Tensor, Tensor) {
    let z = (logits / temperature).unwrap();
    let max = z.max_keepdim(D::Minus1).unwrap().detach();
    let shifted = z.broadcast_sub(&max).unwrap();
    let lse = shifted
        .exp()
        .unwrap()
        .sum_keepdim(D::Minus1)
        .unwrap()
        .log()
        .unwrap();
    let lsm = shifted.broadcast_sub(&lse).unwrap();
    let logp = lsm
        .gather(&targets.unsqueeze(D::Minus1).unwrap(), D::Minus1)
        .unwrap()
        .squeeze(D::Minus1)
        .unwrap();
    let entropy = (lsm.exp().unwrap() * &lsm)
        .unwrap()
        .sum(D::Minus1)
        .unwrap()
        .neg()
        .unwrap();
    (logp, entropy)
}

fn check_logit_gradients(use_kernels: bool) {
    let fx = fixture();
    let inp = inputs(&fx);
    let dev = Device::Cpu;
    let logits_f32: Vec<f32> = inp.logits.iter().map(|&x| x as f32).collect();
    let targets = Tensor::from_slice(&inp.targets, (inp.dims.0, inp.dims.1), &dev).unwrap();
    for case in fx["policy_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = parse_config(&case["config"]);
        // The kernel path runs on f32 logits as in training; the candle-ops path in f64, so
        // that it checks the chain rule with no rounding of its own beyond the loss's f32.
        let (logits, (logp, ent)) = if use_kernels {
            let l = Var::from_slice(&logits_f32, inp.dims, &dev).unwrap();
            let out = token_logp_entropy(l.as_tensor(), &targets, inp.temperature).unwrap();
            (l, out)
        } else {
            let l = Var::from_slice(&inp.logits, inp.dims, &dev).unwrap();
            let out = candle_logp_entropy(l.as_tensor(), &targets, inp.temperature);
            (l, out)
        };
        // The log-probs themselves agree with the fixture's before any loss is taken.
        assert_close(
            &tensor_vals(&logp),
            &inp.logp.data.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            "logp",
        );
        let out = policy_loss(&loss_inputs(&inp, &logp, &ent), &cfg, &scope_for(&inp)).unwrap();
        assert_close(
            &[out.metrics.loss],
            &[case["metrics"]["loss"].as_f64().unwrap()],
            name,
        );
        let grads = out.loss.backward().unwrap();
        let g = tensor_vals(grads.get(logits.as_tensor()).expect("logits gradient"));
        assert_close(
            &g,
            &flat(&case["grad_logits"]),
            &format!("{name}.grad_logits (kernels: {use_kernels})"),
        );
    }
}

#[test]
fn logit_gradients_match_through_candle_ops() {
    check_logit_gradients(false);
}

#[test]
fn logit_gradients_match_through_the_fused_kernel() {
    check_logit_gradients(true);
}

/// Micro-batches aggregated with the mini-batch's scope sum to the whole-batch loss and
/// gradient, for every mode; for verl 0.2's mode this is how the trainer reproduces it.
#[test]
fn micro_batch_split_sums_to_the_minibatch_loss_and_gradient() {
    let fx = fixture();
    let inp = inputs(&fx);
    let dev = Device::Cpu;
    let half = inp.mask.rows / inp.micro_batches;
    for case in fx["policy_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = parse_config(&case["config"]);
        let scope = scope_for(&inp);
        let mut total = 0.0;
        let mut grad_logp = Vec::new();
        for k in 0..inp.micro_batches {
            let part = |g: &TokenGrid| rows(g, k * half, half);
            let (mask, old, refp, adv) = (
                part(&inp.mask),
                part(&inp.old),
                part(&inp.refp),
                part(&inp.adv),
            );
            let logp = Var::from_tensor(&part(&inp.logp).to_tensor(&dev).unwrap()).unwrap();
            let ent = part(&inp.entropy).to_tensor(&dev).unwrap();
            let li = PolicyLossInputs {
                logp: logp.as_tensor(),
                entropy: Some(&ent),
                old_logp: &old,
                ref_logp: Some(&refp),
                advantages: &adv,
                mask: &mask,
            };
            let out = policy_loss(&li, &cfg, &scope).unwrap();
            total += out.metrics.loss;
            let grads = out.loss.backward().unwrap();
            grad_logp.extend(tensor_vals(grads.get(logp.as_tensor()).unwrap()));
        }
        assert_close(
            &[total],
            &[case["metrics"]["loss"].as_f64().unwrap()],
            &format!("{name} split loss"),
        );
        assert_close(
            &grad_logp,
            &flat(&case["grad_logp"]),
            &format!("{name} split grad"),
        );
    }
}

#[test]
fn value_loss_matches_fixture() {
    let fx = fixture();
    let vi = &fx["value_inputs"];
    let (vpreds, old, ret, mask) = (
        grid(&vi["vpreds"]),
        grid(&vi["old_values"]),
        grid(&vi["returns"]),
        grid(&vi["mask"]),
    );
    let clip = vi["clip"].as_f64().unwrap();
    for case in fx["value_cases"].as_array().unwrap() {
        let agg: LossAgg = serde_json::from_value(case["agg"].clone()).unwrap();
        let v = Var::from_tensor(&vpreds.to_tensor(&Device::Cpu).unwrap()).unwrap();
        let inp = ValueLossInputs {
            vpreds: v.as_tensor(),
            old_values: &old,
            returns: &ret,
            mask: &mask,
        };
        let (loss, metrics) = value_loss(&inp, clip, agg, &AggScope::whole(&mask)).unwrap();
        let what = format!("value loss {agg:?}");
        assert_close(&[metrics.vf_loss], &[case["loss"].as_f64().unwrap()], &what);
        assert_close(
            &[metrics.vf_clipfrac],
            &[case["clipfrac"].as_f64().unwrap()],
            &what,
        );
        let g = loss.backward().unwrap();
        assert_close(
            &tensor_vals(g.get(v.as_tensor()).unwrap()),
            &flat(&case["grad_vpreds"]),
            &what,
        );
    }
}

#[test]
fn token_advantage_estimators_match_fixture() {
    let fx = fixture();
    let a = &fx["advantages"];
    let (rewards, values, mask) = (
        grid(&a["token_rewards"]),
        grid(&a["values"]),
        grid(&a["mask"]),
    );
    let (gamma, lam) = (
        a["gamma"].as_f64().unwrap() as f32,
        a["lam"].as_f64().unwrap() as f32,
    );
    let to64 = |g: &TokenGrid| g.data.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let (adv, ret) = oneshot_rl::advantages::reinforce_plus_plus(&rewards, &mask, gamma).unwrap();
    assert_close(
        &to64(&adv),
        &flat(&a["reinforce_pp"]["advantages"]),
        "reinforce++ advantages",
    );
    assert_close(
        &to64(&ret),
        &flat(&a["reinforce_pp"]["returns"]),
        "reinforce++ returns",
    );
    let (adv, ret) = oneshot_rl::advantages::gae(&rewards, &values, &mask, gamma, lam).unwrap();
    assert_close(
        &to64(&adv),
        &flat(&a["gae"]["advantages"]),
        "gae advantages",
    );
    // Returns on padding are irrelevant (masked in the value loss); compare response tokens.
    let want = flat(&a["gae"]["returns"]);
    for (k, &m) in mask.data.iter().enumerate() {
        if m > 0.0 {
            assert_close(
                &[ret.data[k] as f64],
                &[want[k]],
                &format!("gae returns[{k}]"),
            );
        }
    }
    let scores: Vec<f32> = flat(&a["scores"]).into_iter().map(|x| x as f32).collect();
    let groups: Vec<usize> = flat(&a["groups"]).into_iter().map(|x| x as usize).collect();
    let as64 = |v: Vec<f32>| v.into_iter().map(|x| x as f64).collect::<Vec<_>>();
    assert_close(
        &as64(oneshot_rl::advantages::grpo(&scores, &groups).unwrap()),
        &flat(&a["grpo"]),
        "grpo",
    );
    assert_close(
        &as64(oneshot_rl::advantages::dr_grpo(&scores, &groups).unwrap()),
        &flat(&a["dr_grpo"]),
        "dr_grpo",
    );
    assert_close(
        &as64(oneshot_rl::advantages::rloo(&scores, &groups).unwrap()),
        &flat(&a["rloo"]),
        "rloo",
    );
}
