//! `curves.png`: the picture of a run's metrics log. One panel for the
//! loss of every objective, one for the learning rate, and one per
//! evaluator with each of its metrics against the step, the best value of
//! its primary metric marked. Drawn with plotters into a bitmap with the
//! embedded DejaVu Sans font, so that it looks the same on a machine
//! without fonts (a CI runner's container).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::metrics_log::{MetricsLog, Series};

/// Width of the picture; each row of two panels is [`ROW_HEIGHT`] high.
const WIDTH: u32 = 1400;
const ROW_HEIGHT: u32 = 380;
const FONT: &str = "sans-serif";

/// Register the embedded font once (plotters' ab_glyph backend has no
/// other fonts).
fn font_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    })
}

/// A drawing failure as an I/O error (what the callers report).
fn draw_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("cannot draw the curves: {e}"))
}

/// One line of a panel.
struct Line<'a> {
    name: &'a str,
    points: &'a Series,
    emphasis: bool,
    /// A per-step training figure (a loss): smoothed when long.
    noisy: bool,
}

/// Draw `run_dir/metrics.jsonl` into `run_dir/curves.png` (atomically).
/// Returns the PNG's path.
pub fn write(run_dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let log = MetricsLog::read(run_dir)?;
    let png = render(&log)?;
    let path = run_dir.join("curves.png");
    crate::fsio::write_atomic(&path, &png)?;
    Ok(path)
}

/// The PNG bytes of a log's curves.
pub fn render(log: &MetricsLog) -> std::io::Result<Vec<u8>> {
    if !font_ready() {
        return Err(draw_err("the embedded font did not load"));
    }
    let panels = 2 + log.evals.len();
    let rows = panels.div_ceil(2) as u32;
    let (w, h) = (WIDTH, rows * ROW_HEIGHT);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let areas = root.split_evenly((rows as usize, 2));
        let losses: Vec<Line> = log
            .losses
            .iter()
            .map(|(name, points)| Line {
                name,
                points,
                emphasis: false,
                noisy: true,
            })
            .collect();
        panel(&areas[0], "loss per objective", &losses, log, None)?;
        let lr = [Line {
            name: "learning rate",
            points: &log.lr,
            emphasis: false,
            noisy: false,
        }];
        panel(&areas[1], "learning rate", &lr, log, None)?;
        for (i, (evaluator, metrics)) in log.evals.iter().enumerate() {
            let primary = log.primary_of(evaluator);
            let lines: Vec<Line> = metrics
                .iter()
                .map(|(name, points)| Line {
                    name,
                    points,
                    emphasis: Some(name.as_str()) == primary,
                    noisy: false,
                })
                .collect();
            let best = primary.and_then(|m| log.best(evaluator, m).map(|b| (m, b)));
            panel(
                &areas[2 + i],
                &format!("evaluator {evaluator}"),
                &lines,
                log,
                best,
            )?;
        }
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, w, h)
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> std::io::Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, w, h, image::ColorType::Rgb8)
        .map_err(draw_err)?;
    Ok(out)
}

/// The x and y ranges of finite points, padded; a flat or empty series
/// still gets a visible range.
fn bounds(lines: &[Line], log: &MetricsLog) -> ((f64, f64), (f64, f64)) {
    let pts = || {
        lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let x_end = log.stages.last().map(|s| s.2).unwrap_or(0.0);
    let x1 = pts().map(|p| p.0).fold(x_end, f64::max).max(1.0);
    let (lo, hi) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        let d = lo.abs().max(1e-3) * 0.1;
        (lo - d, hi + d)
    } else {
        let d = (hi - lo) * 0.08;
        (lo - d, hi + d)
    };
    ((0.0, x1), (lo, hi))
}

/// Ten colours: an evaluator has up to ten metrics (similarity: four
/// similarities x two correlations, and the best of each).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

/// Width of the legend column at the right of each panel.
const LEGEND_WIDTH: u32 = 190;

