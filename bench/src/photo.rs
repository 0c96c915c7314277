//! `doran-bench photo`: preparing a 12 MP phone photo for sharing (the display copy
//! ≤ 1920 px and the thumbnail ≤ 320 px, `doran_device::photo::prepare`) against
//! `vipsthumbnail` and the ffmpeg command line doing the same job on the same file, in
//! one run.
//!
//! The fixture is made first with ffmpeg unless `--input` names one: a 4000×3000 JPEG
//! of fine fractal detail, smooth colour ramps and sensor-like grain (4:2:0,
//! `-q:v 2`, ≈ 5 MB like a phone's), with an EXIF block spliced in after SOI:
//! orientation (6 by default: a portrait shot stored sideways, as phones do), a capture
//! time and a GPS position — the things `prepare` must apply, return and strip.
//!
//! Measured, `--reps` times each, medians and p99 reported:
//! - ours: `prepare` in this process (wall and CPU time; libjpeg-turbo and the
//!   resizer run on the calling thread, so the two should match);
//!   its peak memory from a child process (this binary again, `--child FILE`) that
//!   reads the file, prepares it once and reports its own `VmHWM`;
//! - `vipsthumbnail IN --size 1920x1920 -o display.jpg[Q=85,strip]`, then the same
//!   from the display copy at 320 and Q=80 (what we do: the thumbnail comes from the
//!   display pixels). libvips decodes the JPEG at a reduced scale and runs a thread
//!   pool, so its CPU time is reported next to its wall time;
//! - ffmpeg: one process, Lanczos scale to fit 1920 then 320, two JPEGs at `-q:v 3`
//!   and `-q:v 4` (it turns the picture upright from the EXIF orientation too);
//! - sealing what `prepare` made, as the device does before it queues the blobs
//!   (`doran_client_core::seal`: a new key, XChaCha20-Poly1305 STREAM, then blake3 of
//!   the sealed bytes, for the display copy and the thumbnail) — its share of a photo;
//! - the whole `doran photo add` (read the file, prepare, seal and store both blobs, edit the
//!   family document) on a device set up against a relay that is then stopped, as a
//!   phone adding a photo offline — when `doran` and `doran-server` were built next to
//!   this binary (`cargo build --release -p doran-cli -p doran-server`); skipped with a
//!   message otherwise.
//!
//! Peak memory of the child processes (references, `doran photo add`) is the maximum
//! resident set from `/usr/bin/time -f %M` (Debian package `time`); without it those
//! figures are left out. References that are not installed (`apt-get install
//! libvips-tools ffmpeg`) are skipped with a message: this bench installs nothing.
//!
//! The display copies are compared by PSNR against an exact rendering: the original
//! decoded at full size with the `image` crate, turned upright, resized with Lanczos-3
//! to the same size (which is how `prepare` worked before its fast path, so that
//! version scores a little higher for the method alone). PSNR is given over the RGB
//! channels and over luma alone (BT.601 Y): 4:2:0 chroma costs RGB PSNR, not luma.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use doran_client_core::seal;

use crate::{
    audio::{cpu_times, run_tool},
    stats::{Percentiles, median, mib, ms},
};

/// Options of `doran-bench photo`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Repetitions of each measurement (p50 and p99 reported).
    #[arg(long, default_value_t = 15)]
    reps: usize,
    /// A JPEG to prepare instead of the generated 12 MP fixture.
    #[arg(long)]
    input: Option<PathBuf>,
    /// EXIF orientation written into the generated fixture (1–8).
    #[arg(long, default_value_t = 6)]
    orientation: u16,
    /// Runs of the child process that measures our peak memory (median reported).
    #[arg(long, default_value_t = 5)]
    rss_runs: usize,
    /// Internal: prepare FILE once in this process and print its peak memory as JSON.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

/// One tool's figures over the repetitions.
#[derive(Debug, Default)]
struct Row {
    name: String,
    wall: Percentiles,
    cpu: Duration,
    peak_rss: Option<u64>,
    display_bytes: u64,
    thumb_bytes: u64,
    display_dims: (u32, u32),
    thumb_dims: (u32, u32),
    psnr: Option<(f64, f64)>,
    note: String,
    /// The display copy itself, for the PSNR comparison.
    display: Vec<u8>,
}

