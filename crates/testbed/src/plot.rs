//! SVG plots of a demo run, drawn with `plotters`: a Gantt timeline of each migration's phases
//! with the interruption shaded, round-trip delay over time with lost packets and migrations
//! marked, and the gaps between video frames.
//!
//! The writers are pure: data in, SVG text out. Text is written as SVG `<text>` in a sans
//! font family, so drawing needs no font files (plotters' `ttf` feature is off).

use crate::report::{DemoReport, Experiment, Method, PhaseReport};
use ferry_migrate::timeline as tl;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Failure drawing a plot (plotters reports its backend's errors as text).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the plot: {0}")]
pub struct PlotError(String);

fn drawn<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, PlotError> {
    r.map_err(|e| PlotError(e.to_string()))
}

/// A migration's span on the run's time axis (ms since the origin).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Text shown at the top.
    pub label: String,
    /// Start, ms since origin.
    pub start_ms: f64,
    /// End, ms since origin.
    pub end_ms: f64,
    /// Which method (sets the colour).
    pub method: Method,
}

/// The spans of all migrations of a report.
pub fn migration_marks(report: &DemoReport) -> Vec<Mark> {
    report
        .methods
        .iter()
        .flat_map(|m| {
            m.migrations.iter().map(move |g| Mark {
                label: if g.label.starts_with(short(m.method)) {
                    g.label.clone()
                } else {
                    format!("{} {}", short(m.method), g.label)
                },
                start_ms: g.start_ms,
                end_ms: g.start_ms + g.total_ms,
                method: m.method,
            })
        })
        .collect()
}

fn short(m: Method) -> &'static str {
    match m {
        Method::Legacy => "legacy",
        Method::Mbb => "mbb",
    }
}

const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const RED_: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const GREEN_: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const GREY: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);
const DARK_GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);
const PINK: RGBColor = RGBColor(0xff, 0xcc, 0xcc);
const DARK_RED: RGBColor = RGBColor(0x7f, 0x00, 0x00);
const PURPLE: RGBColor = RGBColor(0x94, 0x67, 0xbd);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
const FONT: &str = "sans-serif";

fn method_colour(m: Method) -> RGBColor {
    match m {
        Method::Legacy => RED_,
        Method::Mbb => GREEN_,
    }
}

/// Text as it may go into the SVG: plotters escapes markup but keeps control characters,
/// which XML forbids.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|&c| !(((c as u32) < 0x20 && c != '\t') || c == '\u{fffe}' || c == '\u{ffff}'))
        .collect()
}

