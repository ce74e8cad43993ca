//! Small SVG charts written by hand (no plotting dependency): bars per path for the
//! line-rate benchmark, lines of cost versus rules and masks for `bench datapath`, and
//! throughput over time with a migration's phases shaded for the demo.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context;

/// One path's figures for the line-rate plots.
pub struct PathFigures {
    /// Path name.
    pub path: String,
    /// 64-byte Mpps, one sender thread.
    pub mpps_1: Option<f64>,
    /// 64-byte Mpps, two sender threads.
    pub mpps_2: Option<f64>,
    /// 1500-byte Gbit/s.
    pub gbps_1500: Option<f64>,
    /// TCP Gbit/s.
    pub tcp_gbps: Option<f64>,
}

const W: f64 = 860.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 80.0;
const COLOURS: [&str; 8] = [
    "#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum and tick step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn frame(svg: &mut String, title: &str, y_label: &str, y_max: f64, step: f64) {
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        esc(title),
        TOP + (H - TOP - BOTTOM) / 2.0,
        esc(y_label)
    );
    let plot_h = H - TOP - BOTTOM;
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let y = TOP + plot_h * (1.0 - v / y_max);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            trim(v)
        );
        v += step;
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn legend(svg: &mut String, names: &[&str]) {
    for (i, n) in names.iter().enumerate() {
        let x = LEFT + 10.0 + i as f64 * 200.0;
        let y = H - 18.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            x + 16.0,
            esc(n)
        );
    }
}

/// A grouped bar chart: one group per label, one bar per series (missing values are
/// left out).
#[must_use]
pub fn bar_chart(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[(&str, Vec<Option<f64>>)],
) -> String {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let (y_max, step) = axis(max);
    let mut svg = String::new();
    frame(&mut svg, title, y_label, y_max, step);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let gw = plot_w / groups.len().max(1) as f64;
    let bw = gw * 0.8 / series.len().max(1) as f64;
    for (g, label) in groups.iter().enumerate() {
        let gx = LEFT + g as f64 * gw;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + gw / 2.0,
            H - BOTTOM + 16.0,
            esc(label)
        );
        for (s, (_, values)) in series.iter().enumerate() {
            let Some(v) = values.get(g).copied().flatten() else {
                continue;
            };
            let h = plot_h * v / y_max;
            let x = gx + gw * 0.1 + s as f64 * bw;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {v:.3}</title></rect>"#,
                H - BOTTOM - h,
                bw * 0.95,
                COLOURS[s % COLOURS.len()],
                esc(label)
            );
        }
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    legend(&mut svg, &names);
    svg.push_str("</svg>\n");
    svg
}

/// An x axis tick label: value `v` at pixel `at`.
fn x_tick(svg: &mut String, at: f64, v: f64) {
    let _ = writeln!(
        svg,
        r#"<text x="{at:.1}" y="{}" text-anchor="middle">{}</text>"#,
        H - BOTTOM + 16.0,
        trim(v)
    );
}

/// The x axis label, and one polyline per series (stroke `width`).
fn x_axis_label_and_lines(
    svg: &mut String,
    x_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    px: &dyn Fn(f64) -> f64,
    py: &dyn Fn(f64) -> f64,
    width: f64,
) {
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        W / 2.0,
        H - BOTTOM + 36.0,
        esc(x_label)
    );
    for (i, (_, points)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let d: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="{width}"/>"#,
            d.join(" ")
        );
    }
}

/// A line chart over a log10 x axis: each series is (name, points).
#[must_use]
pub fn log_line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_lo, mut x_hi, mut y_hi) = (f64::MAX, f64::MIN, 0.0f64);
    for (x, y) in pts {
        x_lo = x_lo.min(x.log10());
        x_hi = x_hi.max(x.log10());
        y_hi = y_hi.max(*y);
    }
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    let (y_max, step) = axis(y_hi);
    let mut svg = String::new();
    frame(&mut svg, title, y_label, y_max, step);
    let plot_w = W - LEFT - RIGHT - 20.0;
    let plot_h = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + 10.0 + plot_w * (x.log10() - x_lo) / (x_hi - x_lo);
    let py = |y: f64| TOP + plot_h * (1.0 - y / y_max);
    let mut e = x_lo.floor();
    while e <= x_hi.ceil() {
        let x = 10f64.powf(e);
        if e >= x_lo - 1e-9 && e <= x_hi + 1e-9 {
            x_tick(&mut svg, px(x), x);
        }
        e += 1.0;
    }
    x_axis_label_and_lines(&mut svg, x_label, series, &px, &py, 2.0);
    for (i, (_, points)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        for (x, y) in points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{x}: {y:.1}</title></circle>"#,
                px(*x),
                py(*y)
            );
        }
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    legend(&mut svg, &names);
    svg.push_str("</svg>\n");
    svg
}

/// A shaded interval of a timeline: label, start and end (seconds), colour.
pub struct Band {
    /// Label written above the band.
    pub label: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Fill colour.
    pub colour: &'static str,
}