pub fn run(opts: &Options, json: bool) -> Result<(), String> {
    if let Some(file) = &opts.child {
        return child(file);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input = match &opts.input {
        Some(p) => p.clone(),
        None => make_fixture(dir.path(), opts.orientation)?,
    };
    let original = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let (ow, oh) = image::ImageReader::new(std::io::Cursor::new(&original))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())?;
    let reps = opts.reps.max(1);
    let has_time = Path::new("/usr/bin/time").is_file();
    if !has_time {
        eprintln!(
            "photo: /usr/bin/time not found (apt-get install time): no peak memory for child processes"
        );
    }

    let mut rows = vec![
        ours(&original, &input, reps, opts.rss_runs.max(1))?,
        sealing(&original, reps)?,
    ];
    match tool_present("vipsthumbnail", "--vips-version") {
        true => rows.push(vips(dir.path(), &input, reps, has_time)?),
        false => eprintln!(
            "photo: vipsthumbnail not installed (apt-get install libvips-tools): reference skipped"
        ),
    }
    match tool_present("ffmpeg", "-version") {
        true => rows.push(ffmpeg(dir.path(), &input, reps, has_time)?),
        false => eprintln!("photo: ffmpeg not installed: reference skipped"),
    }
    match whole_command(dir.path(), &input, reps, has_time) {
        Ok(row) => rows.push(row),
        Err(why) => eprintln!("photo: `doran photo add` not measured: {why}"),
    }
    let exact = exact_rendering(&original)?;
    for row in &mut rows {
        row.psnr = image::load_from_memory(&row.display)
            .ok()
            .and_then(|d| psnr(&exact, &d.into_rgb8()));
    }
    print(&rows, &input, original.len(), (ow, oh), reps, json);
    Ok(())
}

/// Sealing the display copy and the thumbnail `prepare` made of `original`, `reps`
/// times after one warm-up, as `BlobCache::add_local` does (a new key each, the
/// seal, blake3 of the sealed bytes).
fn sealing(original: &[u8], reps: usize) -> Result<Row, String> {
    let p = doran_device::photo::prepare(original).map_err(|e| e.to_string())?;
    let seal_both = || -> Result<(Vec<u8>, Vec<u8>), String> {
        let one = |bytes: &[u8]| {
            let key = seal::BlobKey::random().map_err(|e| e.to_string())?;
            let sealed = seal::seal(&key, bytes).map_err(|e| e.to_string())?;
            std::hint::black_box(doran_protocol::BlobHash::of(&sealed));
            Ok::<_, String>(sealed)
        };
        Ok((one(&p.display)?, one(&p.thumb)?))
    };
    seal_both()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut sealed = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let c0 = cpu_times().0;
        let t = Instant::now();
        sealed = seal_both()?;
        wall.push(t.elapsed());
        cpu.push(cpu_times().0.saturating_sub(c0));
    }
    Ok(Row {
        name: "ours (sealing both)".into(),
        wall: Percentiles::of(&mut wall),
        cpu: median(&mut cpu),
        peak_rss: None,
        display_bytes: sealed.0.len() as u64,
        thumb_bytes: sealed.1.len() as u64,
        display_dims: (p.width, p.height),
        thumb_dims: image::load_from_memory(&p.thumb)
            .map(|t| (t.width(), t.height()))
            .map_err(|e| e.to_string())?,
        psnr: None,
        note: "sealed sizes; part of `doran photo add` below".into(),
        display: Vec::new(),
    })
}

/// `--child FILE`: one `prepare`, then this process's peak memory, before and after.
fn child(file: &Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
    let before = crate::stats::peak_rss_bytes();
    let p = doran_device::photo::prepare(&bytes).map_err(|e| e.to_string())?;
    let peak = crate::stats::peak_rss_bytes();
    println!(
        "{}",
        serde_json::json!({ "before": before, "peak": peak, "display": p.display.len() })
    );
    Ok(())
}

/// The 12 MP fixture: ffmpeg's picture, then an EXIF block after SOI.
fn make_fixture(dir: &Path, orientation: u16) -> Result<PathBuf, String> {
    if !tool_present("ffmpeg", "-version") {
        return Err("`ffmpeg` is needed to make the fixture (or pass --input FILE)".into());
    }
    let plain = dir.join("plain.jpg");
    run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(
                "mandelbrot=s=1000x750:end_pts=1:outer=normalized_iteration_count,\
                 scale=4000:3000:flags=bicubic,format=yuv420p,\
                 noise=c0s=18:c1s=5:c2s=5:allf=t",
            )
            .args(["-frames:v", "1", "-q:v", "2"])
            .arg(&plain),
    )?;
    let jpeg = std::fs::read(&plain).map_err(|e| e.to_string())?;
    if jpeg.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err("ffmpeg did not make a JPEG".into());
    }
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&exif_tiff(orientation));
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(
        &u16::try_from(app1.len() + 2)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    let path = dir.join("phone-12mp.jpg");
    std::fs::write(&path, out).map_err(|e| e.to_string())?;
    Ok(path)
}

