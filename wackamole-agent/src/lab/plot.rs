//! PNG timeline of a probe run: one row per VIP, time across, each cell
//! coloured by the node that answered (black where two nodes answered, light
//! grey where probes went unanswered, white where no probe was sent: a stall
//! of the prober), vertical lines at the marked instants
//! (fault, view).
//!
//! Drawn with `plotters` (bitmap backend, `ab_glyph` text): the glyphs come from
//! DejaVu Sans, read at run time from the Debian package `fonts-dejavu-core`,
//! so no fontconfig/freetype C libraries are needed.

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::analysis::{Phase, ProbeRun};

/// Where `fonts-dejavu-core` puts its fonts (Debian 12).
pub const FONT_DIRS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/dejavu",
];

static FONTS: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Registers DejaVu Sans as plotters' `sans-serif` (once per process).
pub fn ensure_fonts() -> Result<()> {
    FONTS
        .get_or_init(|| {
            let mut tried = Vec::new();
            for dir in FONT_DIRS {
                let path = Path::new(dir).join("DejaVuSans.ttf");
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        // plotters keeps fonts for the life of the process.
                        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                        return plotters::style::register_font(
                            "sans-serif",
                            FontStyle::Normal,
                            bytes,
                        )
                        .map_err(|_| format!("{} is not a usable font", path.display()));
                    }
                    Err(e) => tried.push(format!("{}: {e}", path.display())),
                }
            }
            Err(format!(
                "no DejaVuSans.ttf (install the Debian package fonts-dejavu-core): {}",
                tried.join("; ")
            ))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct TimelineSpec {
    pub title: String,
    /// Time window, monotonic ns.
    pub from_ns: u64,
    pub to_ns: u64,
    /// Time zero of the x axis (usually the fault), monotonic ns.
    pub origin_ns: u64,
    /// Vertical lines: label and instant.
    pub marks: Vec<(String, u64)>,
    pub width: u32,
    pub height: u32,
}

impl TimelineSpec {
    /// `before`/`after` around `fault_ns`, a line at the fault, size for `vips` rows.
    pub fn around_fault(
        title: &str,
        fault_ns: u64,
        before_ns: u64,
        after_ns: u64,
        vips: usize,
    ) -> Self {
        TimelineSpec {
            title: title.to_string(),
            from_ns: fault_ns.saturating_sub(before_ns),
            to_ns: fault_ns.saturating_add(after_ns),
            origin_ns: fault_ns,
            marks: vec![("fault".to_string(), fault_ns)],
            width: 1200,
            height: (160 + 8 * vips as u32).clamp(360, 1600),
        }
    }
}

/// One timeline per phase, `before_ns` before its fault to `after_ns` after it,
/// with lines at the fault and (if known) the view, written to
/// `dir/<prefix>-<phase>.png`. Returns the paths written.
pub fn phase_timelines(
    run: &ProbeRun,
    phases: &[Phase],
    before_ns: u64,
    after_ns: u64,
    dir: &Path,
    prefix: &str,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for p in phases {
        let mut spec = TimelineSpec::around_fault(
            &format!("{prefix}: {}", p.name),
            p.fault_ns,
            before_ns,
            after_ns,
            run.vips.len(),
        );
        if let Some(v) = p.view_ns {
            spec.marks.push(("view".to_string(), v));
        }
        let safe: String = p
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{prefix}-{safe}.png"));
        timeline_png(run, &spec, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// Cell state of the raster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// No probe sent in this cell.
    Empty,
    /// Probes sent, none answered.
    Lost,
    Node(u16),
    /// Two or more nodes answered.
    Duplicate,
}

const NODE_COLOURS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
];
/// Width of the legend column, pixels.
const LEGEND_W: u32 = 170;
const LOST: RGBColor = RGBColor(215, 215, 215);
const DUPLICATE: RGBColor = BLACK;
const MARK_COLOURS: &[RGBColor] = &[RGBColor(214, 39, 40), RGBColor(120, 0, 120)];

/// Colours by node name order, so a node keeps its colour across runs whatever
/// order the prober first heard the nodes in.
fn node_colours(nodes: &[String]) -> Vec<RGBColor> {
    nodes
        .iter()
        .map(|n| {
            let rank = nodes.iter().filter(|m| *m < n).count();
            NODE_COLOURS[rank % NODE_COLOURS.len()]
        })
        .collect()
}

/// Rasterises the run: `rows[vip][col]` for `cols` equal time buckets. Each
/// round's outcome covers the time until the next round, so a slow prober (many
/// VIPs) still gives a continuous picture; a column spanning several rounds
/// shows the latest answer, and a duplicate sticks.
fn raster(run: &ProbeRun, from: u64, to: u64, cols: usize) -> Vec<Vec<Cell>> {
    let span = (to - from).max(1) as u128;
    let col_floor = |t: u64| ((t.clamp(from, to) - from) as u128 * cols as u128 / span) as usize;
    let col_ceil =
        |t: u64| ((t.clamp(from, to) - from) as u128 * cols as u128).div_ceil(span) as usize;
    let mut rows = vec![vec![Cell::Empty; cols]; run.vips.len()];
    let times = &run.round_sent_ns;
    // Rounds overlapping the window.
    // (the round before `from` may still cover it until the next one starts).
    let first = times.partition_point(|&t| t <= from).saturating_sub(1);
    let last = times.partition_point(|&t| t < to);
    if first >= last {
        return rows;
    }
    let n = last - first;
    let mut state = vec![vec![Cell::Lost; n]; run.vips.len()];
    for a in &run.answers {
        let r = a.round as usize;
        if r < first || r >= last {
            continue;
        }
        let Some(row) = state.get_mut(a.vip as usize) else {
            continue;
        };
        let cell = &mut row[r - first];
        *cell = match *cell {
            Cell::Empty | Cell::Lost => Cell::Node(a.node),
            Cell::Node(n) if n == a.node => Cell::Node(n),
            _ => Cell::Duplicate,
        };
    }
    for (vip, row) in rows.iter_mut().enumerate() {
        for i in 0..n {
            let start = times[first + i];
            let end = times
                .get(first + i + 1)
                .copied()
                .unwrap_or(start.saturating_add(run.interval_ns));
            if end <= from || start >= to {
                continue;
            }
            let c0 = col_floor(start);
            let c1 = col_ceil(end).max(c0 + 1).min(cols);
            let new = state[vip][i];
            for cell in &mut row[c0.min(cols)..c1] {
                *cell = match (*cell, new) {
                    (Cell::Duplicate, _) => Cell::Duplicate,
                    (Cell::Node(_), Cell::Lost) => *cell,
                    _ => new,
                };
            }
        }
    }
    rows
}

/// Draws the timeline of `run` to the PNG file `path`.
pub fn timeline_png(run: &ProbeRun, spec: &TimelineSpec, path: &Path) -> Result<()> {
    if spec.to_ns <= spec.from_ns {
        bail!("plot {}: empty time window", path.display());
    }
    if run.vips.is_empty() {
        bail!("plot {}: no VIPs", path.display());
    }
    if !(400..=8000).contains(&spec.width) || !(200..=8000).contains(&spec.height) {
        bail!(
            "plot {}: size {}x{} out of range",
            path.display(),
            spec.width,
            spec.height
        );
    }
    ensure_fonts()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    draw(run, spec, path).map_err(|e| anyhow!("plot {}: {e}", path.display()))
}

fn draw(
    run: &ProbeRun,
    spec: &TimelineSpec,
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let ms = |t: u64| (t as f64 - spec.origin_ns as f64) / 1e6;
    let (x0, x1) = (ms(spec.from_ns), ms(spec.to_ns));
    let nv = run.vips.len();
    let root = BitMapBackend::new(path, (spec.width, spec.height)).into_drawing_area();
    root.fill(&WHITE)?;
    let labelled = nv <= 40;
    let x_desc = match spec.marks.iter().find(|m| m.1 == spec.origin_ns) {
        Some((label, _)) => format!("time since {label} (ms)"),
        None => "time (ms)".to_string(),
    };
    // Legend in its own column on the right, clear of the data.
    let (plot_area, legend_area) = root.split_horizontally(spec.width.saturating_sub(LEGEND_W));
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&spec.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(if labelled { 120 } else { 60 })
        // Segments 0..=nv-1: one per VIP.
        .build_cartesian_2d(x0..x1, (0..nv as u32 - 1).into_segmented())?;
    let vips = run.vips.clone();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_desc.as_str())
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(if labelled { "VIP" } else { "VIP index" })
        .y_labels(if labelled { nv } else { 20 })
        .y_label_formatter(&move |y| match y {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => match vips.get(*i as usize) {
                Some(ip) if labelled => ip.to_string(),
                _ => format!("{i}"),
            },
            SegmentValue::Last => String::new(),
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    // Leave a gap between rows when they are tall enough to show one.
    let row_px = spec.height.saturating_sub(100) / nv as u32;
    let gap = if row_px >= 6 { row_px / 8 } else { 0 };

    // One column per plotting pixel, but no finer than the probe interval.
    let plot_px = spec.width.saturating_sub(200 + LEGEND_W).max(100) as u64;
    let window = spec.to_ns - spec.from_ns;
    let by_interval = (window / run.interval_ns.max(1)).max(1);
    let cols = plot_px.min(by_interval) as usize;
    let rows = raster(run, spec.from_ns, spec.to_ns, cols);
    let col_ms = (x1 - x0) / cols as f64;
    let colours = node_colours(&run.nodes);
    for (vip, row) in rows.iter().enumerate() {
        // Run-length encode the row: one rectangle per run of equal cells.
        let mut start = 0;
        while start < row.len() {
            let mut end = start + 1;
            while end < row.len() && row[end] == row[start] {
                end += 1;
            }
            let colour = match row[start] {
                Cell::Empty => None,
                Cell::Lost => Some(LOST),
                Cell::Node(n) => Some(colours.get(n as usize).copied().unwrap_or(DUPLICATE)),
                Cell::Duplicate => Some(DUPLICATE),
            };
            if let Some(c) = colour {
                let (r0, r1) = (
                    SegmentValue::Exact(vip as u32),
                    SegmentValue::Exact(vip as u32 + 1),
                );
                let mut rect = Rectangle::new(
                    [
                        (x0 + start as f64 * col_ms, r0),
                        (x0 + end as f64 * col_ms, r1),
                    ],
                    c.filled(),
                );
                rect.set_margin(gap, gap, 0, 0);
                chart.draw_series(std::iter::once(rect))?;
            }
            start = end;
        }
    }
    for (i, (_, t)) in spec.marks.iter().enumerate() {
        let c = MARK_COLOURS[i % MARK_COLOURS.len()];
        let x = ms(*t);
        chart.draw_series(LineSeries::new(
            [(x, SegmentValue::Exact(0)), (x, SegmentValue::Last)],
            c.stroke_width(2),
        ))?;
    }

    // Legend: nodes (by name), lost, duplicate, then the marks.
    let mut entries: Vec<(String, RGBColor, bool)> = run
        .nodes
        .iter()
        .cloned()
        .zip(colours)
        .map(|(n, c)| (n, c, false))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.push(("no answer".into(), LOST, false));
    entries.push(("two nodes".into(), DUPLICATE, false));
    for (i, (label, _)) in spec.marks.iter().enumerate() {
        entries.push((label.clone(), MARK_COLOURS[i % MARK_COLOURS.len()], true));
    }
    let font = ("sans-serif", 14).into_font();
    for (i, (label, c, is_line)) in entries.iter().enumerate() {
        let y = 50 + 22 * i as i32;
        if *is_line {
            legend_area.draw(&PathElement::new([(10, y), (26, y)], c.stroke_width(2)))?;
        } else {
            legend_area.draw(&Rectangle::new([(10, y - 6), (26, y + 6)], c.filled()))?;
        }
        legend_area.draw(&Text::new(label.as_str(), (34, y - 7), font.clone()))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::analysis::Answer;

    #[test]
    fn raster_marks_nodes_lost_and_duplicates() {
        let run = ProbeRun {
            vips: vec!["192.0.2.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST)
                .into()],
            nodes: vec!["a".into(), "b".into()],
            interval_ns: 10,
            round_sent_ns: vec![0, 10, 20, 30],
            answers: vec![
                Answer {
                    vip: 0,
                    round: 0,
                    node: 0,
                    sent_ns: 0,
                    recv_ns: 1,
                },
                Answer {
                    vip: 0,
                    round: 2,
                    node: 0,
                    sent_ns: 20,
                    recv_ns: 21,
                },
                Answer {
                    vip: 0,
                    round: 2,
                    node: 1,
                    sent_ns: 20,
                    recv_ns: 22,
                },
                Answer {
                    vip: 0,
                    round: 3,
                    node: 1,
                    sent_ns: 30,
                    recv_ns: 31,
                },
            ],
            ..ProbeRun::default()
        };
        let r = raster(&run, 0, 50, 5);
        assert_eq!(
            r[0],
            vec![
                Cell::Node(0),
                Cell::Lost,
                Cell::Duplicate,
                Cell::Node(1),
                Cell::Empty
            ]
        );
    }

    #[test]
    fn raster_extends_rounds_until_the_next_and_clips_to_the_window() {
        let run = ProbeRun {
            vips: vec![std::net::Ipv4Addr::new(192, 0, 2, 1).into()],
            nodes: vec!["a".into()],
            interval_ns: 10,
            // The prober stalled between 0 and 30.
            round_sent_ns: vec![0, 30],
            answers: vec![Answer {
                vip: 0,
                round: 0,
                node: 0,
                sent_ns: 0,
                recv_ns: 1,
            }],
            ..ProbeRun::default()
        };
        let n0 = Cell::Node(0);
        assert_eq!(raster(&run, 0, 40, 4)[0], vec![n0, n0, n0, Cell::Lost]);
        assert_eq!(raster(&run, 15, 35, 4)[0], vec![n0, n0, n0, Cell::Lost]);
        // Window after the run, or before it: nothing.
        assert_eq!(raster(&run, 100, 200, 2)[0], vec![Cell::Empty; 2]);
        // A round answered by a node keeps its colour over a later lost round in
        // the same column.
        assert_eq!(raster(&run, 0, 80, 1)[0], vec![n0]);
    }

    /// A synthetic failover of 12 VIPs from n1 to n2/n3 with a duplicate and
    /// a loss, rendered to a PNG in the temp directory.
    #[test]
    fn renders_a_synthetic_failover() -> Result<()> {
        const MS: u64 = 1_000_000;
        let mut run = ProbeRun {
            vips: (1..=12)
                .map(|i| std::net::Ipv4Addr::new(192, 0, 2, i).into())
                .collect(),
            nodes: vec!["n3".into(), "n1".into(), "n2".into()],
            interval_ns: MS,
            round_sent_ns: (0..300).map(|r| r * MS).collect(),
            ..ProbeRun::default()
        };
        for r in 0..300u32 {
            for v in 0..12u32 {
                let owners: Vec<u16> = match (v % 3, r) {
                    (0, r) if (100..140).contains(&r) => vec![],
                    (0, r) if r >= 140 => vec![2],
                    (1, r) if (100..130).contains(&r) => vec![],
                    (1, r) if (130..135).contains(&r) => vec![0, 1],
                    (1, r) if r >= 130 => vec![0],
                    _ => vec![1],
                };
                for n in owners {
                    let t = r as u64 * MS;
                    run.answers.push(Answer {
                        vip: v,
                        round: r,
                        node: n,
                        sent_ns: t,
                        recv_ns: t + 100_000,
                    });
                }
            }
        }
        let phases = [Phase {
            name: "kill n1".into(),
            fault_ns: 100 * MS,
            view_ns: Some(120 * MS),
        }];
        let dir = std::env::temp_dir().join(format!("wk-plot-{}", std::process::id()));
        let paths = phase_timelines(&run, &phases, 50 * MS, 150 * MS, &dir, "synthetic")?;
        assert_eq!(paths, vec![dir.join("synthetic-kill_n1.png")]);
        let bytes = std::fs::read(&paths[0])?;
        assert_eq!(bytes.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]));
        if std::env::var_os("WK_KEEP_PLOTS").is_none() {
            std::fs::remove_dir_all(&dir)?;
        } else {
            eprintln!("kept {}", paths[0].display());
        }
        // Bad windows are errors, not panics.
        let mut spec = TimelineSpec::around_fault("x", 10, 0, 0, 1);
        spec.to_ns = spec.from_ns;
        assert!(timeline_png(&run, &spec, &dir.join("x.png")).is_err());
        Ok(())
    }
}