/// A tick step of 1, 2 or 5 × 10^k giving about `target` ticks over `span`.
pub fn nice_step(span: f64, target: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Short number text: `0.01`, `5`, `1000`, `2.5`.
fn fmt_num(v: f64) -> String {
    if v >= 1.0 && (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn text(size: f64, colour: RGBColor) -> TextStyle<'static> {
    let mut style = TextStyle::from((FONT, size).into_font());
    style.color = colour.to_backend_color();
    style
}

/// Draws into a fresh SVG of `w`×`h`: white background, bold title, then `body` on the area
/// under the title.
fn svg(
    w: u32,
    h: u32,
    title: &str,
    body: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        drawn(root.fill(&WHITE))?;
        let title_style = TextStyle::from((FONT, 19).into_font().style(FontStyle::Bold));
        let area = drawn(root.titled(&clean(title), title_style))?;
        body(&area)?;
        drawn(root.present())?;
    }
    Ok(out)
}

/// One block of rows in the Gantt chart.
struct Group {
    title: String,
    colour: RGBColor,
    phases: Vec<PhaseReport>,
    /// The probe's gap, ms from the group's start.
    probe_gap: Option<[f64; 2]>,
}

/// The migrations of a report, then (chapter 3 runs) the thesis' table 3-4 as a reference.
fn gantt_groups(report: &DemoReport) -> Vec<Group> {
    let mut groups: Vec<Group> = report
        .methods
        .iter()
        .flat_map(|m| {
            m.migrations.iter().map(move |g| Group {
                title: format!(
                    "{} — {} ({}): total {:.0} ms",
                    m.method.title(),
                    g.label,
                    g.route,
                    g.total_ms
                ),
                colour: method_colour(m.method),
                phases: g.phases.clone(),
                probe_gap: g
                    .probe_gap_window_ms
                    .map(|[a, b]| [a - g.start_ms, b - g.start_ms]),
            })
        })
        .collect();
    if report.experiment == Experiment::Ping && !report.thesis.table_3_4.is_empty() {
        let mut at = 0.0;
        let phases = report
            .thesis
            .table_3_4
            .iter()
            .map(|r| {
                let p = PhaseReport {
                    name: r.name.clone(),
                    start_ms: at,
                    duration_ms: r.ms,
                    ok: true,
                    // The thesis counts eth3, link and resync as the interruption (1855 ms).
                    interrupts_service: [tl::PHASE_ETH3, tl::PHASE_LINK, tl::PHASE_RESYNC]
                        .contains(&r.name.as_str()),
                };
                at += r.ms;
                p
            })
            .collect();
        groups.push(Group {
            title: format!(
                "thesis, table 3-4 (USRP N210, Python): total {:.0} ms",
                report.thesis.total_ms
            ),
            colour: DARK_GREY,
            phases,
            probe_gap: None,
        });
    }
    groups
}

/// Legend entries drawn by hand under a chart: a swatch (filled, or dashed outline) and text.
fn legend_row(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    y: i32,
    entries: &[(RGBColor, bool, &str)],
) -> Result<(), PlotError> {
    let mut x = 10;
    for &(c, filled, t) in entries {
        if filled {
            drawn(area.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], c.filled())))?;
        } else {
            let (x1, y1) = (x + 12, y + 12);
            drawn(area.draw(&DashedPathElement::new(
                [(x, y), (x1, y), (x1, y1), (x, y1), (x, y)],
                3,
                2,
                c.stroke_width(1),
            )))?;
        }
        drawn(area.draw(&Text::new(
            t.to_string(),
            (x + 16, y + 1),
            text(15.0, BLACK).pos(Pos::new(HPos::Left, VPos::Top)),
        )))?;
        x += 28 + (t.len() as i32) * 7;
    }
    Ok(())
}

