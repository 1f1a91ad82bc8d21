//! The demo's two figures, as PNG: the 1-shot run's curves (pi_1's train accuracy with
//! held-out accuracy, the held-out working, pi_1's rollout entropy and length) and base vs
//! 1-shot accuracy per family. Text is drawn with a font compiled
//! into the binary (Ubuntu Light from `epaint_default_fonts`), so no system font is needed.
use crate::curve::CurvePoint;
use crate::pipeline::DemoOutcome;
use anyhow::{anyhow, Result};
use oneshot_lab::metrics::LabScores;
use oneshot_train::plots::{register_font, write_png};
use plotters::prelude::*;
use std::path::Path;

/// Width and height of `curves.png`.
pub const CURVES_SIZE: (u32, u32) = (900, 1000);

fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {what}: {e:?}")
}

/// One line of a panel.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    /// Dashed: the families other than pi_1's.
    dashed: bool,
    /// Circles at the points (sparse held-out points; train metrics are every step).
    markers: bool,
}

impl Line {
    fn new(name: &str, points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Self {
            name: name.to_string(),
            points,
            color,
            dashed: false,
            markers: true,
        }
    }

    fn dashed(self) -> Self {
        Self {
            dashed: true,
            ..self
        }
    }

    fn plain(self) -> Self {
        Self {
            markers: false,
            ..self
        }
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A line chart on `area`: steps 0..`x_max` against `y`.
fn panel(
    area: &Area,
    caption: &str,
    x_max: f64,
    y: std::ops::Range<f64>,
    y_desc: &str,
    lines: Vec<Line>,
) -> Result<()> {
    let what = "curves.png";
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..x_max, y)
        .map_err(err(what))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err(what))?;
    for line in lines {
        let style = line.color.stroke_width(2);
        let series = if line.dashed {
            chart.draw_series(DashedLineSeries::new(line.points.clone(), 7, 5, style))
        } else {
            chart.draw_series(LineSeries::new(line.points.clone(), style))
        };
        let color = line.color;
        let anno = series.map_err(err(what))?.label(line.name);
        if line.dashed {
            anno.legend(move |(x, y)| {
                plotters::element::DashedPathElement::new(
                    vec![(x, y), (x + 20, y)],
                    5,
                    3,
                    color.stroke_width(2),
                )
            });
        } else {
            anno.legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        if line.markers {
            chart
                .draw_series(
                    line.points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(err(what))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err(what))?;
    Ok(())
}

/// Percent points of a rate of the held-out curve.
fn held_out(o: &DemoOutcome, rate: impl Fn(&CurvePoint) -> Option<f64>) -> Vec<(f64, f64)> {
    o.test_curve
        .iter()
        .filter_map(|p| Some((p.step as f64, 100.0 * rate(p)?)))
        .collect()
}

/// Three panels over the 1-shot steps: pi_1's train accuracy with held-out strict and lenient
/// accuracy (all families solid, the others than pi_1's dashed, pass@k when measured); the
/// held-out working (direct answers, slips, re-checks); pi_1's rollout entropy and length.
pub fn curves_png(path: &Path, o: &DemoOutcome) -> Result<()> {
    register_font();
    let what = "curves.png";
    let (w, h) = CURVES_SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err(what))?;
        let (top, rest) = root.split_vertically(480);
        let (middle, bottom) = rest.split_vertically(270);
        let (left, right) = bottom.split_horizontally(w / 2);
        let x_max = o.budget.one_shot_steps.max(1) as f64;
        let (red, green, blue) = (RGBColor(210, 30, 30), RGBColor(0, 150, 60), BLUE);
        let purple = RGBColor(130, 50, 170);
        let train: Vec<(f64, f64)> = o
            .train_curve
            .iter()
            .map(|p| (p.step as f64, 100.0 * p.pi1_accuracy))
            .collect();
        let mut accuracy = vec![
            Line::new("pi_1 train accuracy (rollouts)", train, blue).plain(),
            Line::new(
                "held-out strict (boxed answer right)",
                held_out(o, |p| Some(p.all.strict)),
                red,
            ),
            Line::new(
                "held-out lenient (answer right)",
                held_out(o, |p| Some(p.all.lenient)),
                green,
            ),
            Line::new(
                "strict, other families",
                held_out(o, |p| Some(p.other_families.strict)),
                red,
            )
            .dashed(),
            Line::new(
                "lenient, other families",
                held_out(o, |p| Some(p.other_families.lenient)),
                green,
            )
            .dashed(),
        ];
        if o.budget.pass_k > 0 {
            accuracy.push(Line::new(
                &format!(
                    "held-out pass@{} (T = {})",
                    o.budget.pass_k, o.budget.pass_temperature
                ),
                held_out(o, |p| p.pass_at_k.map(|k| k.pass)),
                purple,
            ));
        }
        panel(
            &top,
            "1-shot RLVR: train accuracy of pi_1 vs held-out accuracy",
            x_max,
            0.0..100.0,
            "accuracy %",
            accuracy,
        )?;
        let orange = RGBColor(230, 120, 0);
        let teal = RGBColor(0, 130, 140);
        panel(
            &middle,
            "held-out working: direct answers, slips (of responses with working), re-checks",
            x_max,
            0.0..100.0,
            "% of responses",
            vec![
                Line::new(
                    "direct (working skipped)",
                    held_out(o, |p| Some(p.all.direct)),
                    orange,
                ),
                Line::new(
                    "slip",
                    held_out(o, |p| (p.all.worked_n > 0).then_some(p.all.slip)),
                    red,
                ),
                Line::new("checked", held_out(o, |p| Some(p.all.checked)), teal),
                Line::new(
                    "direct, other families",
                    held_out(o, |p| Some(p.other_families.direct)),
                    orange,
                )
                .dashed(),
                Line::new(
                    "slip, other families",
                    held_out(o, |p| {
                        let r = &p.other_families;
                        (r.worked_n > 0).then_some(r.slip)
                    }),
                    red,
                )
                .dashed(),
            ],
        )?;
        let entropy: Vec<(f64, f64)> = o
            .train_curve
            .iter()
            .filter_map(|p| Some((p.step as f64, p.entropy?)))
            .collect();
        let length: Vec<(f64, f64)> = o
            .train_curve
            .iter()
            .map(|p| (p.step as f64, p.response_length))
            .collect();
        let top_of = |pts: &[(f64, f64)]| 1.15 * pts.iter().map(|p| p.1).fold(1e-3, f64::max);
        panel(
            &left,
            "pi_1 rollouts: entropy",
            x_max,
            0.0..top_of(&entropy),
            "nats per token",
            vec![Line::new("actor entropy", entropy, purple).plain()],
        )?;
        panel(
            &right,
            "pi_1 rollouts: mean length",
            x_max,
            0.0..top_of(&length),
            "tokens",
            vec![Line::new("response length", length, teal).plain()],
        )?;
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
