//! Mean and spread of a study's runs, and how its tables print them.

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n.max(1.0);
    let v = if xs.len() > 1 {
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v.sqrt())
}

/// `mean ± std` of fractions, in percent; one value has no spread to show, none is `-`.
pub fn pct_cell(xs: &[f64]) -> String {
    let (m, sd) = mean_std(xs);
    if xs.is_empty() {
        "-".into()
    } else if xs.len() > 1 {
        format!("{:.1} ± {:.1}", 100.0 * m, 100.0 * sd)
    } else {
        format!("{:.1}", 100.0 * m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std_and_cells() {
        let (m, sd) = mean_std(&[0.2, 0.4, 0.6]);
        assert!((m - 0.4).abs() < 1e-12 && (sd - 0.2).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
        assert_eq!(pct_cell(&[0.2, 0.4, 0.6]), "40.0 ± 20.0");
        assert_eq!(pct_cell(&[0.25]), "25.0");
        assert_eq!(pct_cell(&[]), "-");
    }
}