/// A little-endian TIFF block: IFD0 {Orientation, ExifIFD, GPSInfo}, the Exif IFD
/// {DateTimeOriginal, OffsetTimeOriginal}, the GPS IFD {GPSLatitudeRef}.
fn exif_tiff(orientation: u16) -> Vec<u8> {
    fn entry(t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value);
    }
    // IFD0 at 8 (3 entries, ends at 50); Exif IFD at 50 (2 entries, ends at 80), its
    // strings at 80 (20 bytes) and 100 (7 bytes, padded to 8); GPS IFD at 108.
    let mut t = b"II\x2a\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8769, 4, 1, 50u32.to_le_bytes());
    entry(&mut t, 0x8825, 4, 1, 108u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x9003, 2, 20, 80u32.to_le_bytes());
    entry(&mut t, 0x9011, 2, 7, 100u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(b"2024:05:05 14:30:00\0");
    t.extend_from_slice(b"+09:00\0\0");
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

fn ours(original: &[u8], input: &Path, reps: usize, rss_runs: usize) -> Result<Row, String> {
    let prepare = || doran_device::photo::prepare(original).map_err(|e| e.to_string());
    // One run first: page in the code and warm the allocator, as an app that has
    // prepared a photo before.
    let p = prepare()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let c0 = cpu_times().0;
        let t = Instant::now();
        let p = prepare()?;
        wall.push(t.elapsed());
        cpu.push(cpu_times().0.saturating_sub(c0));
        drop(p);
    }
    let mut peaks = Vec::new();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for _ in 0..rss_runs {
        let out = Command::new(&exe)
            .args(["photo", "--child"])
            .arg(input)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err("the child preparing the photo failed".into());
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        peaks.push(v["peak"].as_u64().unwrap_or(0));
    }
    peaks.sort_unstable();
    let thumb = image::load_from_memory(&p.thumb).map_err(|e| e.to_string())?;
    Ok(Row {
        name: "ours (prepare)".into(),
        wall: Percentiles::of(&mut wall),
        cpu: median(&mut cpu),
        peak_rss: peaks.get(peaks.len() / 2).copied(),
        display_bytes: p.display.len() as u64,
        thumb_bytes: p.thumb.len() as u64,
        display_dims: (p.width, p.height),
        thumb_dims: (thumb.width(), thumb.height()),
        psnr: None,
        note: format!(
            "metadata stripped: {}, taken_at {:?}",
            stripped(&p.display) && stripped(&p.thumb),
            p.taken_at
        ),
        display: p.display,
    })
}

fn vips(dir: &Path, input: &Path, reps: usize, has_time: bool) -> Result<Row, String> {
    let display = dir.join("vips-display.jpg");
    let thumb = dir.join("vips-thumb.jpg");
    let jobs = [
        vec![
            input.display().to_string(),
            "--size".into(),
            "1920x1920".into(),
            "-o".into(),
            format!("{}[Q=85,strip]", display.display()),
        ],
        vec![
            display.display().to_string(),
            "--size".into(),
            "320x320".into(),
            "-o".into(),
            format!("{}[Q=80,strip]", thumb.display()),
        ],
    ];
    let mut row = timed_children("vipsthumbnail", "vipsthumbnail", &jobs, reps, has_time, dir)?;
    fill_outputs(&mut row, &display, &thumb)?;
    row.note = format!(
        "libvips {}, shrink-on-load, thread pool",
        tool_version("vipsthumbnail", "--vips-version")
    );
    Ok(row)
}

fn ffmpeg(dir: &Path, input: &Path, reps: usize, has_time: bool) -> Result<Row, String> {
    let display = dir.join("ffmpeg-display.jpg");
    let thumb = dir.join("ffmpeg-thumb.jpg");
    let job = vec![
        "-v".into(),
        "error".into(),
        "-y".into(),
        "-i".into(),
        input.display().to_string(),
        "-filter_complex".into(),
        "[0:v]scale=1920:1920:force_original_aspect_ratio=decrease:flags=lanczos,split[d][t];\
         [t]scale=320:320:force_original_aspect_ratio=decrease:flags=lanczos[s]"
            .into(),
        "-map".into(),
        "[d]".into(),
        "-frames:v".into(),
        "1".into(),
        "-q:v".into(),
        "3".into(),
        display.display().to_string(),
        "-map".into(),
        "[s]".into(),
        "-frames:v".into(),
        "1".into(),
        "-q:v".into(),
        "4".into(),
        thumb.display().to_string(),
    ];
    let mut row = timed_children("ffmpeg", "ffmpeg", &[job], reps, has_time, dir)?;
    fill_outputs(&mut row, &display, &thumb)?;
    row.note = "one process, Lanczos".into();
    Ok(row)
}