/// One panel: its lines against the step, the stage boundaries, and the
/// best point (`metric`, (step, value)) marked; the legend beside the plot
/// (inside, it would hide the curves).
fn panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    lines: &[Line],
    log: &MetricsLog,
    best: Option<(&str, (f64, f64))>,
) -> std::io::Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (plot, legend_area) = area.split_horizontally(w.saturating_sub(LEGEND_WIDTH));
    let ((x0, x1), (y0, y1)) = bounds(lines, log);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_labels((x1 as usize).clamp(2, 10) + 1)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .y_label_formatter(&|v| format_tick(*v))
        .draw()
        .map_err(draw_err)?;
    let grey = RGBColor(150, 150, 150);
    for (name, start, _) in log.stages.iter().skip(1) {
        chart
            .draw_series(LineSeries::new([(*start, y0), (*start, y1)], grey))
            .map_err(draw_err)?;
        chart
            .draw_series([EmptyElement::at((*start, y1))
                + Text::new(
                    format!("stage {name}"),
                    (4, 2),
                    (FONT, 13).into_font().color(&grey),
                )])
            .map_err(draw_err)?;
    }
    if lines.iter().all(|l| l.points.is_empty()) {
        chart
            .draw_series(std::iter::once(Text::new(
                "nothing recorded",
                ((x0 + x1) / 2.0, (y0 + y1) / 2.0),
                (FONT, 16),
            )))
            .map_err(draw_err)?;
        return Ok(());
    }
    for (i, l) in lines.iter().enumerate() {
        draw_line(&mut chart, l, COLORS[i % COLORS.len()])?;
    }
    if let Some((metric, (x, y))) = best {
        let red = RGBColor(200, 0, 0);
        // The label sits beside the circle (in pixels), on the side with room.
        let label = format!("best {metric} {y:.4} at step {x}");
        let dx = if x > (x0 + x1) / 2.0 {
            -14 - 8 * label.chars().count() as i32
        } else {
            12
        };
        chart
            .draw_series([EmptyElement::at((x, y))
                + Circle::new((0, 0), 8, red.stroke_width(2))
                + Text::new(label, (dx, 10), (FONT, 14).into_font().color(&red))])
            .map_err(draw_err)?;
    }
    draw_legend(&legend_area, lines)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A loss with more points than this is drawn faint, its smoothed curve on top.
const SMOOTH_FROM: usize = 50;

/// Points smoothed as TensorBoard does (an exponential moving average,
/// debiased at the start), for a noisy per-step loss.
fn smoothed(pts: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let (mut avg, mut norm) = (0.0, 0.0);
    pts.iter()
        .map(|&(x, y)| {
            avg = avg * weight + (1.0 - weight) * y;
            norm = norm * weight + (1.0 - weight);
            (x, avg / norm)
        })
        .collect()
}

/// One line: thick for a primary metric; a long noisy series faint, with
/// its smoothed curve on top; markers where there are few points.
fn draw_line(chart: &mut Chart, l: &Line, color: RGBColor) -> std::io::Result<()> {
    let pts: Vec<(f64, f64)> = l
        .points
        .iter()
        .copied()
        .filter(|p| p.1.is_finite())
        .collect();
    let width = if l.emphasis { 3 } else { 1 };
    if l.noisy && pts.len() > SMOOTH_FROM {
        chart
            .draw_series(LineSeries::new(pts.clone(), color.mix(0.3).stroke_width(1)))
            .map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(smoothed(&pts, 0.9), color.stroke_width(2)))
            .map_err(draw_err)?;
        return Ok(());
    }
    chart
        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
        .map_err(draw_err)?;
    if pts.len() <= 30 {
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(draw_err)?;
    }
    Ok(())
}

fn draw_legend(area: &DrawingArea<BitMapBackend, Shift>, lines: &[Line]) -> std::io::Result<()> {
    for (i, l) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = 48 + 20 * i as i32;
        let width = if l.emphasis { 3 } else { 2 };
        area.draw(&PathElement::new(
            vec![(4, y), (26, y)],
            color.stroke_width(width),
        ))
        .map_err(draw_err)?;
        let name = if l.noisy && l.points.len() > SMOOTH_FROM {
            format!("{} (smoothed)", l.name)
        } else {
            l.name.to_string()
        };
        area.draw(&Text::new(name, (32, y - 7), (FONT, 13)))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Tick labels that stay short for learning rates (2e-5) and metrics.
fn format_tick(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-2 {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(png: &[u8]) -> (u32, u32) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
        (be(16), be(20))
    }

    #[test]
    fn one_row_per_two_panels_and_an_empty_log_still_draws() {
        let log = MetricsLog::parse(
            "{\"stage\":\"a\",\"step\":1,\"loss\":{\"sim\":0.5},\"lr\":1e-5}\n\
             {\"stage\":\"a\",\"step\":1,\"evaluator\":\"dev\",\"metrics\":{\"m\":0.5}}\n\
             {\"stage\":\"a\",\"step\":1,\"evaluator\":\"ir\",\"metrics\":{\"ndcg\":0.5}}\n",
        );
        assert_eq!(size(&render(&log).unwrap()), (WIDTH, 2 * ROW_HEIGHT));
        let empty = render(&MetricsLog::default()).unwrap();
        assert_eq!(size(&empty), (WIDTH, ROW_HEIGHT));
        // Nothing but NaN and a single point: still a picture.
        let flat =
            MetricsLog::parse("{\"stage\":\"a\",\"step\":3,\"loss\":{\"sim\":NaN},\"lr\":0}\n");
        assert!(render(&flat).is_ok());
    }
}
