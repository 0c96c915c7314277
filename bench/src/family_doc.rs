//! The ten-year family document benchmark.
//!
//! Phase 1 (this process) simulates ten years of a family of five: every member edits
//! their own replica, one Automerge change per user action, and the replicas sync
//! weekly, as devices that are often offline would. The host's replica is then stored
//! in a SQLite store the way a device keeps it (a snapshot plus a log tail).
//!
//! Phase 2 runs in a fresh child process, so its peak memory is that of a device that
//! opens the family: open the store and the document, make edits (each including its
//! SQLite commit), compute badges, the home summary and other views.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use doran_client_core::{
    Actor, DocError, Edit, EventInput, FamilyDoc, PhotoInput, StoredVolume, VoiceInput,
    family_store::{cached_family, load_volume, open_family_in},
    seal::{BlobKey, BlobRef},
    store::{LocalStore, SqliteStore, ViewRow},
    sync::{DocKind, StoreHost},
    time_util::{Lang, YearMonth},
    view_cache::VIEW_VERSION,
    views,
};
use doran_protocol::{BlobHash, DeviceId, DocId, FamilyId, UserId, volume_year};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::json;

use crate::stats::{Percentiles, mib, ms, peak_rss_bytes, timed};

const DAY_MS: i64 = 86_400_000;
/// 2016-11-28 09:00 KST: ten years before the benchmark's "now".
const START_MS: i64 = 1_480_291_200_000;
const MEMBERS: usize = 5;
const NAMES: [&str; MEMBERS] = ["엄마", "아빠", "첫째", "둘째", "할머니"];

type Error = Box<dyn std::error::Error>;

/// Options of `doran-bench family-doc`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Size relative to the ten-year family (20 000 events, 5 000 missions, 30 000
    /// photos, 100 000 likes and comments, 2 000 voice messages).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Days between syncs of the members' replicas while the history is built.
    #[arg(long, default_value_t = 7)]
    sync_every_days: i64,
    /// Random seed (the same seed builds the same history).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Edits to time after opening.
    #[arg(long, default_value_t = 300)]
    edits: usize,
    /// Keep the SQLite store here instead of a temporary directory.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Build the family as devices with per-year volumes do (issue 17): the family's
    /// document, and a volume per UTC year for what was made that year; the device
    /// opens it with this year's volume loaded and the older years parked.
    #[arg(long)]
    volumes: bool,
    /// Internal: run phase 2 on an existing store (`--open STORE --doc ID --user ID`).
    #[arg(long, hide = true, requires_all = ["doc", "user"])]
    open: Option<PathBuf>,
    #[arg(long, hide = true)]
    doc: Option<String>,
    #[arg(long, hide = true)]
    user: Option<String>,
}

