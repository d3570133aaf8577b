//! Dependency-free SVG plots of a demo run: a Gantt timeline of each migration's phases with
//! the interruption shaded, round-trip delay over time with lost packets and migrations
//! marked, and the gaps between video frames.
//!
//! The writers are pure: data in, SVG text out.

use crate::report::{DemoReport, Experiment, Method, PhaseReport};
use ferry_migrate::timeline as tl;
use std::fmt::Write as _;

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

fn method_colour(m: Method) -> &'static str {
    match m {
        Method::Legacy => "#d62728",
        Method::Mbb => "#2ca02c",
    }
}

/// Escapes text for XML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if ((c as u32) < 0x20 && c != '\n' && c != '\t')
                || c == '\u{fffe}'
                || c == '\u{ffff}' => {}
            c => o.push(c),
        }
    }
    o
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

fn header(s: &mut String, w: f64, h: f64, title: &str) {
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{w:.0}" height="{h:.0}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.0}" y="20" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"##,
        w / 2.0,
        esc(title)
    );
}

/// One block of rows in the Gantt chart.
struct Group {
    title: String,
    colour: &'static str,
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
            colour: "#555555",
            phases,
            probe_gap: None,
        });
    }
    groups
}

/// Gantt chart: one row per phase of each migration, bars at start and duration on a
/// common ms axis; the span of the phases that interrupt service is shaded red, the probe's
/// measured gap (if any) outlined in dashes.
pub fn timeline_svg(report: &DemoReport) -> String {
    let label_w = 360.0;
    let plot_w = 560.0;
    let right = 70.0;
    let row_h = 18.0;
    let top = 40.0;
    let groups = gantt_groups(report);
    let rows: usize = groups.iter().map(|g| 1 + g.phases.len().max(1)).sum();
    let max_ms = groups
        .iter()
        .flat_map(|g| g.phases.iter().map(|p| p.start_ms + p.duration_ms))
        .fold(1.0, f64::max);
    let step = nice_step(max_ms, 8.0);
    let axis_max = (max_ms / step).ceil() * step;
    let w = label_w + plot_w + right;
    let h = top + rows as f64 * row_h + 70.0;
    let x = |ms: f64| label_w + (ms.clamp(0.0, axis_max) / axis_max) * plot_w;
    let mut s = String::new();
    header(
        &mut s,
        w,
        h,
        "Migration phases (ms from the start of each migration)",
    );
    let bottom = top + rows as f64 * row_h;
    // Grid and axis.
    let mut t = 0.0;
    while t <= axis_max + step / 2.0 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{top:.1}" x2="{0:.1}" y2="{bottom:.1}" stroke="#dddddd"/><text x="{0:.1}" y="{1:.1}" text-anchor="middle">{2}</text>"##,
            x(t),
            bottom + 15.0,
            t
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">ms</text>"##,
        label_w + plot_w / 2.0,
        bottom + 32.0
    );
    let mut y = top;
    {
        for g in &groups {
            let group_rows = g.phases.len().max(1) as f64;
            let gy = y + row_h;
            // Interruption window: first to last interrupting phase.
            let intr: Vec<_> = g.phases.iter().filter(|p| p.interrupts_service).collect();
            if let (Some(a), Some(b)) = (
                intr.iter().map(|p| p.start_ms).reduce(f64::min),
                intr.iter()
                    .map(|p| p.start_ms + p.duration_ms)
                    .reduce(f64::max),
            ) {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{gy:.1}" width="{:.1}" height="{:.1}" fill="#ffcccc" opacity="0.6"><title>service interrupted {:.0} ms</title></rect>"##,
                    x(a),
                    (x(b) - x(a)).max(1.0),
                    group_rows * row_h,
                    b - a
                );
            }
            if let Some([a, b]) = g.probe_gap {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{gy:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#7f0000" stroke-dasharray="4 3"><title>probe gap {:.0} ms</title></rect>"##,
                    x(a),
                    (x(b) - x(a)).max(1.0),
                    group_rows * row_h,
                    b - a
                );
            }
            let _ = writeln!(
                s,
                r##"<text x="6" y="{:.1}" font-weight="bold" fill="{}">{}</text>"##,
                y + 13.0,
                g.colour,
                esc(&g.title)
            );
            y += row_h;
            for p in &g.phases {
                let fill = if !p.ok {
                    "#7f7f7f"
                } else if p.interrupts_service {
                    "#d62728"
                } else {
                    "#1f77b4"
                };
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                    label_w - 6.0,
                    y + 13.0,
                    esc(&p.name)
                );
                let x0 = x(p.start_ms);
                let x1 = x(p.start_ms + p.duration_ms);
                let _ = writeln!(
                    s,
                    r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}: {:.0} ms at {:.0} ms</title></rect>"##,
                    y + 3.0,
                    (x1 - x0).max(1.5),
                    row_h - 6.0,
                    esc(&p.name),
                    p.duration_ms,
                    p.start_ms
                );
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333333">{:.0}</text>"##,
                    x1.max(x0 + 1.5) + 3.0,
                    y + 13.0,
                    p.duration_ms
                );
                y += row_h;
            }
            if g.phases.is_empty() {
                y += row_h;
            }
        }
    }
    // Legend.
    let ly = bottom + 48.0;
    let legend = [
        ("#1f77b4", "phase, service continues"),
        ("#d62728", "phase that interrupts service"),
        ("#ffcccc", "interruption window"),
        ("#7f7f7f", "failed phase"),
    ];
    let mut lx = 10.0;
    for (c, t) in legend {
        let _ = writeln!(
            s,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            ly - 10.0,
            lx + 16.0,
            ly,
            esc(t)
        );
        lx += 20.0 + t.len() as f64 * 6.8;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="none" stroke="#7f0000" stroke-dasharray="4 3"/><text x="{:.1}" y="{ly:.1}">probe gap</text>"##,
        ly - 10.0,
        lx + 16.0
    );
    s.push_str("</svg>\n");
    s
}

