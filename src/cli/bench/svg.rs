//! The bench chart as SVG, drawn by hand: a few rectangles and labels are
//! all it takes, and no chart crate is needed for that.
//!
//! Top: the median boot timeline as one stacked bar, with the floor (bare
//! libkrun running `/bin/true`) below it on the same scale. Then one pair
//! of bars per comparison (krunbox, baseline), each pair on its own scale,
//! with the ratio and the design target.

use std::fmt::Write as _;

use super::output::Report;
use super::stats::Verdict;
use super::vm_cases::{TimelineSample, BOOT_FLOOR};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 20.0;
const BAR_LEFT: f64 = 300.0;
const BAR_WIDTH: f64 = 520.0;
const KRUNBOX: &str = "#2b6cb0";
const BASELINE: &str = "#a0aec0";
const MET: &str = "#2f855a";
const NOT_MET: &str = "#c53030";

/// Boot phases: (label, start, end, colour).
type Phase = (
    &'static str,
    fn(&TimelineSample) -> Option<f64>,
    &'static str,
);

const PHASES: [Phase; 5] = [
    ("libkrun configured", |t| t.configured_ms, "#90cdf4"),
    ("krun_start_enter", |t| t.entered_ms, "#63b3ed"),
    ("agent started (~)", |t| t.agent_started_ms, "#4299e1"),
    ("agent ready", |t| t.ready_ms, "#2b6cb0"),
    ("first exec done", |t| t.first_exec_ms, "#1a365d"),
];