/// `doran photo add` on a device set up against a relay that is then stopped.
fn whole_command(dir: &Path, input: &Path, reps: usize, has_time: bool) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = exe.parent().ok_or("no folder")?;
    let (doran, server) = (bin_dir.join("doran"), bin_dir.join("doran-server"));
    if !doran.is_file() || !server.is_file() {
        return Err(format!(
            "`doran` and `doran-server` are not built in {} \
             (cargo build --release -p doran-cli -p doran-server)",
            bin_dir.display()
        ));
    }
    let home = dir.join("phone");
    let run = |args: &[&str]| crate::cli_sync::cli(&doran, &home, args);
    let (family, album) = {
        let (mut relay, addr) = doran_testkit::spawn(
            Command::new(&server)
                .arg("--data-dir")
                .arg(dir.join("relay"))
                .args(["--listen", "127.0.0.1:0"])
                .env("DORAN_LOG", "warn")
                .stderr(Stdio::null()),
        )
        .map_err(|e| e.to_string())?;
        let url = format!("http://{addr}");
        let setup = (|| {
            run(&[
                "account",
                "create",
                "--server",
                &url,
                "--email",
                "grandma@example.com",
                "--name",
                "할머니곰",
            ])?;
            let family = run(&["family", "create", "사진 가족", "--as", "할머니"])?;
            let album = run(&["album", "create", &family, "여름 바다"])?;
            run(&["sync"])?;
            Ok::<_, String>((family, album))
        })();
        let _ = relay.kill();
        let _ = relay.wait();
        setup?
    };
    let file = input.display().to_string();
    let args: Vec<String> = [
        "--home",
        &home.display().to_string(),
        "photo",
        "add",
        &family,
        &album,
        &file,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let jobs = [args];
    let doran_name = doran.display().to_string();
    let mut row = timed_children("doran photo add", &doran_name, &jobs, reps, has_time, dir)?;
    row.note = "offline: relay stopped; includes storing blobs and the document edit".into();
    Ok(row)
}

/// Runs `jobs` of `program` in sequence, `reps` times; wall, children's CPU, and the
/// largest peak RSS any of them reached (through `/usr/bin/time`).
fn timed_children(
    name: &str,
    program: &str,
    jobs: &[Vec<String>],
    reps: usize,
    has_time: bool,
    dir: &Path,
) -> Result<Row, String> {
    let rss_file = dir.join("rss.txt");
    let once = |peaks: &mut Vec<u64>| -> Result<(), String> {
        let mut peak = 0;
        for job in jobs {
            let mut cmd = if has_time {
                let mut c = Command::new("/usr/bin/time");
                c.args(["-f", "%M", "-o"]).arg(&rss_file).arg(program);
                c
            } else {
                Command::new(program)
            };
            run_tool(cmd.args(job).stdout(Stdio::null()))?;
            if has_time {
                let kb = std::fs::read_to_string(&rss_file)
                    .ok()
                    .and_then(|s| s.lines().last()?.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                peak = peak.max(kb * 1024);
            }
        }
        peaks.push(peak);
        Ok(())
    };
    let mut peaks = Vec::new();
    once(&mut peaks)?; // warm the page cache and the binaries
    peaks.clear();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let c0 = cpu_times().1;
        let t = Instant::now();
        once(&mut peaks)?;
        wall.push(t.elapsed());
        cpu.push(cpu_times().1.saturating_sub(c0));
    }
    peaks.sort_unstable();
    Ok(Row {
        name: name.to_owned(),
        wall: Percentiles::of(&mut wall),
        cpu: median(&mut cpu),
        peak_rss: has_time
            .then(|| peaks.get(peaks.len() / 2).copied())
            .flatten(),
        ..Row::default()
    })
}