/// Gantt chart: one row per phase of each migration, bars at start and duration on a
/// common ms axis; the span of the phases that interrupt service is shaded red, the probe's
/// measured gap (if any) outlined in dashes.
pub fn timeline_svg(report: &DemoReport) -> Result<String, PlotError> {
    let groups = gantt_groups(report);
    let rows: usize = groups.iter().map(|g| 1 + g.phases.len().max(1)).sum();
    let max_ms = groups
        .iter()
        .flat_map(|g| g.phases.iter().map(|p| p.start_ms + p.duration_ms))
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let step = nice_step(max_ms, 8.0);
    let axis_max = (max_ms / step).ceil() * step;
    let (label_w, row_h) = (360u32, 18u32);
    let h = 40 + rows as u32 * row_h + 80;
    svg(
        990,
        h,
        "Migration phases (ms from the start of each migration)",
        |area| {
            let (chart_area, legend_area) = area.split_vertically(area.dim_in_pixel().1 - 28);
            let rows_f = rows.max(1) as f64;
            let mut chart = drawn(
                ChartBuilder::on(&chart_area)
                    .margin_right(70)
                    .margin_top(4)
                    .x_label_area_size(42)
                    .y_label_area_size(label_w)
                    .build_cartesian_2d(0.0..axis_max, 0.0..rows_f),
            )?;
            drawn(
                chart
                    .configure_mesh()
                    .disable_y_mesh()
                    .y_labels(0)
                    .x_labels((axis_max / step) as usize + 1)
                    .x_label_formatter(&|v| fmt_num(*v))
                    .x_desc("ms")
                    .light_line_style(WHITE)
                    .bold_line_style(GRID)
                    .label_style(text(15.0, BLACK))
                    .axis_desc_style(text(15.0, BLACK))
                    .draw(),
            )?;
            // Row i (0 at the top) spans y from rows-i-1 to rows-i.
            let top_of = |i: usize| rows_f - i as f64;
            let clamp = |ms: f64| ms.clamp(0.0, axis_max);
            let root = area;
            let mut row = 0usize;
            for g in &groups {
                let group_rows = g.phases.len().max(1);
                let (y_top, y_bottom) = (top_of(row + 1), top_of(row + 1 + group_rows));
                let intr: Vec<_> = g.phases.iter().filter(|p| p.interrupts_service).collect();
                if let (Some(a), Some(b)) = (
                    intr.iter().map(|p| p.start_ms).reduce(f64::min),
                    intr.iter()
                        .map(|p| p.start_ms + p.duration_ms)
                        .reduce(f64::max),
                ) {
                    drawn(chart.draw_series(std::iter::once(Rectangle::new(
                        [(clamp(a), y_top), (clamp(b), y_bottom)],
                        PINK.mix(0.6).filled(),
                    ))))?;
                }
                if let Some([a, b]) = g.probe_gap {
                    let (a, b) = (clamp(a), clamp(b));
                    drawn(chart.draw_series(std::iter::once(DashedPathElement::new(
                        [
                            (a, y_top),
                            (b, y_top),
                            (b, y_bottom),
                            (a, y_bottom),
                            (a, y_top),
                        ],
                        4,
                        3,
                        DARK_RED.stroke_width(1),
                    ))))?;
                }
                let (_, ty) = chart.backend_coord(&(0.0, top_of(row)));
                drawn(
                    root.draw(&Text::new(
                        clean(&g.title),
                        (6, ty - area.get_base_pixel().1 + 3),
                        TextStyle::from((FONT, 15).into_font().style(FontStyle::Bold))
                            .color(&g.colour)
                            .pos(Pos::new(HPos::Left, VPos::Top)),
                    )),
                )?;
                row += 1;
                for p in &g.phases {
                    let fill = if !p.ok {
                        GREY
                    } else if p.interrupts_service {
                        RED_
                    } else {
                        BLUE
                    };
                    let (y0, y1) = (top_of(row) - 0.17, top_of(row + 1) + 0.17);
                    let (x0, x1) = (clamp(p.start_ms), clamp(p.start_ms + p.duration_ms));
                    // A bar at least 2 px wide, so 1 ms phases stay visible.
                    let min_w = axis_max * 2.0 / 560.0;
                    drawn(chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x1.max(x0 + min_w), y1)],
                        fill.filled(),
                    ))))?;
                    let (px, py) = chart.backend_coord(&(x1.max(x0 + min_w), top_of(row)));
                    let base = area.get_base_pixel();
                    drawn(root.draw(&Text::new(
                        fmt_num(p.duration_ms.round()),
                        (px - base.0 + 3, py - base.1 + 3),
                        text(13.0, DARK_GREY).pos(Pos::new(HPos::Left, VPos::Top)),
                    )))?;
                    drawn(root.draw(&Text::new(
                        clean(&p.name),
                        (label_w as i32 - 6, py - base.1 + 2),
                        text(15.0, BLACK).pos(Pos::new(HPos::Right, VPos::Top)),
                    )))?;
                    row += 1;
                }
                if g.phases.is_empty() {
                    row += 1;
                }
            }
            legend_row(
                &legend_area,
                6,
                &[
                    (BLUE, true, "phase, service continues"),
                    (RED_, true, "phase that interrupts service"),
                    (PINK, true, "interruption window"),
                    (GREY, true, "failed phase"),
                    (DARK_RED, false, "probe gap"),
                ],
            )
        },
    )
}

