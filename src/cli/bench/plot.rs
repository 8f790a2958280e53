//! The comparison as one SVG: p50 and p99 per system and rate (bars, log scale, the spread over
//! rounds as a whisker), then per rate the worst latency over time of every round, one line
//! per system, so a stall shows as a spike.
//!
//! Written as SVG text directly: a plotting crate would add a dependency tree (and, for text,
//! font loading) for two kinds of shapes. The viewer draws the text with its own fonts.

use std::fmt::Write;

use super::measure::PhaseResult;
use super::system::System;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const BARS_HEIGHT: f64 = 300.0;
const LINES_HEIGHT: f64 = 220.0;
const GAP: f64 = 70.0;

/// The measured phases of one system at one rate, one per round.
pub struct Series<'a> {
    pub system: System,
    pub rate: f64,
    pub rounds: Vec<&'a PhaseResult>,
}

fn color(system: System) -> &'static str {
    match system {
        System::Sagas => "#d62728",
        System::Stateless => "#1f77b4",
        System::Passthrough => "#7f7f7f",
        System::Kstreams => "#2ca02c",
    }
}

/// Log-scale y from `floor` to `ceiling` ms, mapped onto [top, top + height].
struct LogAxis {
    floor: f64,
    ceiling: f64,
    top: f64,
    height: f64,
}

impl LogAxis {
    fn new(values: impl Iterator<Item = f64>, top: f64, height: f64) -> Self {
        let max = values.fold(1.0f64, f64::max);
        let ceiling = 10f64.powf(max.log10().ceil()).max(10.0);
        Self {
            floor: 1.0,
            ceiling,
            top,
            height,
        }
    }

    fn y(&self, ms: f64) -> f64 {
        let v = ms.clamp(self.floor, self.ceiling);
        let f = (v.log10() - self.floor.log10()) / (self.ceiling.log10() - self.floor.log10());
        self.top + self.height * (1.0 - f)
    }