fn fill_outputs(row: &mut Row, display: &Path, thumb: &Path) -> Result<(), String> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let dims = |p: &Path| -> Result<(u32, u32), String> {
        image::image_dimensions(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    row.display = std::fs::read(display).map_err(|e| format!("{}: {e}", display.display()))?;
    row.display_bytes = size(display);
    row.thumb_bytes = size(thumb);
    row.display_dims = dims(display)?;
    row.thumb_dims = dims(thumb)?;
    Ok(())
}

/// The original decoded at full size, turned upright, Lanczos-3 to fit 1920.
fn exact_rendering(original: &[u8]) -> Result<image::RgbImage, String> {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(original))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_decoder()
        .map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    let (w, h) = (img.width(), img.height());
    let long = w.max(h);
    let max = doran_device::photo::DISPLAY_MAX_SIDE;
    if long <= max {
        return Ok(img.into_rgb8());
    }
    let scale =
        |s: u32| ((u64::from(s) * u64::from(max) + u64::from(long) / 2) / u64::from(long)) as u32;
    Ok(img
        .resize_exact(scale(w), scale(h), image::imageops::FilterType::Lanczos3)
        .into_rgb8())
}

/// Peak signal-to-noise ratio of `b` against `a` (dB): over the RGB channels, and over
/// luma alone.
fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> Option<(f64, f64)> {
    if a.dimensions() != b.dimensions() {
        return None;
    }
    let db = |sse: f64, n: f64| {
        let mse = sse / n;
        if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0 * 255.0 / mse).log10()
        }
    };
    let luma = |p: &image::Rgb<u8>| {
        0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
    };
    let (mut rgb_sse, mut y_sse) = (0.0, 0.0);
    for (pa, pb) in a.pixels().zip(b.pixels()) {
        for c in 0..3 {
            let d = f64::from(pa[c]) - f64::from(pb[c]);
            rgb_sse += d * d;
        }
        let d = luma(pa) - luma(pb);
        y_sse += d * d;
    }
    let n = f64::from(a.width()) * f64::from(a.height());
    Some((db(rgb_sse, n * 3.0), db(y_sse, n)))
}

/// No EXIF, XMP, ICC or IPTC segment, nor their tell-tale strings.
fn stripped(jpeg: &[u8]) -> bool {
    let has = |needle: &[u8]| jpeg.windows(needle.len()).any(|w| w == needle);
    !has(b"Exif\0\0") && !has(b"http://ns.adobe.com/xap") && !has(b"ICC_PROFILE")
}

fn print(
    rows: &[Row],
    input: &Path,
    input_bytes: usize,
    dims: (u32, u32),
    reps: usize,
    json: bool,
) {
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "wall_ms": r.wall.json(),
                    "cpu_ms_p50": ms(r.cpu),
                    "peak_rss_bytes": r.peak_rss,
                    "display_bytes": r.display_bytes,
                    "display_dims": [r.display_dims.0, r.display_dims.1],
                    "thumb_bytes": r.thumb_bytes,
                    "thumb_dims": [r.thumb_dims.0, r.thumb_dims.1],
                    "display_psnr_rgb_db": r.psnr.map(|p| p.0),
                    "display_psnr_y_db": r.psnr.map(|p| p.1),
                    "note": r.note,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "photo": {
                "input": input.display().to_string(), "input_bytes": input_bytes,
                "input_dims": [dims.0, dims.1], "reps": reps, "rows": rows } })
        );
        return;
    }
    println!(
        "input: {} ({}×{}, {:.2} MB), {reps} runs each",
        input.display(),
        dims.0,
        dims.1,
        input_bytes as f64 / 1e6
    );
    println!(
        "| what | wall p50 | wall p99 | CPU p50 | peak RSS | display | thumbnail | display PSNR RGB / Y | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let dims = |d: (u32, u32), b: u64| {
            if b == 0 {
                "—".to_owned()
            } else {
                format!("{}×{}, {} KB", d.0, d.1, b / 1000)
            }
        };
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} | {} | {} | {} |",
            r.name,
            ms(r.wall.p50),
            ms(r.wall.p99),
            ms(r.cpu),
            r.peak_rss
                .map_or("—".to_owned(), |b| format!("{:.1} MiB", mib(b))),
            dims(r.display_dims, r.display_bytes),
            dims(r.thumb_dims, r.thumb_bytes),
            r.psnr
                .map_or("—".to_owned(), |(rgb, y)| format!("{rgb:.1} / {y:.1} dB")),
            r.note,
        );
    }
}

fn tool_present(tool: &str, version_flag: &str) -> bool {
    Command::new(tool)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn tool_version(tool: &str, flag: &str) -> String {
    Command::new(tool)
        .arg(flag)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .last()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}