/// The time axis of a run plot in seconds, covering the samples and the marks.
fn time_axis_s(times_ms: impl Iterator<Item = f64>, marks: &[Mark]) -> (f64, f64) {
    let (lo, hi) = times_ms
        .chain(marks.iter().flat_map(|m| [m.start_ms, m.end_ms]))
        .filter(|t| t.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| {
            (a.min(t), b.max(t))
        });
    if lo.is_finite() && hi > lo {
        (lo / 1000.0, hi / 1000.0)
    } else {
        (0.0, 1.0)
    }
}

/// Draws the migration spans (shaded, a solid line at the start, a dashed one at the end, the
/// label at the top, staggered so neighbours do not overlap) on a chart whose x is seconds.
fn draw_marks<Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    marks: &[Mark],
) -> Result<(), PlotError>
where
    Y: Ranged<ValueType = f64>,
{
    let (y0, y1) = (chart.y_range().start, chart.y_range().end);
    for (i, m) in marks.iter().enumerate() {
        let c = method_colour(m.method);
        let (a, b) = (m.start_ms / 1000.0, m.end_ms / 1000.0);
        drawn(chart.draw_series([Rectangle::new([(a, y0), (b, y1)], c.mix(0.10).filled())]))?;
        drawn(chart.draw_series([PathElement::new(vec![(a, y0), (a, y1)], c.stroke_width(1))]))?;
        drawn(chart.draw_series([DashedPathElement::new(
            [(b, y0), (b, y1)],
            3,
            3,
            c.stroke_width(1),
        )]))?;
        let dy = 4 + (i % 2) as i32 * 16;
        drawn(chart.draw_series(std::iter::once(
            EmptyElement::at((a, y1))
                + Text::new(
                    clean(&m.label),
                    (3, dy),
                    text(14.0, c).pos(Pos::new(HPos::Left, VPos::Top)),
                ),
        )))?;
    }
    Ok(())
}

