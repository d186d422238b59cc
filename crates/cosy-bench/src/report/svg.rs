//! SVG charts, written by hand: a grouped bar chart of the improvement of each variant over
//! vanilla (the thesis's figures: `(vanilla − variant) / vanilla`, in percent, so higher is
//! better and below zero is slower), and a line chart of the same against a burst length on
//! a logarithmic axis.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 60.0;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped for XML text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Improvement of `figure` over `baseline` in percent (positive: faster than the baseline).
pub fn improvement(baseline: f64, figure: f64) -> f64 {
    if baseline > 0.0 {
        (baseline - figure) / baseline * 100.0
    } else {
        0.0
    }
}

/// The colour of a variant: fixed for cosy's, derived from the name for the others.
pub fn color(variant: &str) -> &'static str {
    const OTHERS: [&str; 6] = [
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd",
    ];
    match variant {
        "vanilla" => "#555555",
        "direct" => "#1f77b4",
        "ring" => "#d62728",
        "auto" => "#2ca02c",
        "uring-by-hand" => "#ff7f0e",
        other => {
            let h = other
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
            OTHERS[h % OTHERS.len()]
        }
    }
}

/// A step of 1, 2 or 5 times a power of ten giving about five ticks over `span`.
fn nice_step(span: f64) -> f64 {
    let raw = (span / 5.0).max(1e-9);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// The lowest improvement drawn: a variant many times slower than vanilla would squash every
/// other bar; its bar stops here (its label still gives the value).
pub const FLOOR: f64 = -200.0;

/// The y range covering `values` (down to [`FLOOR`]) and 0, widened to whole ticks; and the
/// tick step.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let (mut lo, mut hi) = (0f64, 0f64);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v.max(FLOOR));
        hi = hi.max(v);
    }
    if hi - lo < 1e-9 {
        hi = lo + 10.0;
    }
    let step = nice_step(hi - lo);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        W / 2.0,
        escape(title)
    );
}

/// Horizontal grid lines with labels, the zero line, and the y axis title.
fn y_axis(out: &mut String, lo: f64, hi: f64, step: f64, y: &impl Fn(f64) -> f64, label: &str) {
    let mut v = lo;
    while v <= hi + step / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            y(v),
            W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            format_tick(v)
        );
        v += step;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"black\"/>\n\
         <text x=\"16\" y=\"{2:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {2:.1})\">{3}</text>",
        y(0.0),
        W - RIGHT,
        (TOP + H - BOTTOM) / 2.0,
        escape(label)
    );
}

fn format_tick(v: f64) -> String {
    if v.abs() >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn legend(out: &mut String, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{0}\" y=\"{1:.1}\" width=\"12\" height=\"12\" fill=\"{2}\"/>\
             <text x=\"{3}\" y=\"{4:.1}\">{5}</text>",
            W - RIGHT + 14.0,
            y,
            color(name),
            W - RIGHT + 32.0,
            y + 10.0,
            escape(name)
        );
    }
}