pub fn run(opts: &Options, json_out: bool) -> Result<(), Error> {
    if let (Some(store), Some(doc), Some(user)) = (&opts.open, &opts.doc, &opts.user) {
        let figures = open_phase(store, doc.parse()?, user.parse()?, opts.edits, opts.volumes)?;
        println!("{figures}");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = opts
        .keep
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let store_path = dir.join("device.sqlite");
    let _ = std::fs::remove_file(&store_path);

    let (built, build_time) = timed(|| build_history(opts));
    let mut built = built?;
    let (snapshot, save_time) = timed(|| built.host.save());
    let doc_id = DocId::from(built.family);
    let years: Vec<u16> = built.host.volume_years().collect();
    let mut volume_bytes = 0;
    {
        let store = SqliteStore::open(&store_path)?;
        let docs = std::iter::once((None, doc_id, snapshot.clone()));
        let volumes = years.iter().map(|&year| {
            let saved = built.host.save_volume(year).unwrap_or_default();
            volume_bytes += saved.len();
            (Some(year), built.family.volume(year), saved)
        });
        for (year, doc, saved) in docs.chain(volumes.collect::<Vec<_>>()) {
            store.apply_remote(doc, &[saved.as_slice()], Some(1))?;
            let stored = store.load(doc)?.ok_or("stored document vanished")?;
            store.compact(doc, &saved, stored.log_end)?;
            // As the device would on its first open: read everything once, cache the
            // view (with volumes, each document's own).
            let stored = store.load(doc)?.ok_or("stored document vanished")?;
            let rows = built.host.cache_rows_of(year)?;
            if !store.replace_view(doc, VIEW_VERSION, stored.log_end, &rows)? {
                return Err("could not cache the view".into());
            }
        }
    }

    // Phase 2 in a fresh process.
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(["family-doc", "--edits", &opts.edits.to_string()])
        .args(opts.volumes.then_some("--volumes"))
        .arg("--open")
        .arg(&store_path)
        .args([
            "--doc",
            &doc_id.to_string(),
            "--user",
            &built.host_user.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "the open phase failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let device: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let disk = sqlite_bytes(&store_path);

    let v = built.host.view();
    let comments: usize = v.photos.values().map(|p| p.comments.len()).sum();
    let likes: usize = v.photos.values().map(|p| p.likes.len()).sum();
    let report = json!({
        "benchmark": "family-doc",
        "scale": opts.scale,
        "seed": opts.seed,
        "history": {
            "changes": built.changes,
            "events": v.calendar.len(),
            "missions": v.missions.len(),
            "photos": v.photos.len(),
            "likes": likes,
            "comments": comments,
            "voices": v.voices.len(),
            "albums": v.albums.len(),
            "build_s": (build_time.as_secs_f64() * 10.0).round() / 10.0,
        },
        "snapshot_bytes": snapshot.len(),
        "volumes": years.len(),
        "volume_snapshot_bytes": volume_bytes,
        "save_ms": ms(save_time),
        "sqlite_bytes_on_disk": disk,
        "device": device,
        "builder_peak_rss_mib": mib(peak_rss_bytes()),
    });
    if json_out {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Sum of the SQLite file and its WAL/SHM companions.
fn sqlite_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).ok().map(|m| m.len())
        })
        .sum()
}

struct Built {
    family: FamilyId,
    host: FamilyDoc,
    host_user: UserId,
    changes: u64,
}

/// A member's replica and what they know has reached everyone.
struct Member {
    doc: FamilyDoc,
    synced_heads: Vec<automerge::ChangeHash>,
    /// The same for each volume (`--volumes`).
    volume_heads: BTreeMap<u16, Vec<automerge::ChangeHash>>,
}

/// Ten years of family life, one change per action, replicas synced every few days.
fn build_history(opts: &Options) -> Result<Built, Error> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let actors: Vec<Actor> = (0..MEMBERS)
        .map(|_| Actor {
            user: UserId(rng.random()),
            device: DeviceId(rng.random()),
        })
        .collect();
    let family = FamilyId(rng.random());
    let (mut host, _) = FamilyDoc::create(family, "우리 가족", NAMES[0], &actors[0], START_MS)?;
    for (i, a) in actors.iter().enumerate().skip(1) {
        host.add_member(a.user, NAMES[i], START_MS + i as i64)?;
    }
    let first_album = host.create_album("우리 가족", START_MS)?.value;
    let first_voice_album = host.create_voice_album("안부", 1, START_MS)?.value;
    let snapshot = host.save();
    let mut members: Vec<Member> = Vec::with_capacity(MEMBERS);
    for a in &actors {
        let mut doc = FamilyDoc::load(Some(&snapshot), [], a)?;
        let synced_heads = doc.replica_mut().heads();
        members.push(Member {
            doc,
            synced_heads,
            volume_heads: BTreeMap::new(),
        });
    }
    drop(host);

    let s = opts.scale;
    let days = 3650i64;
    let per_day = |total: f64| total * s / days as f64;
    let rates = [
        per_day(20_000.0), // events
        per_day(5_000.0),  // missions
        per_day(30_000.0), // photos
        per_day(70_000.0), // likes
        per_day(30_000.0), // comments
        per_day(2_000.0),  // voices
        per_day(300.0),    // albums
        per_day(20.0),     // voice albums
    ];
    let mut owed = [0.0f64; 8];
    // Entities every replica has (made before the last sync), to react to.
    let mut known_photos: Vec<String> = Vec::new();
    let mut known_albums = vec![first_album];
    let mut known_voice_albums = vec![first_voice_album];
    let mut new_photos: Vec<String> = Vec::new();
    let mut new_albums: Vec<String> = Vec::new();
    let mut new_voice_albums: Vec<String> = Vec::new();
    // Mission ticks due on a day: (day, member, mission).
    let mut ticks: BTreeMap<i64, Vec<(usize, String)>> = BTreeMap::new();
    let mut changes = 0u64;
    let mut seq = 0u32;
    let mut year = None;

    for day in 0..days {
        let base = START_MS + day * DAY_MS;
        // A new UTC year (the days start at midnight UTC): each member lists its
        // volume on the first entity they make in it, and files new entities there.
        let this_year = volume_year(base);
        if opts.volumes && year != Some(this_year) {
            year = Some(this_year);
            for (m, a) in members.iter_mut().zip(&actors) {
                let listed = m.doc.register_volume(this_year, base)?;
                changes += u64::from(listed.change.is_some());
                m.doc.attach_volume(this_year, None, [], a)?;
                m.doc.file_new_in(Some(this_year))?;
                m.volume_heads.insert(this_year, Vec::new());
            }
        }
        for (kind, rate) in rates.iter().enumerate() {
            owed[kind] += rate;
            while owed[kind] >= 1.0 {
                owed[kind] -= 1.0;
                seq += 1;
                let who = rng.random_range(0..MEMBERS);
                let now = base + rng.random_range(0..DAY_MS);
                let doc = &mut members[who].doc;
                let made = match kind {
                    0 => {
                        let start = time_util_date(base + rng.random_range(0..60) * DAY_MS);
                        let long = rng.random_bool(0.1);
                        let end =
                            long.then(|| time_util_date(base + rng.random_range(60..64) * DAY_MS));
                        doc.add_event(
                            EventInput {
                                title: format!("일정 {}", seq % 10_000),
                                start,
                                end,
                                color: Some(
                                    doran_client_core::validate::PALETTE[seq as usize % 10]
                                        .to_owned(),
                                ),
                                ..Default::default()
                            },
                            now,
                        )?
                        .change
                    }
                    1 => {
                        let n = rng.random_range(1..=MEMBERS);
                        let mut who_all: Vec<usize> = (0..MEMBERS).collect();
                        who_all.sort_by_key(|_| rng.random::<u32>());
                        let parts: Vec<usize> = who_all[..n].to_vec();
                        let users: Vec<UserId> = parts.iter().map(|&i| actors[i].user).collect();
                        let edit =
                            doc.add_mission(&format!("미션 {}", seq % 100_000), &users, None, now)?;
                        for p in parts {
                            if rng.random_bool(0.8) {
                                let d = day + opts.sync_every_days + rng.random_range(0..14);
                                ticks.entry(d).or_default().push((p, edit.value.clone()));
                            }
                        }
                        edit.change
                    }
                    2 => {
                        let album = known_albums.choose(&mut rng).ok_or("no album")?.clone();
                        let edit = doc.add_photo(&album, photo(seq, now), now)?;
                        new_photos.push(edit.value);
                        edit.change
                    }
                    3 | 4 => {
                        let me = actors[who].user.to_hex();
                        // People like a photo once: look for one this member has not liked.
                        let pick =
                            (0..8)
                                .filter_map(|_| recent(&known_photos, &mut rng))
                                .find(|p| {
                                    kind == 4
                                        || doc
                                            .view()
                                            .photos
                                            .get(p)
                                            .is_some_and(|ph| !ph.likes.contains_key(&me))
                                });
                        let Some(p) = pick else { continue };
                        if kind == 3 {
                            doc.set_like(&p, true, now)?.change
                        } else {
                            doc.add_comment(&p, "너무 좋다!", now)?.change
                        }
                    }
                    5 => {
                        let album = known_voice_albums
                            .choose(&mut rng)
                            .ok_or("no voice album")?
                            .clone();
                        doc.add_voice(
                            &album,
                            VoiceInput {
                                title: "잘 자요".into(),
                                blob: sealed(&seq.to_le_bytes()),
                                size: 120_000,
                                duration_ms: rng.random_range(2_000..180_000),
                                peaks: (0..64).map(|_| rng.random()).collect(),
                            },
                            now,
                        )?
                        .change
                    }
                    6 => {
                        let edit = doc.create_album(&format!("앨범 {}", seq % 1000), now)?;
                        new_albums.push(edit.value);
                        edit.change
                    }
                    _ => {
                        let edit = doc.create_voice_album(
                            &format!("음성 {}", seq % 1000),
                            rng.random_range(1..=4),
                            now,
                        )?;
                        new_voice_albums.push(edit.value);
                        edit.change
                    }
                };
                changes += u64::from(made.is_some());
            }
        }
        for (who, mission) in ticks.remove(&day).unwrap_or_default() {
            let now = base + rng.random_range(0..DAY_MS);
            let doc = &mut members[who].doc;
            if doc.view().missions.contains_key(&mission) {
                changes += u64::from(doc.set_mission_done(&mission, true, now)?.change.is_some());
            }
        }
        if (day + 1) % opts.sync_every_days == 0 || day + 1 == days {
            sync(&mut members)?;
            known_photos.append(&mut new_photos);
            known_albums.append(&mut new_albums);
            known_voice_albums.append(&mut new_voice_albums);
        }
    }
    let host_user = actors[0].user;
    let host = members.swap_remove(0).doc;
    Ok(Built {
        family,
        host,
        host_user,
        changes,
    })
}

