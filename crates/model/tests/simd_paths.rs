//! The sampler's and the paged attention's AVX2 builds give the bits of their portable builds
//! (the same operations on wider registers). One test function: the level cap is global to the
//! process.
use candle_core::{Device, Tensor};
use oneshot_kernels::isa::{self, Isa};
use oneshot_model::paged_kv::PagedLayer;
use oneshot_model::sampling::{sample, SamplerConfig, SeqRng};

fn val(i: usize) -> f32 {
    ((i.wrapping_mul(2_654_435_761) % 10_007) as f32 * 0.001_3).sin() * 9.0
}

/// Token and log-prob bits of every draw over seeded logits rows and sampler settings.
fn draws() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (r, vocab) in [151_936usize, 50_000, 1_000, 17].into_iter().enumerate() {
        let mut logits: Vec<f32> = (0..vocab).map(|i| val(i + 31 * r)).collect();
        // Ties and signed zeros at the maximum, -inf and NaN entries.
        if vocab > 100 {
            logits[vocab / 3] = 20.0;
            logits[vocab / 2] = 20.0;
            logits[5] = f32::NEG_INFINITY;
            logits[7] = f32::NAN;
        }
        for (temperature, top_p, top_k) in
            [(0.0, 1.0, 0), (0.6, 1.0, 0), (1.0, 0.9, 0), (0.7, 1.0, 40)]
        {
            let cfg = SamplerConfig {
                temperature,
                top_p,
                top_k,
            };
            let mut rng = SeqRng::new(r as u64);
            for _ in 0..8 {
                let (tok, logp) = sample(&logits, &cfg, &mut rng);
                out.push((tok, logp.to_bits()));
            }
        }
    }
    out
}

/// Output bits of a paged layer's attention over a shared prompt and rows that cross blocks.
fn attention() -> Vec<u32> {
    let (kv, d, heads, rows) = (2, 64, 14, 3);
    let w = kv * d;
    let dev = Device::Cpu;
    let mut layer = PagedLayer::new(kv, d);
    let plen = 150;
    let pk: Vec<f32> = (0..plen * w).map(val).collect();
    let pv: Vec<f32> = (0..plen * w).map(|i| val(i + 7)).collect();
    layer.add_prompt(0, pk, pv).unwrap();
    for _ in 0..rows {
        layer.push_row(0).unwrap();
    }
    let mut bits = Vec::new();
    for step in 0..40 {
        let t = |n: usize, h: usize, off: usize| {
            let v: Vec<f32> = (0..n).map(|i| val(i + off + 977 * step)).collect();
            Tensor::from_vec(v, (rows, h, 1, d), &dev).unwrap()
        };
        let out = layer
            .attend(
                &t(rows * heads * d, heads, 1),
                &t(rows * w, kv, 2),
                &t(rows * w, kv, 3),
                0.125,
            )
            .unwrap();
        let v = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        bits.extend(v.iter().map(|x| x.to_bits()));
    }
    bits
}

#[test]
fn avx2_builds_give_the_portable_bits() {
    isa::set_cap(Some(Isa::Portable));
    let (portable_draws, portable_attention) = (draws(), attention());
    isa::set_cap(None);
    if !isa::active().allows(Isa::Avx2) {
        // The portable build is checked against the definition by the unit tests.
        eprintln!(
            "no AVX2 comparison: the active level is {} (the portable build ran above)",
            isa::active()
        );
        return;
    }
    isa::set_cap(Some(Isa::Avx2));
    assert_eq!(draws(), portable_draws, "sampler: AVX2 vs portable");
    assert_eq!(
        attention(),
        portable_attention,
        "paged attention: AVX2 vs portable"
    );
    assert!(isa::paths_used().iter().any(|p| p == "simd:avx2"));
    isa::set_cap(None);
}
