//! `doran-bench growth`: how the relay's cost grows with the number of devices.
//!
//! Runs `seed-stress` at each device count (100, 1000 and 5000 by default), then
//! `fanout` and `connections` at 10 000, each in its own process of this binary with
//! `--json` (so every run starts its own relay on an empty data directory), and prints
//! one table. With `--svg PATH` it also draws wall time and relay CPU per push against
//! devices. The work grows with the devices (each does `--ops` operations), so
//! "linear" means wall time per operation and CPU per push stay flat.

use std::{path::PathBuf, process::Command};

use serde_json::Value;

use crate::load::LoadError;

/// Options of `doran-bench growth`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Device counts for seed-stress.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    devices: Vec<usize>,
    /// Operation mix of seed-stress (`changes` or `mixed`).
    #[arg(long, default_value = "changes")]
    mix: String,
    /// Devices for the fanout and connections runs (0: skip them).
    #[arg(long, default_value_t = 10_000)]
    many: usize,
    /// Write a plot of wall time and relay CPU per push against devices here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
}

/// One seed-stress run's figures.
#[derive(Debug, Clone)]
struct Point {
    devices: usize,
    ops: u64,
    wall_ms: f64,
    relay_cpu_s: f64,
    relay_cpu_us_per_push: f64,
    generator_cpu_s: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    relay_peak_rss_mib: f64,
    converged: bool,
}

impl Point {
    fn json(&self) -> Value {
        serde_json::json!({
            "devices": self.devices,
            "ops": self.ops,
            "wall_ms": self.wall_ms,
            "relay_cpu_s": self.relay_cpu_s,
            "relay_cpu_us_per_push": self.relay_cpu_us_per_push,
            "load_generator_cpu_s": self.generator_cpu_s,
            "ack_p50_ms": self.ack_p50_ms,
            "ack_p99_ms": self.ack_p99_ms,
            "relay_peak_rss_mib": self.relay_peak_rss_mib,
            "converged": self.converged,
        })
    }
}

/// Runs the series; prints a table (or one JSON object) and writes the SVG if asked.
pub fn run(opts: &Options, json_out: bool) -> Result<(), LoadError> {
    let mut points = Vec::new();
    for &n in &opts.devices {
        eprintln!("growth: seed-stress --mix {} --devices {n}", opts.mix);
        let v = child(&[
            "seed-stress",
            "--mix",
            &opts.mix,
            "--devices",
            &n.to_string(),
        ])?;
        points.push(point(n, &v)?);
    }
    let (fanout, connections) = if opts.many > 0 {
        let many = opts.many.to_string();
        eprintln!("growth: fanout and connections at {many}");
        (
            Some(child(&["fanout", "--devices", &many])?),
            Some(child(&["connections", "--devices", &many])?),
        )
    } else {
        (None, None)
    };
    if let Some(path) = &opts.svg {
        std::fs::write(path, svg(&points, &opts.mix))?;
    }
    if json_out {
        let out = serde_json::json!({
            "benchmark": "growth",
            "mix": opts.mix,
            "seed_stress": points.iter().map(Point::json).collect::<Vec<_>>(),
            "fanout": fanout,
            "connections": connections,
        });
        println!("{out}");
        return Ok(());
    }
    println!("growth: seed-stress --mix {} (50 ops per device)", opts.mix);
    println!(
        "  {:>7} {:>7} {:>9} {:>9} {:>10} {:>13} {:>9} {:>15} {:>9} {:>9}",
        "devices",
        "ops",
        "wall ms",
        "µs/op",
        "relay CPU",
        "relay µs/push",
        "gen CPU",
        "ack p50/p99 ms",
        "peak MiB",
        "converged"
    );
    for p in &points {
        println!(
            "  {:>7} {:>7} {:>9.0} {:>9.1} {:>9.2}s {:>13.1} {:>8.2}s {:>7.1}/{:<7.1} {:>9.1} {:>9}",
            p.devices,
            p.ops,
            p.wall_ms,
            p.wall_ms * 1000.0 / p.ops.max(1) as f64,
            p.relay_cpu_s,
            p.relay_cpu_us_per_push,
            p.generator_cpu_s,
            p.ack_p50_ms,
            p.ack_p99_ms,
            p.relay_peak_rss_mib,
            p.converged
        );
    }
    if let Some(v) = &fanout {
        for r in v["runs"].as_array().into_iter().flatten() {
            println!(
                "fanout {} devices: push → each device p50 {} p99 {} ms, {} missing, relay peak {} MiB",
                r["devices"],
                r["latency_ms"]["push_to_each_device"]["p50"],
                r["latency_ms"]["push_to_each_device"]["p99"],
                r["missing"],
                r["relay_peak_rss_mib"]
            );
        }
    }
    if let Some(v) = &connections {
        println!(
            "connections {} devices: {} bytes per idle connection, last delivery {} ms, {} missing",
            v["devices"],
            v["relay_bytes_per_connection"],
            v["round"]["last_delivery_ms"],
            v["round"]["missing"]
        );
    }
    Ok(())
}

