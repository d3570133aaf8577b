//! SVG of BLER-vs-SNR curves for `ferry phy mimo --svg`, drawn with `plotters`: one line per
//! antenna configuration on a log BLER axis. Pure: curves in, SVG text out. Points with no
//! block error are left off (a log axis has no 0); text is SVG `<text>` in a sans font, so
//! no font files are needed.

use anyhow::anyhow;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

const FONT: &str = "sans-serif";
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x33, 0x33, 0x33),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
];

fn drawn<T, E: std::fmt::Display>(r: Result<T, E>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow!("cannot draw the plot: {e}"))
}

/// Curves (name, [(SNR dB, BLER)]) on a log BLER axis from `floor` to 1, with a dashed
/// line at the `target` BLER.
pub fn bler_svg(
    title: &str,
    curves: &[(String, Vec<(f64, f64)>)],
    floor: f64,
    target: f64,
) -> anyhow::Result<String> {
    let snrs = curves.iter().flat_map(|c| c.1.iter().map(|p| p.0));
    let (x0, x1) = snrs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
        (a.min(s), b.max(s))
    });
    let (x0, x1) = if x0.is_finite() && x1 > x0 {
        (x0, x1)
    } else {
        (0.0, 1.0)
    };
    let y0 = 10f64.powf(floor.clamp(1e-6, 0.1).log10().floor());
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (820, 520)).into_drawing_area();
        drawn(root.fill(&WHITE))?;
        let mut chart = drawn(
            ChartBuilder::on(&root)
                .caption(title, (FONT, 17))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, (y0..1.0).log_scale()),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("mean Es/N0 per RE per receive antenna (dB)")
                .y_desc("BLER (log)")
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 14))
                .draw(),
        )?;
        drawn(chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(x0, target), (x1, target)],
            5,
            4,
            RGBColor(0x88, 0x88, 0x88).stroke_width(1),
        ))))?;
        for (i, (name, pts)) in curves.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            // Lines only between neighbouring points with errors: a BLER-0 point breaks it.
            let runs: Vec<Vec<(f64, f64)>> = pts
                .split(|p| p.1 <= 0.0)
                .filter(|r| !r.is_empty())
                .map(<[_]>::to_vec)
                .collect();
            for run in &runs {
                drawn(chart.draw_series(LineSeries::new(run.clone(), c.stroke_width(2))))?;
            }
            drawn(chart.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>()))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            let dots = runs.into_iter().flatten();
            drawn(chart.draw_series(dots.map(|p| Circle::new(p, 3, c.filled()))))?;
        }
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
    fn draws_every_named_curve() {
        let curves = vec![
            ("1x1".to_string(), vec![(0.0, 0.9), (5.0, 0.3), (10.0, 0.1)]),
            (
                "2x2".to_string(),
                vec![(0.0, 0.5), (5.0, 0.01), (10.0, 0.0)],
            ),
        ];
        let svg = bler_svg("test curves", &curves, 0.001, 0.1).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("1x1") && svg.contains("2x2"));
        assert!(svg.contains("test curves"));
        // 5 plotted points (the BLER-0 one is left off).
        assert_eq!(svg.matches("<circle").count(), 5);
    }
}