/// Round-trip time over time (log scale) with lost packets as a red band along the bottom
/// and the migrations marked. `pts` are `(send time ms since origin, rtt ms or None if
/// lost)`.
pub fn delay_svg(
    title: &str,
    pts: &[(f64, Option<f64>)],
    marks: &[Mark],
) -> Result<String, PlotError> {
    let (t0, t1) = time_axis_s(pts.iter().map(|p| p.0), marks);
    let rtts = pts
        .iter()
        .filter_map(|p| p.1)
        .filter(|r| *r > 0.0 && r.is_finite());
    let (lo, hi) = rtts.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), r| {
        (a.min(r), b.max(r))
    });
    let (d0, d1) = if lo.is_finite() && hi.is_finite() {
        let d0 = lo.log10().floor();
        (d0, hi.log10().ceil().max(d0 + 1.0))
    } else {
        (-2.0, 3.0)
    };
    let (r_lo, r_hi) = (10f64.powf(d0), 10f64.powf(d1));
    let lost = pts.iter().filter(|p| p.1.is_none()).count();
    svg(960, 400, title, |area| {
        let mut chart = drawn(
            ChartBuilder::on(area)
                .margin(12)
                .margin_right(24)
                .x_label_area_size(48)
                .y_label_area_size(70)
                .build_cartesian_2d(t0..t1, (r_lo..r_hi).log_scale()),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("time since the run started (s)")
                .y_desc("round-trip time (ms, log)")
                .x_labels(12)
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
                .bold_line_style(GRID)
                .label_style(text(15.0, BLACK))
                .axis_desc_style(text(15.0, BLACK))
                .draw(),
        )?;
        draw_marks(&mut chart, marks)?;
        let plot_w = chart.plotting_area().dim_in_pixel().0 as usize;
        let px_of = |t_ms: f64| {
            (((t_ms / 1000.0 - t0) / (t1 - t0)) * plot_w as f64)
                .round()
                .clamp(0.0, plot_w as f64) as usize
        };
        let rtt_style = BLUE.stroke_width(2);
        if pts.len() <= plot_w {
            // Sparse (ping): a line through the answered requests, broken at each loss, and a
            // dot on each.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for &(t, r) in pts {
                match r.filter(|r| r.is_finite() && *r > 0.0) {
                    Some(r) => runs
                        .last_mut()
                        .into_iter()
                        .for_each(|v| v.push((t / 1000.0, r))),
                    None => runs.push(Vec::new()),
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                drawn(chart.draw_series(LineSeries::new(run.iter().copied(), rtt_style)))?;
                drawn(chart.draw_series(run.iter().map(|&p| Circle::new(p, 2, BLUE.filled()))))?;
            }
        } else {
            // Dense (1 ms probe): one min–max segment per pixel column keeps it readable.
            let mut bucket: Vec<Option<(f64, f64)>> = vec![None; plot_w + 1];
            for &(t, r) in pts {
                if let Some(r) = r.filter(|r| r.is_finite() && *r > 0.0) {
                    if let Some(b) = bucket.get_mut(px_of(t)) {
                        *b = Some(b.map_or((r, r), |(a, c)| (a.min(r), c.max(r))));
                    }
                }
            }
            let col_s = (t1 - t0) / plot_w as f64;
            drawn(
                chart.draw_series(bucket.iter().enumerate().filter_map(|(i, b)| {
                    b.map(|(a, c)| {
                        let t = t0 + i as f64 * col_s;
                        PathElement::new(vec![(t, a), (t, c.max(a * 1.02))], rtt_style)
                    })
                })),
            )?
            .label("round-trip time")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        }
        if pts.len() <= plot_w {
            drawn(chart.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>()))?
                .label("round-trip time")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        }
        // Lost packets: runs merged into red bars along the bottom of the plot.
        let band_top = r_lo * 10f64.powf((d1 - d0) * 0.035);
        let mut bars: Vec<(f64, f64)> = Vec::new();
        let mut run: Option<(f64, f64)> = None;
        for &(t, r) in pts {
            if r.is_none() {
                run = Some(run.map_or((t, t), |(a, _)| (a, t)));
            } else if let Some(rr) = run.take() {
                bars.push(rr);
            }
        }
        bars.extend(run);
        let min_w = (t1 - t0) / plot_w.max(1) as f64 * 1.5;
        drawn(chart.draw_series(bars.iter().map(|&(a, b)| {
            let (a, b) = (a / 1000.0, b / 1000.0);
            Rectangle::new([(a, r_lo), (b.max(a + min_w), band_top)], RED_.filled())
        })))?
        .label(format!("lost ({lost} of {})", pts.len()))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], RED_.filled()));
        for m in [Method::Legacy, Method::Mbb] {
            if marks.iter().any(|k| k.method == m) {
                let c = method_colour(m);
                drawn(chart.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>()))?
                    .label(format!("{} migration", short(m)))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.mix(0.3).filled())
                    });
            }
        }
        drawn(
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(GREY)
                .label_font(text(14.0, BLACK))
                .draw(),
        )
    })
}

/// Gap before each video frame over time (linear ms), with the migrations marked.
/// `frames_ms` are frame arrival times, ms since the origin.
pub fn frame_gap_svg(frames_ms: &[f64], marks: &[Mark]) -> Result<String, PlotError> {
    frame_gap_svg_runs(&[frames_ms], marks)
}