/// A grouped bar chart: for each group (a case: `warm`, `cold`), one bar per variant, its
/// height the value (percent improvement over vanilla). Bars carry `class="bar"`.
pub fn bar_chart(title: &str, y_label: &str, groups: &[(String, Vec<(String, f64)>)]) -> String {
    let mut names: Vec<String> = Vec::new();
    for (_, bars) in groups {
        for (n, _) in bars {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let (lo, hi, step) = y_range(groups.iter().flat_map(|(_, b)| b.iter().map(|x| x.1)));
    let plot_h = H - TOP - BOTTOM;
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * plot_h;
    let mut out = String::new();
    header(&mut out, title);
    y_axis(&mut out, lo, hi, step, &y, y_label);

    let plot_w = W - LEFT - RIGHT;
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / names.len().max(1) as f64).min(60.0);
    for (g, (group, bars)) in groups.iter().enumerate() {
        let gx = LEFT + group_w * g as f64;
        let start = gx + (group_w - bar_w * bars.len() as f64) / 2.0;
        for (i, (name, v)) in bars.iter().enumerate() {
            let v = if v.is_finite() { *v } else { 0.0 };
            let x = start + bar_w * i as f64;
            let (top, bottom) = if v >= 0.0 {
                (y(v), y(0.0))
            } else {
                (y(0.0), y(v.max(lo)))
            };
            let label_y = if v >= 0.0 {
                top - 4.0
            } else if v < lo {
                // Clipped at the floor: the label goes inside the bar's end.
                bottom - 4.0
            } else {
                bottom + 13.0
            };
            let _ = writeln!(
                out,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{0:.1}\" height=\"{1:.1}\" \
                 fill=\"{2}\"><title>{3}: {v:.1}%</title></rect>\
                 <text x=\"{4:.1}\" y=\"{label_y:.1}\" text-anchor=\"middle\" font-size=\"10\" \
                 fill=\"{5}\">{v:.0}%</text>",
                (bar_w - 2.0).max(1.0),
                (bottom - top).max(0.5),
                color(name),
                escape(name),
                x + bar_w / 2.0 - 1.0,
                if v < lo { "white" } else { "black" },
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            gx + group_w / 2.0,
            H - BOTTOM + 22.0,
            escape(group)
        );
    }
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// A line chart: each series' points `(x, value)`, x on a base-2 logarithmic axis (burst
/// lengths 1 … 1024). Points carry `class="point"`, lines `class="series"`.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (xmin, xmax) = xs
        .filter(|x| *x > 0.0)
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (lx0, lx1) = if xmin <= xmax {
        (xmin.log2(), xmax.log2().max(xmin.log2() + 1.0))
    } else {
        (0.0, 1.0)
    };
    let (lo, hi, step) = y_range(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
    let plot_h = H - TOP - BOTTOM;
    let plot_w = W - LEFT - RIGHT;
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * plot_h;
    let x = |v: f64| LEFT + (v.max(1e-9).log2() - lx0) / (lx1 - lx0) * plot_w;
    let y = |v: f64| y(v.max(lo));
    let mut out = String::new();
    header(&mut out, title);
    y_axis(&mut out, lo, hi, step, &y, y_label);
    let mut e = lx0.ceil() as i32;
    while f64::from(e) <= lx1 + 1e-9 {
        let xv = 2f64.powi(e);
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#eeeeee\"/>\
             <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            x(xv),
            H - BOTTOM,
            H - BOTTOM + 16.0,
            xv
        );
        e += 1;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        LEFT + plot_w / 2.0,
        H - 16.0,
        escape(x_label)
    );
    let mut names = Vec::new();
    for (name, pts) in series {
        names.push(name.clone());
        let mut pts: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|(a, b)| *a > 0.0 && b.is_finite())
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            color(name),
            path.join(" ")
        );
        for (a, b) in &pts {
            let _ = writeln!(
                out,
                "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\">\
                 <title>{}: N={a} {b:.1}%</title></circle>",
                x(*a),
                y(*b),
                color(name),
                escape(name)
            );
        }
    }
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `xml` is well formed: tags balanced and properly nested, attribute values
    /// quoted, no bare `&` or `<` in text. Returns the number of elements.
    pub(crate) fn well_formed(xml: &str) -> Result<usize, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut count = 0;
        let mut rest = xml;
        let mut seen_root = false;
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt])?;
            let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
            let tag = &rest[lt + 1..gt];
            rest = &rest[gt + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("</{name}> without opening"))?;
                if open != name.trim() {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body.split_whitespace().next().ok_or("empty tag")?;
            if stack.is_empty() {
                if seen_root {
                    return Err("two root elements".into());
                }
                seen_root = true;
            }
            if !body.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{body}>"));
            }
            count += 1;
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        check_text(rest)?;
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        Ok(count)
    }

    fn check_text(t: &str) -> Result<(), String> {
        for (i, _) in t.match_indices('&') {
            let ent = &t[i..];
            if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| ent.starts_with(e))
            {
                return Err(format!("bare & in {t:?}"));
            }
        }
        Ok(())
    }

    #[test]
    fn bar_chart_is_well_formed_with_one_bar_per_value() {
        let groups = vec![
            (
                "warm".to_string(),
                vec![("direct".to_string(), 12.5), ("ring".to_string(), -30.0)],
            ),
            (
                "cold <&>".to_string(),
                vec![
                    ("direct".to_string(), 50.0),
                    ("ring".to_string(), 75.0),
                    ("a \"tool\"".to_string(), f64::NAN),
                ],
            ),
        ];
        let svg = bar_chart("ls-5k: improvement over vanilla", "%", &groups);
        well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 5);
        assert!(svg.contains("cold &lt;&amp;&gt;"));
    }

    #[test]
    fn line_chart_is_well_formed_with_one_point_per_value() {
        let series = vec![
            (
                "ring".to_string(),
                (0..11)
                    .map(|e| (2f64.powi(e), e as f64 * 7.0 - 20.0))
                    .collect(),
            ),
            ("direct".to_string(), vec![(1.0, 5.0), (1024.0, 80.0)]),
        ];
        let svg = line_chart("burst nop", "N", "%", &series);
        well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(svg.matches("class=\"point\"").count(), 13);
        assert_eq!(svg.matches("class=\"series\"").count(), 2);
        assert!(svg.contains(">1024<"));
    }

    #[test]
    fn the_checker_rejects_broken_xml() {
        assert!(well_formed("<svg><g></svg>").is_err());
        assert!(well_formed("<svg>a & b</svg>").is_err());
        assert!(well_formed("<svg><rect/></svg>").is_ok());
    }

    #[test]
    fn improvement_is_relative_to_the_baseline() {
        assert_eq!(improvement(2.0, 1.0), 50.0);
        assert_eq!(improvement(1.0, 2.0), -100.0);
    }
}
