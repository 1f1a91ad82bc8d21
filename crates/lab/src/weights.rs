//! Relative weights (family mixes, difficulty mixes): validation, sampling, and exact quotas.
use anyhow::{bail, Result};
use rand::Rng;

pub fn validate(name: &str, w: &[f64]) -> Result<()> {
    if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
        bail!("{name} {w:?}: weights must be finite, >= 0, and not all 0");
    }
    Ok(())
}

/// An index drawn with probability proportional to its weight.
pub fn pick_weighted<R: Rng>(rng: &mut R, w: &[f64]) -> usize {
    let total: f64 = w.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, &x) in w.iter().enumerate() {
        if u < x {
            return i;
        }
        u -= x;
    }
    w.iter().rposition(|&x| x > 0.0).unwrap_or(0)
}

/// Counts summing to `n`, proportional to `w` (largest remainders, ties to the lower index).
pub fn quotas(n: usize, w: &[f64]) -> Vec<usize> {
    let total: f64 = w.iter().sum();
    let exact: Vec<f64> = w.iter().map(|x| x / total * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let mut left = n - counts.iter().sum::<usize>();
    for i in order {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_and_follow_weights() {
        assert_eq!(quotas(10, &[1.0, 1.0, 2.0]), vec![3, 2, 5]);
        assert_eq!(quotas(1000, &[1.0; 6]).iter().sum::<usize>(), 1000);
        assert_eq!(quotas(7, &[0.0, 1.0]), vec![0, 7]);
    }

    #[test]
    fn bad_weights_are_named() {
        let e = validate("family_weights", &[0.0, -1.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("family_weights"), "{e}");
    }
}