/// A line chart over time (x: seconds from 0, linear), each series (name, points),
/// with shaded, labelled bands (a band narrower than 2 pixels is drawn 2 pixels wide,
/// so a phase of a few milliseconds stays visible). Values above `y_cap` (if given)
/// are drawn at the cap, so one burst does not flatten the rest.
#[must_use]
pub fn timeline_chart(
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    bands: &[Band],
    y_cap: Option<f64>,
) -> String {
    let cap = y_cap.filter(|c| *c > 0.0).unwrap_or(f64::INFINITY);
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, p)| (n.clone(), p.iter().map(|(x, y)| (*x, y.min(cap))).collect()))
        .collect();
    let series = series.as_slice();
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_hi, mut y_hi) = (0.0f64, 0.0f64);
    for (x, y) in pts {
        x_hi = x_hi.max(*x);
        y_hi = y_hi.max(*y);
    }
    for b in bands {
        x_hi = x_hi.max(b.end);
    }
    let (x_max, x_step) = axis(x_hi);
    let (y_max, step) = axis(y_hi * 1.15);
    let mut svg = String::new();
    frame(&mut svg, title, y_label, y_max, step);
    let plot_w = W - LEFT - RIGHT - 20.0;
    let plot_h = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + 10.0 + plot_w * x / x_max;
    let py = |y: f64| TOP + plot_h * (1.0 - y / y_max);
    for (i, b) in bands.iter().enumerate() {
        let (x0, x1) = (px(b.start), px(b.end));
        let w = (x1 - x0).max(2.0);
        let _ = writeln!(
            svg,
            r#"<rect x="{x0:.1}" y="{TOP}" width="{w:.1}" height="{plot_h}" fill="{}" fill-opacity="0.35"><title>{}: {:.3}-{:.3} s</title></rect>"#,
            b.colour,
            esc(&b.label),
            b.start,
            b.end
        );
        // Labels are staggered over four rows so that adjacent short phases stay legible.
        let row = (i % 4) as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            x0 + 2.0,
            TOP + 12.0 + 12.0 * row,
            esc(&b.label)
        );
    }
    let mut x = 0.0;
    while x <= x_max + x_step / 2.0 {
        x_tick(&mut svg, px(x), x);
        x += x_step;
    }
    x_axis_label_and_lines(&mut svg, "seconds", series, &px, &py, 1.5);
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    legend(&mut svg, &names);
    svg.push_str("</svg>\n");
    svg
}

/// Write an SVG document as `out/name`; the path written.
pub fn write_svg(out: &Path, name: &str, svg: &str) -> anyhow::Result<PathBuf> {
    write(out, name, svg)
}

fn write(out: &Path, name: &str, svg: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let p = out.join(name);
    std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// Mpps and Gbit/s per path.
pub fn linerate_plots(out: &Path, figs: &[PathFigures]) -> anyhow::Result<Vec<PathBuf>> {
    let groups: Vec<String> = figs.iter().map(|f| f.path.clone()).collect();
    let mpps = bar_chart(
        "64-byte UDP frames delivered (lime bench linerate)",
        "Mpps",
        &groups,
        &[
            ("1 sender thread", figs.iter().map(|f| f.mpps_1).collect()),
            ("2 sender threads", figs.iter().map(|f| f.mpps_2).collect()),
        ],
    );
    let gbps = bar_chart(
        "Throughput (lime bench linerate)",
        "Gbit/s",
        &groups,
        &[
            ("1500-byte UDP", figs.iter().map(|f| f.gbps_1500).collect()),
            ("TCP (iperf3)", figs.iter().map(|f| f.tcp_gbps).collect()),
        ],
    );
    Ok(vec![
        write(out, "linerate-mpps.svg", &mpps)?,
        write(out, "linerate-gbps.svg", &gbps)?,
    ])
}

/// Cost per packet versus rules, one line per (masks, cache), from `lime bench datapath
/// --json` output (the program-only, rule-hit samples of LIME).
pub fn datapath_plot(out: &Path, json_lines: &str) -> anyhow::Result<PathBuf> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for line in json_lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).context("a datapath JSON line")?;
        let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        if s("program") != "lime" || s("mode") != "program" || s("traffic") != "rule-hit" {
            continue;
        }
        let (Some(rules), Some(masks), Some(ns)) = (n("rules"), n("masks"), n("ns_per_packet"))
        else {
            continue;
        };
        let name = format!("{masks} masks, cache {}", s("cache"));
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, p)) => p.push((rules, ns)),
            None => series.push((name, vec![(rules, ns)])),
        }
    }
    anyhow::ensure!(
        !series.is_empty(),
        "no `lime bench datapath --json` samples of LIME in the input"
    );
    for (_, p) in &mut series {
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let svg = log_line_chart(
        "Per-packet cost of the XDP program (lime bench datapath)",
        "rules",
        "ns per packet",
        &series,
    );
    write(out, "datapath-cost.svg", &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_round_and_covers_the_maximum() {
        for m in [0.3, 1.0, 5.9, 17.0, 480.0] {
            let (top, step) = axis(m);
            assert!(top >= m && top < m * 2.6 + step, "{m}: {top} {step}");
        }
        assert_eq!(axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn charts_are_svg_with_every_value() {
        let svg = bar_chart(
            "t",
            "y",
            &["a".into(), "b<".into()],
            &[
                ("s", vec![Some(1.0), None]),
                ("u", vec![Some(2.5), Some(0.5)]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 2,
            "3 bars + 2 legend boxes"
        );
        assert!(svg.contains("b&lt;"));
        let lines = log_line_chart(
            "t",
            "x",
            "y",
            &[("m".into(), vec![(1.0, 3.0), (1000.0, 4.0)])],
        );
        assert_eq!(lines.matches("<circle").count(), 2);
        let t = timeline_chart(
            "t",
            "pps",
            &[("rx".into(), vec![(0.0, 10.0), (0.5, 0.0), (1.0, 10.0)])],
            &[Band {
                label: "clone s1→s3".into(),
                start: 0.4,
                end: 0.401,
                colour: "#4477aa",
            }],
            Some(5.0),
        );
        assert!(t.starts_with("<svg") && t.ends_with("</svg>\n"));
        assert!(t.contains("clone s1→s3") && t.contains("<polyline"));
        assert!(
            t.contains(r#"width="2.0""#),
            "a 1 ms band is drawn 2 px wide"
        );
    }
}