/// Every member sends what they made since the last sync to every other member.
fn sync(members: &mut [Member]) -> Result<(), Error> {
    let bundles: Vec<Vec<u8>> = members
        .iter_mut()
        .map(|m| {
            let heads = m.synced_heads.clone();
            m.doc.replica_mut().doc_mut().save_after(&heads)
        })
        .collect();
    for (i, m) in members.iter_mut().enumerate() {
        let update = m.doc.apply_remote(others(&bundles, i));
        if !update.rejected.is_empty() {
            return Err("a replica refused a sync bundle".into());
        }
        m.synced_heads = m.doc.replica_mut().heads();
    }
    let years: Vec<u16> = members
        .first()
        .map(|m| m.doc.volume_years().collect())
        .unwrap_or_default();
    for year in years {
        let bundles: Vec<Vec<u8>> = members
            .iter_mut()
            .map(|m| {
                let heads = m.volume_heads.get(&year).cloned().unwrap_or_default();
                m.doc
                    .volume_mut(year)
                    .map(|r| r.doc_mut().save_after(&heads))
                    .unwrap_or_default()
            })
            .collect();
        for (i, m) in members.iter_mut().enumerate() {
            let update = m.doc.apply_remote_volume(year, others(&bundles, i))?;
            if !update.rejected.is_empty() {
                return Err("a volume refused a sync bundle".into());
            }
            let heads = m
                .doc
                .volume_mut(year)
                .map(|r| r.heads())
                .unwrap_or_default();
            m.volume_heads.insert(year, heads);
        }
    }
    Ok(())
}