/// Draws the migration spans (shaded, with start/end lines and labels) for an x mapping.
fn draw_marks(s: &mut String, marks: &[Mark], x: &dyn Fn(f64) -> f64, top: f64, bottom: f64) {
    for (i, m) in marks.iter().enumerate() {
        let c = method_colour(m.method);
        let (a, b) = (x(m.start_ms), x(m.end_ms));
        let _ = writeln!(
            s,
            r##"<rect x="{a:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{c}" opacity="0.10"/><line x1="{a:.1}" y1="{top:.1}" x2="{a:.1}" y2="{bottom:.1}" stroke="{c}" stroke-width="1.2"/><line x1="{b:.1}" y1="{top:.1}" x2="{b:.1}" y2="{bottom:.1}" stroke="{c}" stroke-dasharray="3 3"/>"##,
            (b - a).max(0.5),
            bottom - top
        );
        // Stagger labels so neighbours do not overlap.
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="{c}">{}</text>"##,
            a + 3.0,
            top + 12.0 + (i % 2) as f64 * 13.0,
            esc(&m.label)
        );
    }
}

/// Round-trip time over time (log scale) with lost packets as red ticks under the axis and
/// the migrations marked. `pts` are `(send time ms since origin, rtt ms or None if lost)`.
pub fn delay_svg(title: &str, pts: &[(f64, Option<f64>)], marks: &[Mark]) -> String {
    let (w, h) = (960.0, 380.0);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, h - 70.0);
    let t_min = pts
        .iter()
        .map(|p| p.0)
        .chain(marks.iter().map(|m| m.start_ms))
        .fold(f64::INFINITY, f64::min);
    let t_max = pts
        .iter()
        .map(|p| p.0)
        .chain(marks.iter().map(|m| m.end_ms))
        .fold(f64::NEG_INFINITY, f64::max);
    let (t_min, t_max) = if t_min.is_finite() && t_max > t_min {
        (t_min, t_max)
    } else {
        (0.0, 1000.0)
    };
    let rtts: Vec<f64> = pts
        .iter()
        .filter_map(|p| p.1)
        .filter(|r| *r > 0.0 && r.is_finite())
        .collect();
    let lo = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (d0, d1) = if lo.is_finite() && hi.is_finite() {
        let d0 = lo.log10().floor();
        let d1 = hi.log10().ceil().max(d0 + 1.0);
        (d0, d1)
    } else {
        (-2.0, 3.0)
    };
    let x = |t: f64| left + (t - t_min) / (t_max - t_min) * (w - left - right);
    let y = |r: f64| {
        let l = r.max(10f64.powf(d0)).log10();
        bottom - (l - d0) / (d1 - d0) * (bottom - top)
    };
    let mut s = String::new();
    header(&mut s, w, h, title);
    // Axes and grid.
    let mut d = d0;
    while d <= d1 + 0.01 {
        let v = 10f64.powf(d);
        let _ = writeln!(
            s,
            r##"<line x1="{left:.1}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#dddddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            y(v),
            w - right,
            left - 6.0,
            y(v) + 4.0,
            fmt_num(v)
        );
        // Minor ticks at 2 and 5 × the decade when there are few decades.
        if d1 - d0 <= 3.0 && d < d1 {
            for k in [2.0, 5.0] {
                let v = k * 10f64.powf(d);
                let _ = writeln!(
                    s,
                    r##"<line x1="{left:.1}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#f0f0f0"/><text x="{2:.1}" y="{3:.1}" text-anchor="end" font-size="10" fill="#666666">{4}</text>"##,
                    y(v),
                    w - right,
                    left - 6.0,
                    y(v) + 4.0,
                    fmt_num(v)
                );
            }
        }
        d += 1.0;
    }
    let span_s = (t_max - t_min) / 1000.0;
    let step = nice_step(span_s, 10.0);
    let mut t = (t_min / 1000.0 / step).ceil() * step;
    while t * 1000.0 <= t_max {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{bottom:.1}" x2="{0:.1}" y2="{1:.1}" stroke="#000000"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{3}</text>"##,
            x(t * 1000.0),
            bottom + 4.0,
            bottom + 30.0,
            fmt_num(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left:.1}" y1="{top:.1}" x2="{left:.1}" y2="{bottom:.1}" stroke="#000000"/><line x1="{left:.1}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#000000"/>"##,
        w - right
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since the run started (s)</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">round-trip time (ms, log)</text>"##,
        (left + w - right) / 2.0,
        h - 22.0,
        (top + bottom) / 2.0
    );
    draw_marks(&mut s, marks, &x, top, bottom);
    // RTT: one vertical min–max segment per pixel column keeps 1 ms probes readable.
    let cols = (w - left - right) as usize;
    let mut bucket: Vec<Option<(f64, f64)>> = vec![None; cols + 1];
    for &(t, r) in pts {
        if let Some(r) = r.filter(|r| r.is_finite()) {
            let i = (x(t) - left).round().clamp(0.0, cols as f64) as usize;
            if let Some(b) = bucket.get_mut(i) {
                *b = Some(b.map_or((r, r), |(a, c)| (a.min(r), c.max(r))));
            }
        }
    }
    let mut path = String::new();
    if pts.len() <= cols {
        // Sparse (ping): a line through the answered requests, broken at each loss.
        let mut pen_down = false;
        for &(t, r) in pts {
            match r.filter(|r| r.is_finite()) {
                Some(r) => {
                    let _ = write!(
                        path,
                        "{}{:.1} {:.1}",
                        if pen_down { "L" } else { "M" },
                        x(t),
                        y(r)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        for &(t, r) in pts {
            if let Some(r) = r.filter(|r| r.is_finite()) {
                let _ = write!(path, "M{:.1} {:.1}h0.1", x(t), y(r));
            }
        }
    } else {
        for (i, b) in bucket.iter().enumerate() {
            if let Some((a, c)) = b {
                let px = left + i as f64;
                let _ = write!(path, "M{px:.1} {:.1}V{:.1}", y(*a), y(*c).min(y(*a) - 1.0));
            }
        }
    }
    let _ = writeln!(
        s,
        r##"<path d="{path}" stroke="#1f77b4" stroke-width="1.2" stroke-linecap="round" fill="none"/>"##
    );
    // Lost packets: runs merged into one red band under the axis.
    let mut lost = 0usize;
    let mut run: Option<(f64, f64)> = None;
    let mut ticks = String::new();
    let flush = |ticks: &mut String, r: (f64, f64)| {
        let _ = writeln!(
            ticks,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="10" fill="#d62728"/>"##,
            x(r.0) - 0.75,
            bottom + 6.0,
            (x(r.1) - x(r.0)).max(1.5)
        );
    };
    for &(t, r) in pts {
        if r.is_none() {
            lost += 1;
            run = Some(run.map_or((t, t), |(a, _)| (a, t)));
        } else if let Some(rr) = run.take() {
            flush(&mut ticks, rr);
        }
    }
    if let Some(rr) = run {
        flush(&mut ticks, rr);
    }
    s.push_str(&ticks);
    let _ = writeln!(
        s,
        r##"<rect x="{left:.1}" y="{:.1}" width="12" height="10" fill="#d62728"/><text x="{:.1}" y="{:.1}">lost ({lost} of {})</text><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#1f77b4" stroke-width="2"/><text x="{:.1}" y="{:.1}">round-trip time</text>"##,
        h - 12.0,
        left + 16.0,
        h - 3.0,
        pts.len(),
        left + 170.0,
        h - 7.0,
        left + 190.0,
        h - 7.0,
        left + 196.0,
        h - 3.0
    );
    s.push_str("</svg>\n");
    s
}

/// Gap before each video frame over time (linear ms), with the migrations marked.
/// `frames_ms` are frame arrival times, ms since the origin.
pub fn frame_gap_svg(frames_ms: &[f64], marks: &[Mark]) -> String {
    frame_gap_svg_runs(&[frames_ms], marks)
}

/// As [`frame_gap_svg`] for several runs one after the other on the same axis (one per
/// method): the time between one run's last frame and the next run's first is no gap.
pub fn frame_gap_svg_runs(runs: &[&[f64]], marks: &[Mark]) -> String {
    let frames_ms: Vec<f64> = runs.iter().flat_map(|r| r.iter().copied()).collect();
    let frames_ms = frames_ms.as_slice();
    let pts: Vec<(f64, f64)> = runs
        .iter()
        .flat_map(|r| {
            r.windows(2).filter_map(|w| match w {
                [a, b] => Some((*b, b - a)),
                _ => None,
            })
        })
        .collect();
    let (w, h) = (960.0, 340.0);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, h - 60.0);
    let t_min = frames_ms
        .iter()
        .chain(marks.iter().map(|m| &m.start_ms))
        .copied()
        .fold(f64::INFINITY, f64::min);
    let t_max = frames_ms
        .iter()
        .chain(marks.iter().map(|m| &m.end_ms))
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let (t_min, t_max) = if t_min.is_finite() && t_max > t_min {
        (t_min, t_max)
    } else {
        (0.0, 1000.0)
    };
    let g_max = pts.iter().map(|p| p.1).fold(100.0, f64::max);
    let g_step = nice_step(g_max, 6.0);
    let g_axis = (g_max / g_step).ceil() * g_step;
    let x = |t: f64| left + (t - t_min) / (t_max - t_min) * (w - left - right);
    let y = |g: f64| bottom - g.clamp(0.0, g_axis) / g_axis * (bottom - top);
    let mut s = String::new();
    header(&mut s, w, h, "Video: gap before each frame");
    let mut g = 0.0;
    while g <= g_axis + g_step / 2.0 {
        let _ = writeln!(
            s,
            r##"<line x1="{left:.1}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#dddddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            y(g),
            w - right,
            left - 6.0,
            y(g) + 4.0,
            fmt_num(g)
        );
        g += g_step;
    }
    let step = nice_step((t_max - t_min) / 1000.0, 10.0);
    let mut t = (t_min / 1000.0 / step).ceil() * step;
    while t * 1000.0 <= t_max {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            x(t * 1000.0),
            bottom + 18.0,
            fmt_num(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left:.1}" y1="{top:.1}" x2="{left:.1}" y2="{bottom:.1}" stroke="#000000"/><line x1="{left:.1}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#000000"/><text x="{:.1}" y="{:.1}" text-anchor="middle">time since the run started (s)</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">gap before frame (ms)</text>"##,
        w - right,
        (left + w - right) / 2.0,
        h - 14.0,
        (top + bottom) / 2.0
    );
    draw_marks(&mut s, marks, &x, top, bottom);
    let mut path = String::new();
    for (t, gap) in &pts {
        let _ = write!(path, "M{:.1} {:.1}V{:.1}", x(*t), bottom, y(*gap));
    }
    let _ = writeln!(
        s,
        r##"<path d="{path}" stroke="#9467bd" stroke-width="1" fill="none"/>"##
    );
    if let Some((t, gap)) = pts
        .iter()
        .copied()
        .reduce(|a, b| if b.1 > a.1 { b } else { a })
    {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#9467bd">longest {:.0} ms</text>"##,
            x(t) + 4.0,
            y(gap) + 12.0,
            gap
        );
    }
    s.push_str("</svg>\n");
    s
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