/// The whole chart.
pub fn chart(report: &Report) -> String {
    let mut body = String::new();
    let mut y = 30.0;
    let m = &report.meta;
    text(&mut body, LEFT, y, 18, "bold", "krunbox bench");
    y += 20.0;
    let subtitle = format!(
        "{} · {} recorded runs per case after {} warm-up",
        m.date, m.runs, m.warmup
    );
    text(&mut body, LEFT, y, 11, "normal", &subtitle);
    y += 16.0;
    text(&mut body, LEFT, y, 11, "normal", &m.machine.describe());
    if m.machine.lab {
        y += 16.0;
        text(
            &mut body,
            LEFT,
            y,
            11,
            "normal",
            "Nested lab: QEMU emulates the CPU, so absolute times are slow; only the ratios carry over to hardware KVM.",
        );
    }
    y += 30.0;
    if !report.timelines.is_empty() {
        y = timeline(&mut body, report, y);
    }
    if !report.comparisons.is_empty() {
        text(
            &mut body,
            LEFT,
            y,
            14,
            "bold",
            "krunbox against what it replaces (medians, same run)",
        );
        y += 12.0;
        for c in &report.comparisons {
            y = comparison(&mut body, c, y);
        }
    }
    let height = y + 10.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

/// The stacked timeline bar and the floor bar; returns the next free y.
fn timeline(out: &mut String, report: &Report, mut y: f64) -> f64 {
    let title = format!(
        "Boot timeline (median of {} boots, ms after spawning the runner)",
        report.timelines.len()
    );
    text(out, LEFT, y, 14, "bold", &title);
    y += 14.0;
    let marks: Vec<(&str, f64, &str)> = PHASES
        .iter()
        .filter_map(|(label, phase, colour)| Some((*label, report.timeline_p50(*phase)?, *colour)))
        .collect();
    let floor = report
        .figures
        .iter()
        .find(|f| f.figure.id == BOOT_FLOOR)
        .and_then(|f| f.summary)
        .map(|s| s.p50);
    let end = marks
        .iter()
        .map(|m| m.1)
        .chain(floor)
        .fold(0.0, f64::max)
        .max(1e-3);
    let scale = BAR_WIDTH / end;
    text(out, LEFT, y + 15.0, 12, "normal", "krunbox boot with agent");
    let mut start = 0.0;
    for (label, at, colour) in &marks {
        let at = at.max(start);
        rect(
            out,
            BAR_LEFT + start * scale,
            y,
            (at - start) * scale,
            20.0,
            colour,
        );
        // Labels alternate above and below the bar so they do not collide.
        let x = BAR_LEFT + at * scale;
        line(out, x, y, x, y + 34.0);
        let tag = format!("{label} {at:.0}");
        text_end(
            out,
            x,
            y + 46.0 + 12.0 * (marks_index(&marks, label) % 2) as f64,
            10,
            &tag,
        );
        start = at;
    }
    y += 76.0;
    if let Some(floor) = floor {
        let label = (LEFT, 12, "bare libkrun: /bin/true, exit");
        let value = format!("{floor:.0} ms");
        labelled_bar(out, label, y, 20.0, floor * scale, BASELINE, &value);
        y += 30.0;
    }
    y + 24.0
}

fn marks_index(marks: &[(&str, f64, &str)], label: &str) -> usize {
    marks.iter().position(|m| m.0 == label).unwrap_or(0)
}

/// One comparison's pair of bars; returns the next free y.
fn comparison(out: &mut String, c: &super::stats::Comparison, mut y: f64) -> f64 {
    y += 22.0;
    text(out, LEFT, y, 12, "bold", &c.label);
    y += 8.0;
    let end = c.krunbox_p50_ms.max(c.baseline_p50_ms).max(1e-9);
    let scale = BAR_WIDTH / end;
    for (name, value, colour) in [
        ("krunbox", c.krunbox_p50_ms, KRUNBOX),
        ("baseline", c.baseline_p50_ms, BASELINE),
    ] {
        let value_text = format!("{value:.2} ms");
        labelled_bar(
            out,
            (LEFT + 10.0, 11, name),
            y,
            15.0,
            value * scale,
            colour,
            &value_text,
        );
        y += 18.0;
    }
    let mut verdict = format!("ratio {:.3}x", c.ratio);
    if let Some([lo, hi]) = c.ratio_spread {
        let _ = write!(verdict, " (spread {lo:.2}-{hi:.2}x)");
    }
    if let Some(plain) = super::output::plainly(c.ratio) {
        let _ = write!(verdict, " · {plain}");
    }
    let colour = match c.verdict() {
        Some(Verdict::Met) => MET,
        Some(Verdict::NotMet) => NOT_MET,
        _ => "#4a5568",
    };
    if let (Some(t), Some(v)) = (&c.target, c.verdict()) {
        let _ = write!(verdict, " · target: {} · {}", t.text, v.says());
    }
    let style = format!("font-size=\"11\" fill=\"{colour}\"");
    styled_text(out, LEFT + 10.0, y + 11.0, &style, &verdict);
    y + 14.0
}

/// A bar of `width` from [`BAR_LEFT`], its label (x, font size, text) on
/// the left and `value` after it.
fn labelled_bar(
    out: &mut String,
    (label_x, size, label): (f64, u32, &str),
    y: f64,
    height: f64,
    width: f64,
    colour: &str,
    value: &str,
) {
    let baseline = y + height - 4.0;
    text(out, label_x, baseline, size, "normal", label);
    rect(out, BAR_LEFT, y, width, height, colour);
    text(out, BAR_LEFT + width + 6.0, baseline, 11, "normal", value);
}

fn rect(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str) {
    let _ = writeln!(
        out,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{fill}\"/>",
        w.max(0.5)
    );
}

fn line(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#4a5568\" stroke-width=\"1\"/>"
    );
}

fn text(out: &mut String, x: f64, y: f64, size: u32, weight: &str, s: &str) {
    styled_text(
        out,
        x,
        y,
        &format!("font-size=\"{size}\" font-weight=\"{weight}\""),
        s,
    );
}

/// Text ending at `x`.
fn text_end(out: &mut String, x: f64, y: f64, size: u32, s: &str) {
    styled_text(
        out,
        x,
        y,
        &format!("font-size=\"{size}\" text-anchor=\"end\""),
        s,
    );
}

fn styled_text(out: &mut String, x: f64, y: f64, style: &str, s: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" {style}>{}</text>",
        escape(s)
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