    fn draw(&self, svg: &mut String, x0: f64, x1: f64) {
        let mut tick = self.floor;
        while tick <= self.ceiling * 1.001 {
            let y = self.y(tick);
            let _ = write!(
                svg,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"##,
                x0 - 6.0,
                y + 4.0,
                tick
            );
            tick *= 10.0;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The whole SVG document.
pub fn render(series: &[Series<'_>], title: &str) -> String {
    let mut rates: Vec<f64> = series.iter().map(|s| s.rate).collect();
    rates.dedup();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let mut systems: Vec<System> = Vec::new();
    for s in series {
        if !systems.contains(&s.system) {
            systems.push(s.system);
        }
    }
    let height = 40.0 + BARS_HEIGHT + rates.len() as f64 * (LINES_HEIGHT + GAP) + GAP;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="15">{}</text>"##,
        escape(title)
    );
    bars(&mut svg, series, &rates, &systems);
    for (i, rate) in rates.iter().enumerate() {
        let top = 40.0 + BARS_HEIGHT + GAP + i as f64 * (LINES_HEIGHT + GAP);
        timelines(&mut svg, series, *rate, &systems, top);
    }
    svg.push_str("</svg>\n");
    svg
}

fn bars(svg: &mut String, series: &[Series<'_>], rates: &[f64], systems: &[System]) {
    let top = 50.0;
    let plot_height = BARS_HEIGHT - 40.0;
    let axis = LogAxis::new(
        series
            .iter()
            .flat_map(|s| s.rounds.iter().map(|r| r.p99_ms)),
        top,
        plot_height,
    );
    let x1 = WIDTH - RIGHT;
    axis.draw(svg, LEFT, x1);
    let group = (x1 - LEFT) / rates.len().max(1) as f64;
    let bar = (group * 0.8) / (systems.len().max(1) as f64 * 2.0);
    for (g, rate) in rates.iter().enumerate() {
        let gx = LEFT + g as f64 * group + group * 0.1;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} anomalies/s</text>"##,
            LEFT + (g as f64 + 0.5) * group,
            top + plot_height + 20.0,
            rate
        );
        for (k, system) in systems.iter().enumerate() {
            let Some(s) = series
                .iter()
                .find(|s| s.system == *system && s.rate == *rate)
            else {
                continue;
            };
            for (j, pick) in [|r: &PhaseResult| r.p50_ms, |r: &PhaseResult| r.p99_ms]
                .iter()
                .enumerate()
            {
                let values: Vec<f64> = s.rounds.iter().map(|r| pick(r)).collect();
                if values.is_empty() {
                    continue;
                }
                let x = gx + (k * 2 + j) as f64 * bar;
                let y = axis.y(median(values.clone()));
                let opacity = if j == 0 { "1" } else { "0.45" };
                let _ = write!(
                    svg,
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="{opacity}"><title>{} {} p{}: {:.1} ms (median of {} rounds)</title></rect>"##,
                    bar * 0.9,
                    top + plot_height - y,
                    color(*system),
                    system.name(),
                    rate,
                    if j == 0 { 50 } else { 99 },
                    median(values.clone()),
                    values.len()
                );
                let lo = axis.y(values.iter().copied().fold(f64::INFINITY, f64::min));
                let hi = axis.y(values.iter().copied().fold(0.0, f64::max));
                let cx = x + bar * 0.45;
                let _ = write!(
                    svg,
                    r##"<line x1="{cx:.1}" y1="{lo:.1}" x2="{cx:.1}" y2="{hi:.1}" stroke="black"/>"##
                );
            }
        }
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}">p50 solid, p99 light;</text><text x="{:.1}" y="{:.1}">whisker: min-max</text><text x="{:.1}" y="{:.1}">over rounds</text>"##,
        x1 + 10.0,
        top + 10.0,
        x1 + 10.0,
        top + 26.0,
        x1 + 10.0,
        top + 42.0
    );
    legend(svg, systems, x1 + 10.0, top + 70.0);
}

fn timelines(svg: &mut String, series: &[Series<'_>], rate: f64, systems: &[System], top: f64) {
    let x1 = WIDTH - RIGHT;
    let of_rate: Vec<&Series<'_>> = series.iter().filter(|s| s.rate == rate).collect();
    let round_seconds = of_rate
        .iter()
        .flat_map(|s| s.rounds.iter().map(|r| r.seconds))
        .fold(0.0, f64::max)
        .max(1.0);
    let rounds = of_rate.iter().map(|s| s.rounds.len()).max().unwrap_or(1);
    let span = round_seconds * rounds as f64;
    let axis = LogAxis::new(
        of_rate.iter().flat_map(|s| {
            s.rounds
                .iter()
                .flat_map(|r| r.timeline.iter().map(|p| p[1]))
        }),
        top,
        LINES_HEIGHT,
    );
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" font-size="13">{} anomalies/s: worst latency per 100 ms of sending, rounds one after another</text>"##,
        top - 10.0,
        rate
    );
    axis.draw(svg, LEFT, x1);
    let x = |round: usize, t: f64| LEFT + (round as f64 * round_seconds + t) / span * (x1 - LEFT);
    for round in 0..rounds {
        let rx = x(round, 0.0);
        let _ = write!(
            svg,
            r##"<line x1="{rx:.1}" y1="{top}" x2="{rx:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="3,3"/><text x="{:.1}" y="{:.1}">round {}</text>"##,
            top + LINES_HEIGHT,
            rx + 4.0,
            top + LINES_HEIGHT + 16.0,
            round + 1
        );
    }
    for s in &of_rate {
        for (round, r) in s.rounds.iter().enumerate() {
            let points: Vec<String> = r
                .timeline
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(round, p[0]), axis.y(p[1])))
                .collect();
            let _ = write!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.2"/>"##,
                points.join(" "),
                color(s.system)
            );
        }
    }
    legend(svg, systems, x1 + 10.0, top + 10.0);
}

fn legend(svg: &mut String, systems: &[System], x: f64, y: f64) {
    for (i, system) in systems.iter().enumerate() {
        let yy = y + i as f64 * 18.0;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            yy - 10.0,
            color(*system),
            x + 18.0,
            yy,
            system.name()
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(p50: f64, p99: f64) -> PhaseResult {
        PhaseResult {
            rate: 1000.0,
            seconds: 2.0,
            sent: 2000,
            received: 2000,
            p50_ms: p50,
            p90_ms: p99,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
            throughput_per_second: 1000.0,
            before_output_ms: None,
            after_output_ms: None,
            service: None,
            resident_mib: None,
            timeline: vec![[0.0, p50], [0.1, p99]],
        }
    }

    #[test]
    fn the_svg_has_a_bar_pair_and_a_line_per_system_and_round() {
        let (a, b) = (phase(5.0, 40.0), phase(6.0, 400.0));
        let series = [
            Series {
                system: System::Stateless,
                rate: 1000.0,
                rounds: vec![&a, &b],
            },
            Series {
                system: System::Kstreams,
                rate: 1000.0,
                rounds: vec![&b],
            },
        ];
        let svg = render(&series, "a <test>");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("fill-opacity").count(), 4);
        assert!(
            svg.contains("stateless 1000 p99: 400.0 ms (median of 2 rounds)"),
            "{svg}"
        );
        assert!(svg.contains("a &lt;test&gt;"));
        // 400 ms needs the axis to reach 1,000 ms.
        assert!(svg.contains(">1000 ms<"));
    }
}