/// The non-empty bundles of every member but the `i`th.
fn others(bundles: &[Vec<u8>], i: usize) -> impl Iterator<Item = &[u8]> {
    bundles
        .iter()
        .enumerate()
        .filter(move |(j, b)| *j != i && !b.is_empty())
        .map(|(_, b)| b.as_slice())
}

/// One of the 200 most recent known photos.
fn recent(photos: &[String], rng: &mut StdRng) -> Option<String> {
    let from = photos.len().saturating_sub(200);
    photos[from..].choose(rng).cloned()
}

/// A blob as a device names it: every photo and voice message is sealed, so each
/// entry carries its 32-byte key (made from `seed` here, so runs are alike).
fn sealed(seed: &[u8]) -> BlobRef {
    BlobRef {
        hash: BlobHash::of(seed),
        key: BlobKey::from_slice(&BlobHash::of(&[b"key", seed].concat()).0),
    }
}

fn photo(seq: u32, now: i64) -> PhotoInput {
    PhotoInput {
        blob: sealed(&seq.to_le_bytes()),
        thumb: sealed(&(u64::from(seq) << 32).to_le_bytes()),
        mime: "image/jpeg".into(),
        size: 850_000,
        width: 1920,
        height: 1440,
        taken_at: Some(now - 3_600_000),
        caption: String::new(),
    }
}

fn time_util_date(ms: i64) -> String {
    doran_client_core::time_util::local_date(ms, KST).to_string()
}

const KST: time::UtcOffset = time::macros::offset!(+9);