/// As [`frame_gap_svg`] for several runs one after the other on the same axis (one per
/// method): the time between one run's last frame and the next run's first is no gap.
pub fn frame_gap_svg_runs(runs: &[&[f64]], marks: &[Mark]) -> Result<String, PlotError> {
    let pts: Vec<(f64, f64)> = runs
        .iter()
        .flat_map(|r| {
            r.windows(2).filter_map(|w| match w {
                [a, b] if a.is_finite() && b.is_finite() => Some((*b, b - a)),
                _ => None,
            })
        })
        .collect();
    let (t0, t1) = time_axis_s(runs.iter().flat_map(|r| r.iter().copied()), marks);
    let g_max = pts.iter().map(|p| p.1).fold(100.0, f64::max);
    let g_step = nice_step(g_max, 6.0);
    let g_axis = (g_max / g_step).ceil() * g_step;
    svg(960, 360, "Video: gap before each frame", |area| {
        let mut chart = drawn(
            ChartBuilder::on(area)
                .margin(12)
                .margin_right(24)
                .x_label_area_size(48)
                .y_label_area_size(70)
                .build_cartesian_2d(t0..t1, 0.0..g_axis),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("time since the run started (s)")
                .y_desc("gap before frame (ms)")
                .x_labels(12)
                .y_labels((g_axis / g_step) as usize + 1)
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .light_line_style(WHITE)
                .bold_line_style(GRID)
                .label_style(text(15.0, BLACK))
                .axis_desc_style(text(15.0, BLACK))
                .draw(),
        )?;
        draw_marks(&mut chart, marks)?;
        drawn(chart.draw_series(pts.iter().map(|&(t, g)| {
            PathElement::new(
                vec![(t / 1000.0, 0.0), (t / 1000.0, g.min(g_axis))],
                PURPLE.stroke_width(2),
            )
        })))?;
        if let Some((t, gap)) = pts
            .iter()
            .copied()
            .reduce(|a, b| if b.1 > a.1 { b } else { a })
        {
            drawn(chart.draw_series(std::iter::once(Text::new(
                format!("longest {gap:.0} ms"),
                (t / 1000.0, gap.min(g_axis)),
                text(14.0, PURPLE).pos(Pos::new(HPos::Left, VPos::Top)),
            ))))?;
        }
        Ok(())
    })
}

/// One method's migrations in a benchmark: `(total ms, interruption ms)` each, in order.
pub type BenchSeries = (Method, Vec<(f64, f64)>);

/// `ferry bench migrate`: every migration's total time (filled dot) and the service
/// interruption measured around it (cross) against its number, one colour per method.
pub fn bench_svg(series: &[BenchSeries]) -> Result<String, PlotError> {
    let n = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().flat_map(|&(a, b)| [a, b]))
        .filter(|v| v.is_finite())
        .fold(10.0, f64::max);
    let step = nice_step(top * 1.1, 6.0);
    let y_max = (top * 1.1 / step).ceil() * step;
    svg(
        960,
        400,
        "Migrations of the benchmark: total time and service interruption",
        |area| {
            let mut chart = drawn(
                ChartBuilder::on(area)
                    .margin(12)
                    .margin_right(24)
                    .x_label_area_size(48)
                    .y_label_area_size(70)
                    .build_cartesian_2d(0.5..n as f64 + 0.5, 0.0..y_max),
            )?;
            drawn(
                chart
                    .configure_mesh()
                    .x_desc("migration (in order, alternating server1 → server2 and back)")
                    .y_desc("ms")
                    .x_labels(n.min(20) + 1)
                    .y_labels((y_max / step) as usize + 1)
                    .x_label_formatter(&|v| {
                        if (v - v.round()).abs() < 1e-9 {
                            fmt_num(*v)
                        } else {
                            String::new()
                        }
                    })
                    .y_label_formatter(&|v| fmt_num(*v))
                    .light_line_style(WHITE)
                    .bold_line_style(GRID)
                    .label_style(text(15.0, BLACK))
                    .axis_desc_style(text(15.0, BLACK))
                    .draw(),
            )?;
            for (method, runs) in series {
                let c = method_colour(*method);
                drawn(
                    chart.draw_series(runs.iter().enumerate().map(|(i, &(t, _))| {
                        Circle::new((i as f64 + 1.0, t.min(y_max)), 5, c.filled())
                    })),
                )?
                .label(format!("{}: total", method.title()))
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, c.filled()));
                drawn(
                    chart.draw_series(runs.iter().enumerate().map(|(i, &(_, g))| {
                        Cross::new((i as f64 + 1.0, g.min(y_max)), 6, c.stroke_width(2))
                    })),
                )?
                .label(format!("{}: interruption", method.title()))
                .legend(move |(x, y)| Cross::new((x + 8, y), 6, c.stroke_width(2)));
            }
            drawn(
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::MiddleRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(GREY)
                    .label_font(text(14.0, BLACK))
                    .draw(),
            )
        },
    )
}