/// Runs this binary with `args` and `--json`; its one JSON object.
fn child(args: &[&str]) -> Result<Value, LoadError> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(args)
        .arg("--json")
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(LoadError::Setup(format!(
            "doran-bench {} failed ({})",
            args.join(" "),
            out.status
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| LoadError::Setup(format!("doran-bench {}: bad JSON: {e}", args.join(" "))))
}

fn point(devices: usize, v: &Value) -> Result<Point, LoadError> {
    let f = |path: &[&str]| -> Result<f64, LoadError> {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_f64)
            .ok_or_else(|| LoadError::Setup(format!("seed-stress JSON lacks {}", path.join("."))))
    };
    let pushes = f(&["pushes"])?;
    let relay_cpu_s = f(&["relay_cpu_s"])?;
    Ok(Point {
        devices,
        ops: f(&["ops"])? as u64,
        wall_ms: f(&["wall_ms"])?,
        relay_cpu_s,
        relay_cpu_us_per_push: relay_cpu_s * 1e6 / pushes.max(1.0),
        generator_cpu_s: f(&["load_generator_cpu_s"])?,
        ack_p50_ms: f(&["latency_ms", "push_ack", "p50"])?,
        ack_p99_ms: f(&["latency_ms", "push_ack", "p99"])?,
        relay_peak_rss_mib: f(&["relay_rss_mib", "peak"])?,
        converged: v["converged"].as_bool().unwrap_or(false),
    })
}

/// Two panels side by side, devices on a log axis: wall time (s) and relay CPU per
/// push (µs). Plain SVG, so the plot needs no plotting library and diffs as text.
fn svg(points: &[Point], mix: &str) -> String {
    const W: f64 = 360.0;
    const H: f64 = 240.0;
    const PAD: f64 = 48.0;
    let panels = [
        (
            "wall time (s)",
            points
                .iter()
                .map(|p| p.wall_ms / 1000.0)
                .collect::<Vec<_>>(),
        ),
        (
            "relay CPU per push (µs)",
            points.iter().map(|p| p.relay_cpu_us_per_push).collect(),
        ),
    ];
    let xs: Vec<f64> = points
        .iter()
        .map(|p| (p.devices.max(1) as f64).log10())
        .collect();
    let (x0, x1) = bounds(&xs);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{tx}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">\
         doran-bench seed-stress --mix {mix}: cost against devices (50 ops each)</text>\n",
        w = 2.0 * W,
        h = H + 24.0,
        tx = W,
    );
    for (i, (title, ys)) in panels.iter().enumerate() {
        let ox = i as f64 * W;
        let top = 24.0;
        let ymax = ys.iter().copied().fold(0.0_f64, f64::max).max(1e-9) * 1.15;
        let sx = |x: f64| ox + PAD + (x - x0) / (x1 - x0).max(1e-9) * (W - 2.0 * PAD);
        let sy = |y: f64| top + (H - PAD) - y / ymax * (H - PAD - 20.0);
        out += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{title}</text>\n",
            ox + W / 2.0,
            top + 12.0
        );
        out += &format!(
            "<line x1=\"{a}\" y1=\"{b}\" x2=\"{c}\" y2=\"{b}\" stroke=\"black\"/>\n\
             <line x1=\"{a}\" y1=\"{b}\" x2=\"{a}\" y2=\"{d}\" stroke=\"black\"/>\n",
            a = ox + PAD,
            b = sy(0.0),
            c = ox + W - PAD,
            d = sy(ymax),
        );
        for k in 0..=4 {
            let y = ymax * f64::from(k) / 4.0;
            out += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
                ox + PAD - 4.0,
                sy(y) + 4.0,
                short(y)
            );
        }
        let mut path = String::new();
        for (p, (&x, &y)) in points.iter().zip(xs.iter().zip(ys)) {
            let (px, py) = (sx(x), sy(y));
            path += &format!(
                "{}{px:.1},{py:.1} ",
                if path.is_empty() { "M" } else { "L" }
            );
            out += &format!(
                "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"#2a6fdb\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"start\">{}</text>\n\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                px + 5.0,
                py - 6.0,
                short(y),
                sy(0.0) + 14.0,
                p.devices
            );
        }
        out += &format!("<path d=\"{path}\" fill=\"none\" stroke=\"#2a6fdb\"/>\n");
        out += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">devices (log scale)</text>\n",
            ox + W / 2.0,
            sy(0.0) + 30.0
        );
    }
    out + "</svg>\n"
}

fn bounds(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    }
}

fn short(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(devices: usize, wall_ms: f64, cpu_us: f64) -> Point {
        Point {
            devices,
            ops: devices as u64 * 50,
            wall_ms,
            relay_cpu_s: cpu_us * devices as f64 * 50.0 / 1e6,
            relay_cpu_us_per_push: cpu_us,
            generator_cpu_s: 0.1,
            ack_p50_ms: 1.0,
            ack_p99_ms: 2.0,
            relay_peak_rss_mib: 20.0,
            converged: true,
        }
    }

    #[test]
    fn the_plot_has_a_point_and_a_label_per_run_in_each_panel() {
        let s = svg(
            &[
                p(100, 200.0, 44.0),
                p(1000, 2500.0, 51.0),
                p(5000, 13_000.0, 53.0),
            ],
            "changes",
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<circle").count(), 6);
        assert_eq!(s.matches(">5000</text>").count(), 2);
        assert!(s.contains(">13</text>"), "5000 devices' wall time in s");
        assert!(!s.contains("NaN") && !s.contains("inf"));
    }

    #[test]
    fn one_run_still_draws() {
        let s = svg(&[p(100, 200.0, 44.0)], "changes");
        assert_eq!(s.matches("<circle").count(), 2);
        assert!(!s.contains("NaN") && !s.contains("inf"));
    }

    #[test]
    fn figures_come_from_seed_stress_json() {
        let v = serde_json::json!({
            "ops": 5000, "pushes": 5000, "wall_ms": 198.9, "relay_cpu_s": 0.22,
            "load_generator_cpu_s": 0.08, "converged": true,
            "latency_ms": {"push_ack": {"p50": 3.5, "p99": 7.2}},
            "relay_rss_mib": {"peak": 20.5}
        });
        let pt = point(100, &v).unwrap();
        assert!((pt.relay_cpu_us_per_push - 44.0).abs() < 1e-9);
        assert!(point(100, &serde_json::json!({"ops": 1})).is_err());
    }
}