/// Phase 2: what a device does with the stored family. Prints JSON figures.
fn open_phase(
    path: &Path,
    doc_id: DocId,
    user: UserId,
    edits: usize,
    volumes: bool,
) -> Result<serde_json::Value, Error> {
    let actor = Actor {
        user,
        device: DeviceId::random(),
    };
    let now = device_now();
    let this_year = volume_year(now);
    // First screen: the store and the cached view, no CRDT.
    let mut first_screen = Vec::new();
    for _ in 0..5 {
        let (opened, took) = timed(|| -> Result<usize, Error> {
            let store = SqliteStore::open(path)?;
            let family = cached_family(&store, doc_id)?.ok_or("the view cache is not valid")?;
            Ok(family.photos.len())
        });
        opened?;
        first_screen.push(took);
    }
    let rss_view_only = peak_rss_bytes();
    // Ready to edit and sync: the CRDT loaded behind the cached view.
    let ready = ready_times(path, doc_id, &actor, this_year)?;
    let rss_ready = peak_rss_bytes();
    // Without a usable cache (first open after an upgrade): read every entity.
    let (full, full_load) = timed(|| -> Result<FamilyDoc, Error> {
        let store = SqliteStore::open(path)?;
        let stored = store.load(doc_id)?.ok_or("no such document in the store")?;
        let mut fd = FamilyDoc::load(
            stored.snapshot.as_deref(),
            stored.changes.iter().map(Vec::as_slice),
            &actor,
        )?;
        // With volumes, every one loaded and read whole, merged once (as an open
        // does when no cache is usable, before it parks the older years again).
        let family = FamilyId(doc_id.0);
        let mut stored = Vec::new();
        for year in fd.view().volumes.clone() {
            let v = store
                .load(family.volume(year))?
                .ok_or("a volume is not in the store")?;
            stored.push((year, v));
        }
        let load = stored.iter().map(|(year, v)| StoredVolume {
            year: *year,
            snapshot: v.snapshot.as_deref(),
            chunks: v.changes.iter().map(Vec::as_slice).collect(),
            cached: None,
        });
        fd.open_volumes(load, [], &actor)?;
        Ok(fd)
    });
    drop(full?);
    // The host's edits (below) start from the store as the direct ones do: a copy
    // made now, before they change it.
    let host_path = path.with_file_name("host-edits.sqlite");
    if volumes {
        copy_store(path, &host_path)?;
    }
    let store = SqliteStore::open(path)?;
    let mut doc = open_family_in(&store, doc_id, &actor, this_year)?.family;
    let loaded_volumes = doc.volume_years().count();
    let parked_volumes = doc.parked_years().count();

    // One local edit, as a UI makes it: the operation, then the SQLite commit. On the
    // latest photos and missions, as people react to what is new.
    let photos = latest(doc.view().photos.iter().map(|(id, p)| (p.at, id)));
    let missions = latest(
        (doc.view().missions.iter())
            .filter(|(_, m)| m.participants.contains_key(&user.to_hex()))
            .map(|(id, m)| (m.created_at, id)),
    );
    let family = FamilyId(doc_id.0);
    let mut volume_loads = 0;
    let mut samples = Vec::with_capacity(edits);
    for i in 0..edits {
        let (result, took) = timed(|| -> Result<(), Error> {
            let t = now + i as i64 * 1000;
            // (change, view rows, document) of the edit, whatever it returns. What
            // an older year's volume keeps needs it loaded first, as on a device.
            let (change, view, volume) = match one_edit(&mut doc, i, t, &photos, &missions) {
                Err(DocError::VolumeNotLoaded(year)) => {
                    load_volume(&store, &mut doc, year, &actor)?;
                    volume_loads += 1;
                    one_edit(&mut doc, i, t, &photos, &missions)?
                }
                other => other?,
            };
            let doc_id = volume.map_or(doc_id, |year| family.volume(year));
            if let Some(c) = &change {
                store.commit_local_with_view(doc_id, c, view.as_deref())?;
            }
            Ok(())
        });
        result?;
        samples.push(took);
    }
    let edit = Percentiles::of(&mut samples);

    let month = YearMonth::parse("2026-11")?;
    let mut badge_t = Vec::new();
    let mut home_t = Vec::new();
    let mut dash_t = Vec::new();
    let mut cal_t = Vec::new();
    let profiles = BTreeMap::new();
    for _ in 0..20 {
        badge_t.push(timed(|| views::badges(doc.view())).1);
        home_t.push(
            timed(|| {
                views::home(
                    doc.view(),
                    &profiles,
                    &BTreeMap::new(),
                    views::Viewer {
                        now_ms: now,
                        offset: KST,
                        lang: Lang::Ko,
                    },
                    7,
                )
            })
            .1,
        );
        dash_t.push(timed(|| views::mission_dashboard(doc.view(), month, KST, Lang::Ko)).1);
        cal_t.push(timed(|| views::calendar_month(doc.view(), month, Lang::Ko)).1);
    }
    let feed = timed(|| views::activity(doc.view()).len());
    drop(doc);
    drop(store);

    // Reopen with the edits as a log tail after the snapshot.
    let (reopened, reopen_t) = timed(|| -> Result<usize, Error> {
        let store = SqliteStore::open(path)?;
        let family = cached_family(&store, doc_id)?.ok_or("the view cache is not valid")?;
        Ok(family.photos.len())
    });
    reopened?;
    // The edits' changes are stored after the snapshots: the family's document's, or
    // with volumes this year's volume's.
    let tail: usize = {
        let store = SqliteStore::open(path)?;
        [doc_id, family.volume(this_year)]
            .into_iter()
            .map(|doc| Ok(store.load(doc)?.map_or(0, |s| s.changes.len())))
            .sum::<Result<usize, Error>>()?
    };

    // Ready with the edits as the stored tail (every open replays them), then what the
    // device does once its tail passes COMPACT_STORED_AFTER rows — when it closes, or
    // when idle — and ready again from the compacted copy.
    let mut ready_tail = ready_times(path, doc_id, &actor, this_year)?;
    let screen = Percentiles::of(&mut first_screen.clone());
    let ready_p = Percentiles::of(&mut ready.clone());
    let mut figures = json!({
        "open_ms": { "first": ms(first_screen[0]), "p50": ms(screen.p50) },
        "ready_ms": { "first": ms(ready[0]), "p50": ms(ready_p.p50) },
        "open_without_cache_ms": ms(full_load),
        "view_only_peak_rss_mib": mib(rss_view_only),
        "ready_peak_rss_mib": mib(rss_ready),
        "reopen_with_tail_ms": ms(reopen_t),
        "tail_changes": tail,
        "ready_with_tail_ms": ms(Percentiles::of(&mut ready_tail).p50),
        "edit_ms": { "p50": ms(edit.p50), "p99": ms(edit.p99), "max": ms(edit.max), "count": edits },
        "badges_ms": ms(Percentiles::of(&mut badge_t).p50),
        "home_ms": ms(Percentiles::of(&mut home_t).p50),
        "mission_dashboard_ms": ms(Percentiles::of(&mut dash_t).p50),
        "calendar_month_ms": ms(Percentiles::of(&mut cal_t).p50),
        "activity_feed_ms": ms(feed.1),
        "activity_items": feed.0,
    });
    if volumes {
        // What an edit of last year's photo waits for first: its volume loaded.
        let store = SqliteStore::open(path)?;
        let mut doc = open_family_in(&store, doc_id, &actor, this_year)?.family;
        let (loaded, load_last_year) =
            timed(|| load_volume(&store, &mut doc, this_year - 1, &actor));
        loaded?;
        drop(doc);
        drop(store);
        let (host_ready, host_edit) =
            host_edits(&host_path, (doc_id, actor), edits, (&photos, &missions))?;
        remove_store(&host_path);
        // The edits went to this year's volume: what follows compacts and replays the
        // family's document alone, which volumes keep small.
        add(
            &mut figures,
            json!({
                "loaded_volumes": loaded_volumes,
                "parked_volumes": parked_volumes,
                "volumes_loaded_for_edits": volume_loads,
                "load_last_year_ms": ms(load_last_year),
                "host_ready_ms": ms(host_ready),
                "host_edit_ms": { "p50": ms(host_edit.p50), "p99": ms(host_edit.p99), "max": ms(host_edit.max) },
                "peak_rss_mib": mib(peak_rss_bytes()),
            }),
        );
        return Ok(figures);
    }
    let family_id = FamilyId(doc_id.0);
    let kind = DocKind::Family(family_id);
    // A host that does not have the family open compacts from what the store holds
    // (a load, then a save): timed on a copy of the same file.
    let copy_path = path.with_file_name("compaction-from-the-store.sqlite");
    copy_store(path, &copy_path)?;
    let host = StoreHost::new(Arc::new(SqliteStore::open(&copy_path)?), actor);
    let (compacted, compact_from_store_t) = timed(|| host.compact_stored_doc(doc_id, kind));
    if !compacted? {
        return Err("the device did not compact its copy".into());
    }
    drop(host);
    remove_store(&copy_path);
    // The device itself has the family open (it just made its edits): it saves that.
    let host = StoreHost::new(Arc::new(SqliteStore::open(path)?), actor);
    host.read_family(family_id, |_| ())?;
    let (compacted, compact_t) = timed(|| host.compact_stored_doc(doc_id, kind));
    if !compacted? {
        return Err("the device did not compact its copy".into());
    }
    drop(host);
    let mut ready_compacted = ready_times(path, doc_id, &actor, this_year)?;

    // A device that kept every change as a row since the family began — each arrived
    // as a chunk of its own — as devices did before they compacted their own copy.
    let rows_path = path.with_file_name("every-change-a-row.sqlite");
    let _ = std::fs::remove_file(&rows_path);
    {
        let stored = SqliteStore::open(path)?
            .load(doc_id)?
            .ok_or("no such document in the store")?;
        let snapshot = stored.snapshot.ok_or("no snapshot")?;
        let whole = automerge::Automerge::load(&snapshot)?;
        let rows = SqliteStore::open(&rows_path)?;
        let changes: Vec<Vec<u8>> = whole
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .chain(stored.changes)
            .collect();
        for part in changes.chunks(1000) {
            let part: Vec<&[u8]> = part.iter().map(Vec::as_slice).collect();
            rows.apply_remote(doc_id, &part, None)?;
        }
    }
    let every_row = SqliteStore::open(&rows_path)?.tail_len(doc_id)?;
    let mut ready_rows = ready_times(&rows_path, doc_id, &actor, this_year)?;
    let host = StoreHost::new(Arc::new(SqliteStore::open(&rows_path)?), actor);
    if !host.compact_stored_doc(doc_id, DocKind::Family(FamilyId(doc_id.0)))? {
        return Err("the device did not compact its copy".into());
    }
    drop(host);
    let mut ready_rows_compacted = ready_times(&rows_path, doc_id, &actor, this_year)?;
    let _ = std::fs::remove_file(&rows_path);

    add(
        &mut figures,
        json!({
            "compact_stored_ms": ms(compact_t),
            "compact_stored_from_store_ms": ms(compact_from_store_t),
            "ready_compacted_ms": ms(Percentiles::of(&mut ready_compacted).p50),
            "every_change_a_row": every_row,
            "ready_every_change_a_row_ms": { "first": ms(ready_rows[0]), "p50": ms(Percentiles::of(&mut ready_rows).p50) },
            "ready_every_change_a_row_compacted_ms": ms(Percentiles::of(&mut ready_rows_compacted).p50),
            "peak_rss_mib": mib(peak_rss_bytes()),
        }),
    );
    Ok(figures)
}

