//! The ladder over time as an SVG chart: one panel per rung, outcomes per second, the outage window
//! and the circuit breaker's open periods shaded.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use super::ladder::{Ladder, Outcome};

/// Width of a time bucket.
const BUCKET: Duration = Duration::from_millis(100);

const SERIES: [(Outcome, &str, RGBColor); 6] = [
    (Outcome::Primary, "primary", RGBColor(31, 119, 180)),
    (Outcome::Fallback, "fallback", RGBColor(255, 127, 14)),
    (Outcome::Canned, "canned", RGBColor(148, 103, 189)),
    (Outcome::Cache, "cache", RGBColor(44, 160, 44)),
    (Outcome::Stale, "stale", RGBColor(140, 86, 75)),
    (Outcome::Failed, "failed", RGBColor(214, 39, 40)),
];

/// Writes the chart to `path`.
pub fn write_svg(ladder: &Ladder, path: &Path) -> Result<(), String> {
    let panels = ladder.runs.len().max(1);
    let height = 60 + 190 * panels as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    draw(ladder, &root).map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
    root.present()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn draw<DB: DrawingBackend>(
    ladder: &Ladder,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(50);
    title.titled(
        "Outcomes per second, rung by rung (red band: outage; grey: circuit open)",
        ("sans-serif", 20),
    )?;
    let end = ladder
        .runs
        .iter()
        .map(|r| r.elapsed)
        .max()
        .unwrap_or(Duration::from_secs(1));
    let buckets = (end.as_millis() / BUCKET.as_millis()) as usize + 1;
    let per_second = 1.0 / BUCKET.as_secs_f64();
    let x_max = buckets as f64 * BUCKET.as_secs_f64();

    // Every panel shares one y scale so that rungs compare at a glance.
    let counts: Vec<Vec<[u32; SERIES.len()]>> = ladder
        .runs
        .iter()
        .map(|run| {
            let mut c = vec![[0u32; SERIES.len()]; buckets];
            for r in &run.records {
                let b = ((r.end.as_millis() / BUCKET.as_millis()) as usize).min(buckets - 1);
                let s = SERIES
                    .iter()
                    .position(|(o, ..)| *o == r.outcome)
                    .unwrap_or(SERIES.len() - 1);
                c[b][s] += 1;
            }
            c
        })
        .collect();
    let y_max = counts
        .iter()
        .flatten()
        .flat_map(|b| b.iter())
        .copied()
        .max()
        .unwrap_or(1) as f64
        * per_second
        * 1.4;

    let areas = body.split_evenly((ladder.runs.len().max(1), 1));
    let last = areas.len().saturating_sub(1);
    for (i, ((run, counts), area)) in ladder.runs.iter().zip(&counts).zip(&areas).enumerate() {
        let f = &run.figures;
        let caption = format!(
            "{}: {:.1}% answered, {} primary calls",
            run.rung.label(),
            f.success_percent(),
            f.primary_calls
        );
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(if i == last { 40 } else { 22 })
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc("per second")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_label_formatter(&|v| format!("{v:.0} s"))
            .light_line_style(WHITE.mix(0.0));
        if i == last {
            mesh.x_desc("time since the rung started");
        }
        mesh.draw()?;
        if let Some(outage) = &ladder.outage {
            chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (outage.start.as_secs_f64(), 0.0),
                    (outage.end.as_secs_f64().min(x_max), y_max),
                ],
                RGBColor(214, 39, 40).mix(0.12).filled(),
            )))?;
        }
        chart.draw_series(run.breaker_open.iter().map(|open| {
            Rectangle::new(
                [
                    (open.start.as_secs_f64(), 0.0),
                    (open.end.as_secs_f64(), y_max),
                ],
                BLACK.mix(0.18).filled(),
            )
        }))?;
        for (s, (_, label, color)) in SERIES.iter().enumerate() {
            if counts.iter().all(|b| b[s] == 0) {
                continue;
            }
            let points = counts.iter().enumerate().map(|(i, b)| {
                (
                    (i as f64 + 0.5) * BUCKET.as_secs_f64(),
                    f64::from(b[s]) * per_second,
                )
            });
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    Ok(())
}
