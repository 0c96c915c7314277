//! `doran-bench audio`: our WebM/Opus → MP3 converter against the ffmpeg command line on
//! the same 60-second and 180-second recordings, in one run.
//!
//! The recordings are made first with ffmpeg: espeak-ng speech looped to length, encoded
//! like a browser's MediaRecorder would (libopus, 32 kbps, mono, 48 kHz, live-style
//! WebM). Then, alternating, `--reps` times each: our converter in this process
//! (`doran_audio::convert`, file to file) and
//! `ffmpeg -i IN -codec:a libmp3lame -b:a 64k OUT.mp3` as a child process. Wall time is
//! measured around each; CPU time (user + system) from `/proc/self/stat`, for ourselves
//! and for waited-for children. Medians are reported, with ours / ffmpeg.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use doran_audio::ConvertOptions;

use crate::stats::{median, ticks};

/// Options of `doran-bench audio`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Repetitions of each conversion (the median is reported).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Recording lengths in seconds.
    #[arg(long, value_delimiter = ',', default_value = "60,180")]
    seconds: Vec<u32>,
}

struct Figures {
    seconds: u32,
    input_bytes: u64,
    ours_wall: Duration,
    ours_cpu: Duration,
    ours_bytes: u64,
    ours_duration_ms: u64,
    ffmpeg_wall: Duration,
    ffmpeg_cpu: Duration,
    ffmpeg_bytes: u64,
}

pub fn run(opts: &Options, json: bool) -> Result<(), String> {
    for tool in ["ffmpeg", "espeak-ng"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!(
                "`{tool}` is needed: apt-get install ffmpeg espeak-ng"
            ));
        }
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let speech = dir.path().join("speech.wav");
    run_tool(Command::new("espeak-ng").arg("-w").arg(&speech).arg(
        "Grandma, happy birthday! We will visit you on Sunday with the kids. \
         Mina made a cake and Joon wants to show you his new bicycle. See you soon.",
    ))?;
    let mut all = Vec::new();
    for &secs in &opts.seconds {
        let input = dir.path().join(format!("voice-{secs}s.webm"));
        run_tool(
            Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-stream_loop", "-1", "-i"])
                .arg(&speech)
                .args([
                    "-t",
                    &secs.to_string(),
                    "-c:a",
                    "libopus",
                    "-b:a",
                    "32k",
                    "-ac",
                    "1",
                ])
                .args(["-ar", "48000", "-f", "webm", "-live", "1"])
                .arg(&input),
        )?;
        all.push(measure(dir.path(), &input, secs, opts.reps.max(1))?);
    }
    print(&all, json);
    Ok(())
}

fn measure(dir: &Path, input: &Path, seconds: u32, reps: usize) -> Result<Figures, String> {
    let ours_out = dir.join("ours.mp3");
    let ff_out = dir.join("ffmpeg.mp3");
    let conv_opts = ConvertOptions {
        max_duration_ms: 3_600_000,
        ..ConvertOptions::default()
    };
    let (mut ow, mut oc, mut fw, mut fc) = (vec![], vec![], vec![], vec![]);
    let mut ours_duration_ms = 0;
    for _ in 0..reps {
        let cpu0 = cpu_times();
        let t = Instant::now();
        let inp = std::fs::File::open(input).map_err(|e| e.to_string())?;
        let mut out = std::fs::File::create(&ours_out).map_err(|e| e.to_string())?;
        let c = doran_audio::convert(inp, &mut out, &conv_opts).map_err(|e| e.to_string())?;
        drop(out);
        ow.push(t.elapsed());
        oc.push(cpu_times().0.saturating_sub(cpu0.0));
        ours_duration_ms = c.duration_ms;

        let cpu0 = cpu_times();
        let t = Instant::now();
        run_tool(
            Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-i"])
                .arg(input)
                .args(["-codec:a", "libmp3lame", "-b:a", "64k"])
                .arg(&ff_out),
        )?;
        fw.push(t.elapsed());
        fc.push(cpu_times().1.saturating_sub(cpu0.1));
    }
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(Figures {
        seconds,
        input_bytes: size(&input.to_path_buf()),
        ours_wall: median(&mut ow),
        ours_cpu: median(&mut oc),
        ours_bytes: size(&ours_out),
        ours_duration_ms,
        ffmpeg_wall: median(&mut fw),
        ffmpeg_cpu: median(&mut fc),
        ffmpeg_bytes: size(&ff_out),
    })
}

fn print(all: &[Figures], json: bool) {
    let ms = crate::stats::ms;
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|f| {
                serde_json::json!({
                    "seconds": f.seconds,
                    "input_bytes": f.input_bytes,
                    "ours_wall_ms": ms(f.ours_wall),
                    "ours_cpu_ms": ms(f.ours_cpu),
                    "ours_mp3_bytes": f.ours_bytes,
                    "ours_duration_ms": f.ours_duration_ms,
                    "ffmpeg_wall_ms": ms(f.ffmpeg_wall),
                    "ffmpeg_cpu_ms": ms(f.ffmpeg_cpu),
                    "ffmpeg_mp3_bytes": f.ffmpeg_bytes,
                    "wall_ratio": ratio(f.ours_wall, f.ffmpeg_wall),
                    "cpu_ratio": ratio(f.ours_cpu, f.ffmpeg_cpu),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "audio": rows }));
        return;
    }
    println!(
        "| recording | ours wall | ours CPU | ffmpeg wall | ffmpeg CPU | wall ratio | CPU ratio | MP3 ours / ffmpeg |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in all {
        println!(
            "| {} s WebM/Opus ({} KB) | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2}× | {:.2}× | {} KB / {} KB |",
            f.seconds,
            f.input_bytes / 1000,
            ms(f.ours_wall),
            ms(f.ours_cpu),
            ms(f.ffmpeg_wall),
            ms(f.ffmpeg_cpu),
            ratio(f.ours_wall, f.ffmpeg_wall),
            ratio(f.ours_cpu, f.ffmpeg_cpu),
            f.ours_bytes / 1000,
            f.ffmpeg_bytes / 1000,
        );
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    (a.as_secs_f64() / b.as_secs_f64().max(1e-9) * 100.0).round() / 100.0
}

/// (this process's user+system CPU, waited-for children's user+system CPU).
pub(crate) fn cpu_times() -> (Duration, Duration) {
    match crate::stats::cpu_ticks("self") {
        Some([u, s, cu, cs]) => (ticks(u + s), ticks(cu + cs)),
        None => (Duration::ZERO, Duration::ZERO),
    }
}

/// Runs a reference tool; its stderr is the error when it fails.
pub(crate) fn run_tool(cmd: &mut Command) -> Result<(), String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(())
}