/// Adds `more`'s fields to the JSON object `figures`.
fn add(figures: &mut serde_json::Value, more: serde_json::Value) {
    if let (Some(figures), serde_json::Value::Object(more)) = (figures.as_object_mut(), more) {
        figures.extend(more);
    }
}

/// Three opens of the family stored at `path`, each in full (the store opened, the CRDT
/// loaded behind the cached view): what "ready" takes.
fn ready_times(
    path: &Path,
    doc_id: DocId,
    actor: &Actor,
    this_year: u16,
) -> Result<Vec<Duration>, Error> {
    let mut samples = Vec::new();
    for _ in 0..3 {
        // Ready once the document is open: freeing it afterwards is not timed.
        let (opened, took) = timed(|| -> Result<FamilyDoc, Error> {
            let store = SqliteStore::open(path)?;
            Ok(open_family_in(&store, doc_id, actor, this_year)?.family)
        });
        drop(opened?);
        samples.push(took);
    }
    Ok(samples)
}

/// The ids of the 50 latest of `items` (when, id).
fn latest<'a>(items: impl Iterator<Item = (i64, &'a String)>) -> Vec<String> {
    let mut items: Vec<(i64, &String)> = items.collect();
    items.sort_unstable();
    items
        .into_iter()
        .rev()
        .take(50)
        .map(|(_, id)| id.clone())
        .collect()
}

