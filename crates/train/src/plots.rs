//! Training curves from `metrics.jsonl`, drawn with plotters as PNG and SVG: reward, accuracy,
//! response length, entropy, KL, grad norm and every validation accuracy, one panel each; and
//! the chart set-up every figure of the project shares ([`register_font`], [`write_png`]).
//! PNG text is rasterised with ab_glyph from a font compiled into the binary (Ubuntu Light,
//! shipped by the `epaint_default_fonts` crate), so no system font is needed.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{Map, Value};

use crate::metrics::names;

pub const PNG_FILE: &str = "training_curves.png";
pub const SVG_FILE: &str = "training_curves.svg";

const MAIN_CURVES: [&str; 6] = [
    names::REWARD_MEAN,
    names::ACC_MEAN,
    names::RESPONSE_LENGTH_MEAN,
    names::ENTROPY,
    names::KL_LOSS,
    names::GRAD_NORM,
];
const PANEL_W: u32 = 420;
const PANEL_H: u32 = 300;

static FONT: Once = Once::new();

/// Makes the embedded font the `sans-serif` of every chart (once per process).
pub fn register_font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font shipped with the crate; failure would be a bug.
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .map_err(|_| ())
        .expect("the embedded font parses");
    });
}

/// The (step, value) series of `key`, skipping lines without it.
fn series(metrics: &[Map<String, Value>], key: &str) -> Vec<(f64, f64)> {
    metrics
        .iter()
        .filter_map(|m| Some((m.get(names::STEP)?.as_f64()?, m.get(key)?.as_f64()?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// The curves to draw: the main ones present, then validation accuracies.
fn curve_keys(metrics: &[Map<String, Value>]) -> Vec<String> {
    let mut keys: Vec<String> = MAIN_CURVES
        .iter()
        .filter(|k| !series(metrics, k).is_empty())
        .map(|k| k.to_string())
        .collect();
    let mut val: Vec<String> = metrics
        .iter()
        .flat_map(|m| m.keys())
        .filter(|k| k.starts_with(names::VAL_PREFIX) && k.ends_with("/acc"))
        .cloned()
        .collect();
    val.sort();
    val.dedup();
    keys.extend(val);
    keys
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    key: &str,
    pts: &[(f64, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (y0, y1) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    // A flat series gets a visible band around its value instead of a zero-height axis.
    let pad = if y1 - y0 > 1e-12 {
        (y1 - y0) * 0.05
    } else {
        (y0.abs() * 0.1).max(0.5)
    };
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(key, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow!("plot {key}: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("plot {key}: {e}"))?;
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), &BLUE))
        .map_err(|e| anyhow!("plot {key}: {e}"))?;
    if pts.len() == 1 {
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
            .map_err(|e| anyhow!("plot {key}: {e}"))?;
    }
    Ok(())
}

fn draw_all<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    metrics: &[Map<String, Value>],
    keys: &[String],
    cols: usize,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)
        .map_err(|e| anyhow!("plot background: {e}"))?;
    let rows = keys.len().div_ceil(cols);
    let panels = root.split_evenly((rows, cols));
    for (key, area) in keys.iter().zip(panels.iter()) {
        draw_panel(area, key, &series(metrics, key))?;
    }
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

/// Writes `training_curves.png` and `.svg` into `dir`. Returns false when there is nothing to plot.
pub fn write_plots(metrics: &[Map<String, Value>], dir: &Path) -> Result<bool> {
    let keys = curve_keys(metrics);
    if keys.is_empty() {
        return Ok(false);
    }
    register_font();
    let cols = keys.len().min(3);
    let rows = keys.len().div_ceil(cols);
    let (w, h) = (PANEL_W * cols as u32, PANEL_H * rows as u32);

    let svg_path = dir.join(SVG_FILE);
    draw_all(
        SVGBackend::new(&svg_path, (w, h)).into_drawing_area(),
        metrics,
        &keys,
        cols,
    )
    .with_context(|| format!("drawing {}", svg_path.display()))?;

    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw_all(
        BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(),
        metrics,
        &keys,
        cols,
    )
    .context("drawing the PNG")?;
    let png_path = dir.join(PNG_FILE);
    write_png(&png_path, &rgb, w, h)?;
    Ok(true)
}

/// Writes an RGB8 buffer (as `BitMapBackend::with_buffer` draws it) as a PNG file.
pub fn write_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .with_context(|| format!("writing {}", path.display()))?;
    writer
        .write_image_data(rgb)
        .with_context(|| format!("writing {}", path.display()))?;
    writer
        .finish()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
