//! The SVG of `ferry demo pool`'s day, drawn with `plotters`: the cells' measured load
//! across the simulated hours above, the servers on (the policy's, and the static
//! placement's) below, with the moves of each hour marked.

use crate::plot::nice_step;
use plotters::prelude::*;

/// One simulated hour of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPoint {
    /// Hour of the day (0–23).
    pub hour: f64,
    /// Mean measured load of all cells, cores.
    pub load_cores: f64,
    /// Mean servers on under the policy.
    pub servers_on: f64,
    /// Servers on under the static placement.
    pub static_servers_on: f64,
    /// Moves in the hour.
    pub moves: u64,
}

/// Failure drawing the day (plotters reports its backend's errors as text).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the pool's day: {0}")]
pub struct PlotError(String);

fn drawn<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, PlotError> {
    r.map_err(|e| PlotError(e.to_string()))
}

const FONT: &str = "sans-serif";

/// The day as SVG text.
pub fn day_svg(points: &[DayPoint], policy: &str) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (960, 620)).into_drawing_area();
        drawn(root.fill(&WHITE))?;
        let root = drawn(root.titled(
            &format!("ferry demo pool: one compressed day, policy {policy}"),
            (FONT, 19).into_font().style(FontStyle::Bold),
        ))?;
        let (top, bottom) = root.split_vertically(290);
        let load_max = points.iter().map(|p| p.load_cores).fold(0.1, f64::max) * 1.15;
        let step = nice_step(load_max, 5.0);
        let mut chart = drawn(
            ChartBuilder::on(&top)
                .margin(12)
                .margin_right(24)
                .x_label_area_size(36)
                .y_label_area_size(70)
                .caption("measured load of all cells", (FONT, 15))
                .build_cartesian_2d(0.0..24.0, 0.0..(load_max / step).ceil() * step),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("hour of the day")
                .y_desc("cores")
                .x_labels(13)
                .light_line_style(WHITE)
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 14))
                .draw(),
        )?;
        let blue = RGBColor(31, 119, 180);
        drawn(chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.hour + 0.5, p.load_cores)),
            blue.stroke_width(2),
        )))?;
        drawn(
            chart.draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.hour + 0.5, p.load_cores), 3, blue.filled())),
            ),
        )?;

        let servers_max = points
            .iter()
            .map(|p| p.servers_on.max(p.static_servers_on))
            .fold(1.0, f64::max)
            .ceil()
            + 1.0;
        let mut chart = drawn(
            ChartBuilder::on(&bottom)
                .margin(12)
                .margin_right(24)
                .x_label_area_size(36)
                .y_label_area_size(70)
                .caption("servers on (bars: moves in the hour)", (FONT, 15))
                .build_cartesian_2d(0.0..24.0, 0.0..servers_max),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("hour of the day")
                .y_desc("servers")
                .x_labels(13)
                .light_line_style(WHITE)
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 14))
                .draw(),
        )?;
        let orange = RGBColor(255, 127, 14);
        let green = RGBColor(44, 160, 44);
        drawn(
            chart.draw_series(points.iter().filter(|p| p.moves > 0).map(|p| {
                Rectangle::new(
                    [
                        (p.hour + 0.3, 0.0),
                        (p.hour + 0.7, (p.moves as f64).min(servers_max)),
                    ],
                    orange.mix(0.35).filled(),
                )
            })),
        )?
        .label("moves")
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 14, y + 5)], orange.mix(0.35).filled())
        });
        drawn(chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.hour + 0.5, p.static_servers_on)),
            BLACK.stroke_width(1),
        )))?
        .label("static placement")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK));
        drawn(chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.hour + 0.5, p.servers_on)),
            green.stroke_width(3),
        )))?
        .label(policy.to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], green.stroke_width(3)));
        drawn(
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT, 14))
                .draw(),
        )?;
        drawn(root.present())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_plot_has_both_panels_and_the_legend() {
        let points: Vec<DayPoint> = (0..24)
            .map(|h| DayPoint {
                hour: f64::from(h),
                load_cores: 0.2 + 0.01 * f64::from(h),
                servers_on: if h < 8 { 1.0 } else { 2.0 },
                static_servers_on: 3.0,
                moves: u64::from(h == 8),
            })
            .collect();
        let svg = day_svg(&points, "consolidate").unwrap();
        assert!(svg.starts_with("<svg"));
        for t in [
            "measured load",
            "servers on",
            "static placement",
            "consolidate",
        ] {
            assert!(svg.contains(t), "{t} missing");
        }
    }
}