/// The change, view rows and document of an edit.
type Made = (Option<Vec<u8>>, Option<Vec<ViewRow>>, Option<u16>);

fn parts<T>(edit: Edit<T>) -> Made {
    (edit.change, edit.view, edit.volume)
}

/// The SQLite file `path`'s write-ahead log.
fn wal_of(path: &Path) -> PathBuf {
    beside(path, "-wal")
}

/// `path` with `suffix` after its name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Copies the store at `from` (no connection open) to `to`, with its write-ahead log.
fn copy_store(from: &Path, to: &Path) -> std::io::Result<()> {
    remove_store(to);
    std::fs::copy(from, to)?;
    if wal_of(from).exists() {
        std::fs::copy(wal_of(from), wal_of(to))?;
    }
    Ok(())
}

/// Removes the store at `path`, its write-ahead log and its writer's lock file, if
/// there.
fn remove_store(path: &Path) {
    for file in [
        path.to_path_buf(),
        wal_of(path),
        beside(path, "-shm"),
        beside(path, ".writer"),
    ] {
        let _ = std::fs::remove_file(file);
    }
}

/// An edit with what it made left out, as `StoreHost::edit_family` takes it.
fn unit<T>(edit: Edit<T>) -> Edit {
    Edit {
        value: (),
        change: edit.change,
        view: edit.view,
        volume: edit.volume,
        listed: edit.listed,
    }
}

/// The device's "now" in phase 2: ten years after the family began.
fn device_now() -> i64 {
    START_MS + 3650 * DAY_MS
}

/// The `i`th timed edit: a comment, a like or unlike, a tick or untick, a new event.
fn one_edit(
    doc: &mut FamilyDoc,
    i: usize,
    t: i64,
    photos: &[String],
    missions: &[String],
) -> Result<Made, DocError> {
    edit_of(doc, i, t, photos, missions).map(parts)
}

fn edit_of(
    doc: &mut FamilyDoc,
    i: usize,
    t: i64,
    photos: &[String],
    missions: &[String],
) -> Result<Edit, DocError> {
    match i % 4 {
        0 => doc
            .add_comment(&photos[i % photos.len()], "오늘도 고마워요", t)
            .map(unit),
        1 => doc.set_like(&photos[i % photos.len()], i % 8 == 1, t),
        2 => doc.set_mission_done(&missions[i % missions.len()], i % 8 == 2, t),
        _ => doc
            .add_event(
                EventInput {
                    title: "저녁 약속".into(),
                    start: "2026-12-01".into(),
                    ..Default::default()
                },
                t,
            )
            .map(unit),
    }
}

