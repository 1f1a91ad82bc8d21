//! The demo's two figures, as PNG: pi_1's train accuracy with the held-out test accuracy over
//! the 1-shot steps, and base vs 1-shot accuracy per family. Text is drawn with a font compiled
//! into the binary (Ubuntu Light from `epaint_default_fonts`), so no system font is needed.
use crate::pipeline::DemoOutcome;
use anyhow::{anyhow, Result};
use oneshot_lab::metrics::LabScores;
use oneshot_train::plots::{register_font, write_png};
use plotters::prelude::*;
use std::path::Path;

fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {what}: {e:?}")
}

/// pi_1's rollout accuracy per step, held-out strict and lenient accuracy at the test points.
pub fn curves_png(path: &Path, o: &DemoOutcome) -> Result<()> {
    register_font();
    let what = "curves.png";
    let (w, h) = (900u32, 520u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err(what))?;
        let x_max = o.budget.one_shot_steps.max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "1-shot RLVR: train accuracy of pi_1 vs held-out accuracy",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..x_max, 0.0..100.0)
            .map_err(err(what))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("accuracy %")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err(what))?;
        let train: Vec<(f64, f64)> = o
            .train_curve
            .iter()
            .map(|(s, a)| (*s as f64, 100.0 * a))
            .collect();
        let strict: Vec<(f64, f64)> = o
            .test_curve
            .iter()
            .map(|p| (p.step as f64, 100.0 * p.strict))
            .collect();
        let lenient: Vec<(f64, f64)> = o
            .test_curve
            .iter()
            .map(|p| (p.step as f64, 100.0 * p.lenient))
            .collect();
        let green = RGBColor(0, 150, 60);
        chart
            .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))
            .map_err(err(what))?
            .label("pi_1 train accuracy (rollouts)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        for (pts, color, name) in [
            (strict, RED, "held-out strict (boxed answer right)"),
            (lenient, green, "held-out lenient (answer right)"),
        ] {
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(err(what))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(err(what))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err(what))?;
        root.present().map_err(err(what))?;
    }
    write_png(path, &rgb, w, h)
}

/// Grouped bars per family (and overall): strict and lenient, base vs 1-shot.
pub fn families_png(path: &Path, base: &LabScores, one: &LabScores) -> Result<()> {
    register_font();
    let what = "families.png";
    let mut groups: Vec<(String, [f64; 4])> = base
        .by_family
        .iter()
        .filter_map(|(f, b)| {
            one.by_family.get(f).map(|o| {
                (
                    f.name().to_string(),
                    [b.strict, o.strict, b.lenient, o.lenient],
                )
            })
        })
        .collect();
    groups.push((
        "all".into(),
        [
            base.all.strict,
            one.all.strict,
            base.all.lenient,
            one.all.lenient,
        ],
    ));
    let (w, h) = (1000u32, 520u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err(what))?;
        let n = groups.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "held-out accuracy by family: base vs 1-shot",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..n, 0.0..100.0)
            .map_err(err(what))?;
        let names: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                // Label only at group centres.
                if (x - i as f64 - 0.5).abs() < 1e-6 && i < names.len() {
                    names[i].clone()
                } else {
                    String::new()
                }
            })
            .y_desc("accuracy %")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err(what))?;
        let colors = [
            RGBColor(160, 170, 200),
            RGBColor(30, 60, 200),
            RGBColor(170, 210, 170),
            RGBColor(0, 140, 50),
        ];
        let labels = [
            "strict, base",
            "strict, 1-shot",
            "lenient, base",
            "lenient, 1-shot",
        ];
        for k in 0..4 {
            let c = colors[k];
            chart
                .draw_series(groups.iter().enumerate().map(|(i, g)| {
                    let x0 = i as f64 + 0.1 + 0.2 * k as f64;
                    Rectangle::new([(x0, 0.0), (x0 + 0.18, 100.0 * g.1[k])], c.filled())
                }))
                .map_err(err(what))?
                .label(labels[k])
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err(what))?;
        root.present().map_err(err(what))?;
    }
    write_png(path, &rgb, w, h)
}