/// What the device's own host does with the stored family (volumes): ready (its first
/// edit opens the family) and each edit through `StoreHost::edit_family`, which also
/// compares each volume's log end with the store's before using the family.
fn host_edits(
    path: &Path,
    (doc_id, actor): (DocId, Actor),
    edits: usize,
    (photos, missions): (&[String], &[String]),
) -> Result<(Duration, Percentiles), Error> {
    let store: Arc<dyn LocalStore> = Arc::new(SqliteStore::open(path)?);
    let host = StoreHost::new(store, actor).with_clock(device_now);
    let family = FamilyId(doc_id.0);
    let (ready, took) = timed(|| host.read_family(family, |fd| fd.view().photos.len()));
    ready?;
    let mut samples = Vec::with_capacity(edits);
    for i in 0..edits {
        let t = device_now() + (edits + i) as i64 * 1000;
        let (made, took) =
            timed(|| host.edit_family(family, |fd| edit_of(fd, i, t, photos, missions)));
        made?;
        samples.push(took);
    }
    Ok((took, Percentiles::of(&mut samples)))
}

fn print_table(r: &serde_json::Value) {
    let h = &r["history"];
    let d = &r["device"];
    println!(
        "family-doc benchmark (scale {}, seed {})",
        r["scale"], r["seed"]
    );
    println!(
        "  history      {} changes: {} events, {} missions, {} photos, {} likes, {} comments, {} voices ({} s to build)",
        h["changes"],
        h["events"],
        h["missions"],
        h["photos"],
        h["likes"],
        h["comments"],
        h["voices"],
        h["build_s"]
    );
    println!(
        "  snapshot     {} bytes (save {} ms)",
        r["snapshot_bytes"], r["save_ms"]
    );
    println!(
        "  on disk      {} bytes (SQLite, snapshot + {} tail changes)",
        r["sqlite_bytes_on_disk"], d["tail_changes"]
    );
    println!(
        "  open         first {} ms, p50 {} ms to the first screen, from the view cache   (goal < 200 ms)",
        d["open_ms"]["first"], d["open_ms"]["p50"]
    );
    println!(
        "  ready        first {} ms, p50 {} ms until edits and sync (CRDT loaded behind the cache)",
        d["ready_ms"]["first"], d["ready_ms"]["p50"]
    );
    println!(
        "  no cache     {} ms (read every entity, as when the cache must be rebuilt)",
        d["open_without_cache_ms"]
    );
    println!("  reopen+tail  {} ms", d["reopen_with_tail_ms"]);
    if d["loaded_volumes"].is_null() {
        println!(
            "  ready+tail   p50 {} ms with the edits stored as {} rows; the device compacts its copy in {} ms (the family open; {} ms from the store); then ready p50 {} ms",
            d["ready_with_tail_ms"],
            d["tail_changes"],
            d["compact_stored_ms"],
            d["compact_stored_from_store_ms"],
            d["ready_compacted_ms"]
        );
        println!(
            "  every row    ready first {} ms, p50 {} ms with every change since the start stored as a row ({} rows, a device that never compacted); {} ms once compacted",
            d["ready_every_change_a_row_ms"]["first"],
            d["ready_every_change_a_row_ms"]["p50"],
            d["every_change_a_row"],
            d["ready_every_change_a_row_compacted_ms"]
        );
    } else {
        println!(
            "  volumes      {} ({} bytes of snapshots): {} loaded when ready, {} parked; {} loaded for the edits; last year's loaded in {} ms",
            r["volumes"],
            r["volume_snapshot_bytes"],
            d["loaded_volumes"],
            d["parked_volumes"],
            d["volumes_loaded_for_edits"],
            d["load_last_year_ms"]
        );
        println!(
            "  ready+tail   p50 {} ms with the edits stored as {} rows",
            d["ready_with_tail_ms"], d["tail_changes"]
        );
        println!(
            "  host         ready {} ms; one edit p50 {} ms, p99 {} ms, max {} ms through StoreHost::edit_family",
            d["host_ready_ms"],
            d["host_edit_ms"]["p50"],
            d["host_edit_ms"]["p99"],
            d["host_edit_ms"]["max"]
        );
    }
    println!(
        "  one edit     p50 {} ms, p99 {} ms, max {} ms over {} edits incl. SQLite commit   (goal < 2 ms)",
        d["edit_ms"]["p50"], d["edit_ms"]["p99"], d["edit_ms"]["max"], d["edit_ms"]["count"]
    );
    println!("  badges       {} ms", d["badges_ms"]);
    println!("  home         {} ms", d["home_ms"]);
    println!("  dashboard    {} ms", d["mission_dashboard_ms"]);
    println!("  calendar     {} ms (one month)", d["calendar_month_ms"]);
    println!(
        "  feed         {} ms ({} items)",
        d["activity_feed_ms"], d["activity_items"]
    );
    println!(
        "  peak memory  {} MiB with the view only, {} MiB when ready (CRDT loaded), {} MiB after every phase (device process); builder {} MiB",
        d["view_only_peak_rss_mib"],
        d["ready_peak_rss_mib"],
        d["peak_rss_mib"],
        r["builder_peak_rss_mib"]
    );
}
