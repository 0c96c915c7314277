//! Many devices, one family, a hostile network: the real `doran` and `doran-server`
//! binaries over loopback.
//!
//! - three devices (two people, one of them with a second, linked device) edit offline,
//!   reconnect in different orders and end with byte-identical `doran export`s;
//! - the same through a fault-injecting TCP proxy (seeded: refused and stalled
//!   connections, cuts at random byte counts, cuts right after a push so the relay gets
//!   it again, delayed reads and writes), then once more directly;
//! - the relay killed (SIGKILL) while a device pushes and while another pulls, then
//!   restarted on the same data and address;
//! - `doran` processes killed (SIGKILL) at random moments while editing and syncing:
//!   every id a process printed is in the export, and reaches the other device;
//! - an invite sent to someone who is offline is there when they come back.
//!
//! `doran export FAMILY` is deterministic JSON of the whole family document, so equal
//! exports stand for equal documents.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};

use doran_e2e::{Relay, create_account, doran, doran_cmd, json, ok, tone_wav};
use fault_proxy::{Dir, FaultProxy, Faults};

/// `doran sync` until it reports up to date, at most `attempts` times (each given
/// `timeout_s` seconds); returns how many attempts it took.
fn sync_until_up_to_date(home: &Path, attempts: u32, timeout_s: u32) -> u32 {
    let timeout = timeout_s.to_string();
    let mut last = String::new();
    for attempt in 1..=attempts {
        let out = doran(home, &["--json", "sync", "--timeout", &timeout]);
        if out.status.success() {
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("sync prints JSON");
            if v["pending"] == 0 {
                return attempt;
            }
            last = v.to_string();
        } else {
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
    }
    panic!(
        "{} not up to date after {attempts} syncs; last: {last}",
        home.display()
    );
}

fn sync(home: &Path) {
    assert_eq!(json(home, &["sync", "--timeout", "10"])["pending"], 0);
}

fn export(home: &Path, family: &str) -> String {
    ok(home, &["export", family])
}

/// The ids of one collection (`missions`, `calendar`, `albums`, …) in an export.
fn ids(export: &str, collection: &str) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(export).expect("export is JSON");
    v[collection]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every device exports exactly the same family; returns that export.
fn assert_converged(family: &str, devices: &[&Path]) -> String {
    let first = export(devices[0], family);
    for other in &devices[1..] {
        let theirs = export(other, family);
        if theirs != first {
            let at = first
                .lines()
                .zip(theirs.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{} and {} differ (first at line {at}):\n--- {}\n{first}\n--- {}\n{theirs}",
                devices[0].display(),
                other.display(),
                devices[0].display(),
                other.display()
            );
        }
    }
    first
}

/// Links a new device at `new` to the account on `existing` (confirmed there).
fn link(existing: &Path, new: &Path, server: &str) {
    doran_e2e::link_and_confirm(existing, new, server);
}

/// Mom (phone and laptop) and her son, all in one family, all synced.
struct Trio {
    family: String,
    mom: PathBuf,
    laptop: PathBuf,
    son: PathBuf,
}

impl Trio {
    fn all(&self) -> [&Path; 3] {
        [&self.mom, &self.laptop, &self.son]
    }

    fn setup(dir: &Path, server: &str) -> Trio {
        let trio = Trio {
            family: String::new(),
            mom: dir.join("mom"),
            laptop: dir.join("laptop"),
            son: dir.join("son"),
        };
        create_account(&trio.mom, server, "mom@example.com", "엄마곰");
        create_account(&trio.son, server, "son@example.com", "아들곰");
        let family = ok(
            &trio.mom,
            &["family", "create", "우리 가족", "--as", "엄마"],
        );
        let invite = ok(
            &trio.mom,
            &["invite", "send", &family, "son@example.com", "--as", "아들"],
        );
        assert_eq!(ok(&trio.son, &["invite", "accept", &invite]), family);
        link(&trio.mom, &trio.laptop, server);
        for d in trio.all() {
            sync(d);
        }
        sync(&trio.mom);
        let listed = json(&trio.laptop, &["family", "list"]);
        assert_eq!(listed[0]["family"], family.as_str(), "{listed}");
        Trio { family, ..trio }
    }
}

/// `doran … add …` printing the new id.
fn add(home: &Path, args: &[&str]) -> String {
    let id = ok(home, args);
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{id:?}"
    );
    id
}

fn mission(home: &Path, family: &str, title: &str) -> String {
    add(home, &["mission", "add", family, title])
}

fn event(home: &Path, family: &str, title: &str, start: &str) -> String {
    add(
        home,
        &["event", "add", family, "--title", title, "--start", start],
    )
}

// ----- 1. three devices, offline edits, different reconnection orders -----

#[test]
fn three_devices_edit_offline_and_converge_in_any_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let t = Trio::setup(dir.path(), &relay.url());
    let (f, mom, laptop, son) = (t.family.as_str(), &*t.mom, &*t.laptop, &*t.son);

    // Shared things everyone will then edit at once.
    let walk = mission(mom, f, "같이 산책하기");
    let trip = event(mom, f, "가족 여행", "2026-08-01");
    sync(mom);
    sync(laptop);
    sync(son);

    // Round 1, no relay at all: everyone edits, some of it the same things.
    relay.kill();
    let mut missions = vec![walk.clone()];
    let mut events = vec![trip.clone()];
    let mut albums = Vec::new();
    let mut voice_albums = Vec::new();
    missions.push(mission(mom, f, "장보기"));
    missions.push(mission(mom, f, "빨래 개기"));
    ok(mom, &["event", "edit", f, &trip, "--title", "엄마의 여행"]);
    ok(mom, &["mission", "done", f, &walk]);
    albums.push(add(mom, &["album", "create", f, "여름 휴가"]));
    ok(mom, &["profile", "set", "--mood", "good"]);

    missions.push(mission(laptop, f, "노트북 정리"));
    ok(laptop, &["event", "edit", f, &trip, "--color", "#5FCE89"]);
    ok(laptop, &["mission", "done", f, &walk]);
    voice_albums.push(add(laptop, &["voice", "album", f, "자장가"]));
    events.push(event(laptop, f, "할머니 생신", "2026-09-12"));
    ok(laptop, &["profile", "set", "--mood", "love"]);

    ok(son, &["mission", "done", f, &walk]);
    let sons = mission(son, f, "숙제하기");
    missions.push(sons.clone());
    events.push(event(son, f, "축구 시합", "2026-08-15"));
    ok(son, &["event", "edit", f, &trip, "--title", "아들의 여행"]);
    albums.push(add(son, &["album", "create", f, "축구"]));
    ok(son, &["profile", "set", "--name", "축구왕아들"]);
    for d in t.all() {
        assert!(json(d, &["account", "show"])["pending"].as_u64() > Some(0));
    }

    // Back online: A, B, C, A, B.
    relay.restart();
    for d in [mom, laptop, son, mom, laptop] {
        sync(d);
    }
    let after1 = assert_converged(f, &t.all());
    assert_eq!(ids(&after1, "missions"), missions.iter().cloned().collect());
    assert_eq!(ids(&after1, "calendar"), events.iter().cloned().collect());
    assert_eq!(ids(&after1, "albums"), albums.iter().cloned().collect());
    assert_eq!(
        ids(&after1, "voice_albums"),
        voice_albums.iter().cloned().collect()
    );
    let list = json(son, &["mission", "list", f]);
    let card = list["missions"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == walk.as_str()))
        .expect("the shared mission");
    assert!(
        card["completed_at"].is_i64(),
        "both people ticked it: {card}"
    );
    let exported: serde_json::Value = serde_json::from_str(&after1).expect("JSON");
    assert_eq!(exported["calendar"][&trip]["color"], "#5FCE89");

    // Round 2, offline again: deletes racing edits and ticks.
    relay.kill();
    ok(mom, &["mission", "delete", f, &sons]);
    ok(mom, &["event", "delete", f, &trip]);
    missions.push(mission(mom, f, "저녁 준비"));
    ok(laptop, &["event", "edit", f, &trip, "--title", "바뀐 여행"]);
    ok(laptop, &["mission", "undone", f, &walk]);
    ok(son, &["mission", "done", f, &sons]);
    events.push(event(son, f, "방학식", "2026-07-20"));
    missions.push(mission(son, f, "방 청소"));

    // Back online in another order: C, B, A, C, B.
    relay.restart();
    for d in [son, laptop, mom, son, laptop] {
        sync(d);
    }
    let after2 = assert_converged(f, &t.all());
    assert_ne!(after1, after2);
    let missions_now = ids(&after2, "missions");
    assert!(!missions_now.contains(&sons), "deleted on one device");
    for m in missions.iter().filter(|m| **m != sons) {
        assert!(missions_now.contains(m), "mission {m} lost");
    }
    for e in events.iter().filter(|e| **e != trip) {
        assert!(ids(&after2, "calendar").contains(e), "event {e} lost");
    }
    for d in t.all() {
        assert_eq!(json(d, &["account", "show"])["pending"], 0);
    }
}

// ----- 2. a faulty network -----

#[test]
fn a_faulty_network_still_converges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    // DORAN_FAULT_SEED=n replays another fault schedule.
    let seed = std::env::var("DORAN_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00d0_7a4d_u64);
    let proxy = FaultProxy::start(&relay.addr().to_string(), seed);
    let t = Trio::setup(dir.path(), &proxy.url());
    let f = t.family.as_str();
    let mut rng = StdRng::seed_from_u64(seed);

    proxy.set_faults(Some(Faults {
        budget: 40,
        for_how_long: Duration::from_secs(30),
    }));
    let wav = dir.path().join("hi.wav");
    std::fs::write(&wav, tone_wav(0.5)).expect("write a recording");
    let mut missions = BTreeSet::new();
    let mut attempts = 0;
    let devices = t.all();
    for round in 0..3 {
        for (i, d) in devices.iter().enumerate() {
            missions.insert(mission(d, f, &format!("미션 {round}-{i}-a")));
            missions.insert(mission(d, f, &format!("미션 {round}-{i}-b")));
            event(d, f, &format!("일정 {round}-{i}"), "2026-10-03");
        }
        // Someone reconnects first, someone last; two of them twice.
        let mut order = vec![0, 1, 2];
        let first = rng.random_range(0..3);
        order.swap(0, first);
        if rng.random_bool(0.5) {
            order.swap(1, 2);
        }
        order.extend([order[0], order[1]]);
        for i in order {
            attempts += sync_until_up_to_date(devices[i], 8, 5);
        }
    }
    // The schedule is seeded, but how many connections fall inside the window depends
    // on the machine's speed: while no re-push has been forced yet, the faults go on
    // (a fresh window) for more edits and syncs, so every run covers one.
    for extra in 0..10 {
        if proxy.stats().cut_after_push > 0 {
            break;
        }
        proxy.set_faults(Some(Faults {
            budget: 40,
            for_how_long: Duration::from_secs(30),
        }));
        for (i, d) in devices.iter().enumerate() {
            missions.insert(mission(d, f, &format!("미션 x{extra}-{i}")));
            attempts += sync_until_up_to_date(d, 8, 5);
        }
    }
    // A voice message: its MP3 goes up and comes down through the faults too.
    let album = add(&t.son, &["voice", "album", f, "안부"]);
    let voice = ok(
        &t.son,
        &[
            "voice",
            "add",
            f,
            &album,
            wav.to_str().expect("utf-8"),
            "--title",
            "안녕",
        ],
    );
    for d in [&*t.son, &*t.mom, &*t.laptop, &*t.son] {
        attempts += sync_until_up_to_date(d, 8, 5);
    }
    let mp3 = dir.path().join("hi.mp3");
    let mut got = false;
    for _ in 0..8 {
        let out = doran(
            &t.mom,
            &["voice", "get", f, &voice, mp3.to_str().expect("utf-8")],
        );
        if out.status.success() {
            got = true;
            break;
        }
    }
    assert!(got, "the voice message downloads through the proxy");
    assert!(std::fs::read(&mp3).expect("mp3").starts_with(b"ID3"));

    let stats = proxy.stats();
    eprintln!("fault proxy (seed {seed}): {stats:?}; {attempts} sync runs");
    assert!(
        stats.faults() >= 5,
        "too few faults to mean anything: {stats:?}"
    );
    assert!(stats.cut_after_push > 0, "no re-push forced: {stats:?}");
    let through_proxy = assert_converged(f, &devices);
    assert_eq!(
        ids(&through_proxy, "missions"),
        missions,
        "every mission arrived, once"
    );

    // Once more without the proxy: the relay moves to the proxy's address.
    let addr = proxy.addr().to_string();
    drop(proxy);
    relay.move_to(&addr);
    for d in devices {
        sync(d);
    }
    assert_eq!(assert_converged(f, &devices), through_proxy);
}

// ----- 3. the relay killed mid-sync -----

#[test]
fn the_relay_killed_mid_sync_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    // A clean proxy, only to see when bytes flow.
    let proxy = FaultProxy::start(&relay.addr().to_string(), 3);
    let (phone, laptop) = (dir.path().join("phone"), dir.path().join("laptop"));
    create_account(&phone, &proxy.url(), "dad@example.com", "아빠곰");
    let f = ok(&phone, &["family", "create", "아빠네", "--as", "아빠"]);
    link(&phone, &laptop, &proxy.url());
    sync(&phone);
    sync(&laptop);

    let mut saved = BTreeSet::new();
    for i in 0..40 {
        saved.insert(mission(&phone, &f, &format!("할 일 {i}")));
    }
    let pending = json(&phone, &["account", "show"])["pending"].clone();
    // (And the listing of this year's volume, which the first mission made.)
    assert_eq!(pending, 41);

    // Kill the relay once the phone's push is well under way, restart it.
    let tap = proxy.tap(Dir::Up, 6_000);
    let mut pushing = doran_cmd(&phone, &["sync", "--timeout", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("doran sync starts");
    tap.recv_timeout(Duration::from_secs(20))
        .expect("the push gets going");
    relay.restart();
    let _ = pushing.wait();
    sync_until_up_to_date(&phone, 3, 10);

    // Kill it again while the laptop downloads all that, restart it.
    let tap = proxy.tap(Dir::Down, 6_000);
    let mut pulling = doran_cmd(&laptop, &["sync", "--timeout", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("doran sync starts");
    tap.recv_timeout(Duration::from_secs(20))
        .expect("the download gets going");
    relay.restart();
    let _ = pulling.wait();
    sync_until_up_to_date(&laptop, 3, 10);

    let both = assert_converged(&f, &[&phone, &laptop]);
    assert_eq!(ids(&both, "missions"), saved);
}

// ----- 4. clients killed mid-edit -----

#[test]
fn a_client_killed_mid_edit_loses_nothing_it_reported_saved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (phone, laptop) = (dir.path().join("phone"), dir.path().join("laptop"));
    create_account(&phone, &relay.url(), "grandma@example.com", "할머니곰");
    let f = ok(&phone, &["family", "create", "할머니네", "--as", "할머니"]);
    link(&phone, &laptop, &relay.url());
    sync(&phone);
    sync(&laptop);

    let mut rng = StdRng::seed_from_u64(4);
    let mut reported = BTreeSet::new();
    let (mut killed, mut killed_after_saving) = (0, 0);
    for i in 0..36 {
        let title = format!("할 일 {i}");
        let args: Vec<&str> = if i % 3 == 2 {
            vec![
                "event",
                "add",
                &f,
                "--title",
                &title,
                "--start",
                "2026-05-05",
            ]
        } else {
            vec!["mission", "add", &f, &title]
        };
        let mut child = doran_cmd(&phone, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("doran starts");
        if rng.random_bool(0.4) {
            // The fault: SIGKILL at a random moment of the process's short life.
            std::thread::sleep(Duration::from_micros(rng.random_range(0..=40_000)));
            let _ = child.kill();
            killed += 1;
        }
        let out = child.wait_with_output().expect("doran ends");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            assert!(stdout.ends_with('\n'), "{stdout:?}");
        } else if stdout.ends_with('\n') {
            killed_after_saving += 1;
        }
        // Only a whole line is a reported id.
        if let Some(id) = stdout.strip_suffix('\n') {
            reported.insert(id.trim().to_owned());
        }
        // Now and then a sync, also killed at a random moment.
        if i % 6 == 5 {
            let mut s = doran_cmd(&phone, &["sync", "--timeout", "10"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("doran sync starts");
            std::thread::sleep(Duration::from_micros(rng.random_range(0..=80_000)));
            let _ = s.kill();
            let _ = s.wait();
        }
    }
    eprintln!(
        "{killed} edits killed ({killed_after_saving} after printing); {} ids reported",
        reported.len()
    );
    assert!(killed > 0);

    let here = export(&phone, &f);
    let kept: BTreeSet<String> = ids(&here, "missions")
        .union(&ids(&here, "calendar"))
        .cloned()
        .collect();
    let lost: Vec<_> = reported.difference(&kept).collect();
    assert!(lost.is_empty(), "reported saved but gone: {lost:?}");

    sync_until_up_to_date(&phone, 3, 10);
    sync(&laptop);
    let there = assert_converged(&f, &[&phone, &laptop]);
    let arrived: BTreeSet<String> = ids(&there, "missions")
        .union(&ids(&there, "calendar"))
        .cloned()
        .collect();
    assert_eq!(arrived, kept, "the laptop has exactly what the phone kept");
}

// ----- 5. an invite to someone offline -----

#[test]
fn an_invite_to_an_offline_user_is_there_when_they_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, dad) = (dir.path().join("mom"), dir.path().join("dad"));
    create_account(&mom, &relay.url(), "mom@example.com", "엄마곰");
    create_account(&dad, &relay.url(), "dad@example.com", "아빠곰");

    // Dad goes offline with a change of his own waiting.
    ok(&dad, &["profile", "set", "--mood", "sleepy"]);
    let f = ok(&mom, &["family", "create", "캠핑 가족", "--as", "엄마"]);
    let mission_before = mission(&mom, &f, "텐트 사기");
    let invite = ok(
        &mom,
        &["invite", "send", &f, "dad@example.com", "--as", "아빠"],
    );
    sync(&mom);
    // The relay restarts before he is back: the invite is kept on disk.
    relay.restart();

    sync(&dad);
    let invites = json(&dad, &["invite", "list"]);
    let list = invites.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{invites}");
    assert_eq!(list[0]["invite"], invite.as_str());
    assert_eq!(list[0]["family"], f.as_str());
    assert_eq!(list[0]["family_title"], "캠핑 가족");
    assert_eq!(list[0]["proposed_name"], "아빠");

    assert_eq!(ok(&dad, &["invite", "accept", &invite]), f);
    assert_eq!(json(&dad, &["invite", "list"]), serde_json::json!([]));
    let mission_after = mission(&dad, &f, "장작 준비");
    sync(&dad);
    sync(&mom);
    let both = assert_converged(&f, &[&mom, &dad]);
    let v: serde_json::Value = serde_json::from_str(&both).expect("JSON");
    assert_eq!(v["members"].as_object().map(|m| m.len()), Some(2), "{v}");
    assert_eq!(
        ids(&both, "missions"),
        BTreeSet::from([mission_before, mission_after])
    );
}

// ----- 6. `doran watch` running while the same device edits -----

/// Reads `watch --json` lines until one says `text` (a notification).
fn wait_for_note(lines: &mut impl Iterator<Item = std::io::Result<String>>, what: &str) {
    for line in lines {
        let line = line.expect("watch output");
        if line.contains(what) {
            return;
        }
    }
    panic!("`doran watch` ended before {what:?}");
}

/// Mom's and the son's devices under `dir`, in a family mom made and the son joined
/// (mom synced); returns their homes and the family id.
fn mom_and_son(dir: &Path, server: &str) -> (PathBuf, PathBuf, String) {
    let (mom, son) = (dir.join("mom"), dir.join("son"));
    create_account(&mom, server, "mom@example.com", "엄마곰");
    create_account(&son, server, "son@example.com", "아들곰");
    let f = ok(&mom, &["family", "create", "우리 가족", "--as", "엄마"]);
    let invite = ok(
        &mom,
        &["invite", "send", &f, "son@example.com", "--as", "아들"],
    );
    ok(&son, &["invite", "accept", &invite]);
    sync(&mom);
    (mom, son, f)
}

#[test]
fn watch_and_edits_on_the_same_device_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, son, f) = mom_and_son(dir.path(), &relay.url());
    let walk = mission(&mom, &f, "같이 산책하기");
    sync(&mom);
    sync(&son);

    // Mom's device keeps a `doran watch` running.
    let mut watch = doran_cmd(&mom, &["--json", "watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("doran watch starts");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    // The son adds an event: the watcher gets it (and opens the family).
    event(&son, &f, "축구 시합", "2026-08-15");
    sync(&son);
    wait_for_note(&mut lines, "축구 시합");
    // Mom ticks the mission from another process on the same device.
    ok(&mom, &["mission", "done", &f, &walk]);
    // The son ticks it too, and adds an event so the watcher says it has his change.
    ok(&son, &["mission", "done", &f, &walk]);
    event(&son, &f, "방학식", "2026-07-20");
    sync(&son);
    // Two events by the son within minutes are one notification in the bell.
    wait_for_note(&mut lines, "일정 2개를");
    let _ = watch.kill();
    let _ = watch.wait();

    sync(&mom);
    sync(&son);
    let both = assert_converged(&f, &[&mom, &son]);
    let v: serde_json::Value = serde_json::from_str(&both).expect("JSON");
    assert_eq!(
        v["missions"][&walk]["completions"]
            .as_object()
            .map(|c| c.len()),
        Some(2),
        "{}",
        v["missions"][&walk]
    );
}

#[test]
fn processes_editing_one_device_at_once_lose_nothing() {
    const PROCESSES: usize = 4;
    const EACH: usize = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let (mom, son, f) = mom_and_son(dir.path(), &relay.url());

    // Several `doran mission add` on mom's device at the same moment (scripts, the
    // app beside the command line): they all write as her device's Automerge actor.
    let printed: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PROCESSES)
            .map(|p| {
                let (mom, f) = (&mom, &f);
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| mission(mom, f, &format!("할 일 {p}-{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    assert_eq!(printed.len(), PROCESSES * EACH);

    // Every mission a process reported saved is in her document, and reaches the son.
    let saved = ids(&export(&mom, &f), "missions");
    for id in &printed {
        assert!(
            saved.contains(id),
            "mission {id} was reported saved and is gone"
        );
    }
    sync_until_up_to_date(&mom, 5, 10);
    sync(&son);
    let both = assert_converged(&f, &[&mom, &son]);
    assert_eq!(ids(&both, "missions").len(), PROCESSES * EACH);
}

/// A TCP proxy on loopback between the devices and the relay that misbehaves on
/// purpose, from a seeded generator, within a budget of faults and a time window.
mod fault_proxy {
    use std::{
        net::SocketAddr,
        sync::{Arc, Mutex, PoisonError, mpsc},
        time::{Duration, Instant},
    };

    use rand::{Rng, SeedableRng, rngs::StdRng};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{
            TcpListener, TcpStream,
            tcp::{OwnedReadHalf, OwnedWriteHalf},
        },
        sync::Notify,
    };

    /// Which way bytes go.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Dir {
        /// Device → relay.
        Up,
        /// Relay → device.
        Down,
    }

    /// Misbehave for at most `budget` connections and at most `for_how_long`.
    #[derive(Debug, Clone, Copy)]
    pub struct Faults {
        pub budget: u32,
        pub for_how_long: Duration,
    }

    /// What the proxy did.
    #[derive(Debug, Default, Clone)]
    pub struct Stats {
        pub connections: u32,
        /// Closed as soon as accepted.
        pub refused: u32,
        /// Accepted, held without a byte for a while, closed.
        pub stalled: u32,
        /// Cut after a random number of bytes in one direction.
        pub cut: u32,
        /// The device's bytes went on to the relay but the answers were dropped and the
        /// connection cut: the device sends the same changes again.
        pub cut_after_push: u32,
        /// Reads or writes held back a few ms.
        pub delays: u32,
    }

    impl Stats {
        pub fn faults(&self) -> u32 {
            self.refused + self.stalled + self.cut + self.cut_after_push
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Plan {
        Clean,
        Refuse,
        Stall { ms: u64 },
        Cut { dir: Dir, after: u64 },
        CutAfterPush { after: u64, linger_ms: u64 },
    }

    struct Window {
        until: Instant,
        budget: u32,
    }

    struct Shared {
        upstream: String,
        rng: Mutex<StdRng>,
        window: Mutex<Option<Window>>,
        stats: Mutex<Stats>,
        tap: Mutex<Option<(Dir, u64, mpsc::Sender<()>)>>,
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The proxy; stops (closing every connection) on drop.
    pub struct FaultProxy {
        addr: SocketAddr,
        shared: Arc<Shared>,
        runtime: Option<tokio::runtime::Runtime>,
    }

    impl FaultProxy {
        /// Listens on a free loopback port and forwards to `upstream`; clean until
        /// [`set_faults`](Self::set_faults).
        pub fn start(upstream: &str, seed: u64) -> FaultProxy {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
            std_listener.set_nonblocking(true).expect("non-blocking");
            let addr = std_listener.local_addr().expect("proxy address");
            let shared = Arc::new(Shared {
                upstream: upstream.to_owned(),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                window: Mutex::new(None),
                stats: Mutex::new(Stats::default()),
                tap: Mutex::new(None),
            });
            let listener = {
                let _guard = runtime.enter();
                TcpListener::from_std(std_listener).expect("tokio listener")
            };
            runtime.spawn(accept(listener, Arc::clone(&shared)));
            FaultProxy {
                addr,
                shared,
                runtime: Some(runtime),
            }
        }

        pub fn addr(&self) -> SocketAddr {
            self.addr
        }

        pub fn url(&self) -> String {
            format!("http://{}", self.addr)
        }

        /// Starts (or, with `None`, stops) misbehaving.
        pub fn set_faults(&self, faults: Option<Faults>) {
            *lock(&self.shared.window) = faults.map(|f| Window {
                until: Instant::now() + f.for_how_long,
                budget: f.budget,
            });
        }

        pub fn stats(&self) -> Stats {
            lock(&self.shared.stats).clone()
        }

        /// Says (once) when one connection has carried `bytes` in direction `dir`.
        pub fn tap(&self, dir: Dir, bytes: u64) -> mpsc::Receiver<()> {
            let (tx, rx) = mpsc::channel();
            *lock(&self.shared.tap) = Some((dir, bytes, tx));
            rx
        }
    }

    impl Drop for FaultProxy {
        fn drop(&mut self) {
            if let Some(rt) = self.runtime.take() {
                // Drops every task: the listener and all sockets close.
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }

    impl Shared {
        /// Decides what happens to a new connection, and gives it its own generator.
        fn plan(&self) -> (Plan, bool, StdRng) {
            let mut rng = lock(&self.rng);
            let conn_rng = StdRng::seed_from_u64(rng.random());
            let mut stats = lock(&self.stats);
            stats.connections += 1;
            let mut window = lock(&self.window);
            let active = window
                .as_ref()
                .is_some_and(|w| w.budget > 0 && Instant::now() < w.until);
            if !active {
                return (Plan::Clean, false, conn_rng);
            }
            let delays = rng.random_bool(0.5);
            let plan = match rng.random_range(0..100) {
                0..10 => Plan::Refuse,
                10..18 => Plan::Stall {
                    ms: rng.random_range(20..=300),
                },
                18..40 => Plan::Cut {
                    dir: if rng.random_bool(0.5) {
                        Dir::Up
                    } else {
                        Dir::Down
                    },
                    after: rng.random_range(1..=4_000),
                },
                40..65 => Plan::CutAfterPush {
                    after: rng.random_range(360..=1_500),
                    linger_ms: rng.random_range(10..=150),
                },
                _ => Plan::Clean,
            };
            match plan {
                Plan::Clean => {}
                Plan::Refuse => stats.refused += 1,
                Plan::Stall { .. } => stats.stalled += 1,
                // Counted when they happen (a connection may end before).
                Plan::Cut { .. } | Plan::CutAfterPush { .. } => {}
            }
            if !matches!(plan, Plan::Clean)
                && let Some(w) = window.as_mut()
            {
                w.budget -= 1;
            }
            (plan, delays, conn_rng)
        }

        /// Gives back the budget of a planned re-push that did not happen, while none
        /// has yet.
        fn refund_unfired_push(&self) {
            let stats = lock(&self.stats);
            if stats.cut_after_push == 0
                && let Some(w) = lock(&self.window).as_mut()
            {
                w.budget += 1;
            }
        }

        fn tapped(&self, dir: Dir, total: u64) {
            let mut tap = lock(&self.tap);
            if let Some((d, bytes, _)) = &*tap
                && *d == dir
                && total >= *bytes
                && let Some((_, _, tx)) = tap.take()
            {
                let _ = tx.send(());
            }
        }
    }

    async fn accept(listener: TcpListener, shared: Arc<Shared>) {
        while let Ok((client, _)) = listener.accept().await {
            let (plan, delays, rng) = shared.plan();
            tokio::spawn(serve(client, Arc::clone(&shared), plan, delays, rng));
        }
    }

    /// One proxied connection's state, shared by its two directions.
    struct Conn {
        shared: Arc<Shared>,
        plan: Plan,
        delays: bool,
        rng: Mutex<StdRng>,
        /// Relay → device bytes are read and dropped.
        mute_down: std::sync::atomic::AtomicBool,
        cut: Notify,
        /// Whether its fault happened (a planned cut may meet a connection that ends
        /// first).
        fired: std::sync::atomic::AtomicBool,
    }

    impl Conn {
        fn delay(&self) -> Option<Duration> {
            if !self.delays {
                return None;
            }
            let mut rng = lock(&self.rng);
            rng.random_bool(0.3)
                .then(|| Duration::from_millis(rng.random_range(1..=25)))
        }

        fn read_size(&self, cap: usize) -> usize {
            if self.delays {
                lock(&self.rng).random_range(1..=cap)
            } else {
                cap
            }
        }

        fn cut_now(&self, stat: impl FnOnce(&mut Stats)) {
            stat(&mut lock(&self.shared.stats));
            self.fired.store(true, std::sync::atomic::Ordering::SeqCst);
            self.cut.notify_one();
        }
    }

    async fn serve(client: TcpStream, shared: Arc<Shared>, plan: Plan, delays: bool, rng: StdRng) {
        match plan {
            Plan::Refuse => return,
            Plan::Stall { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                return;
            }
            _ => {}
        }
        // A relay that is down: the device sees its connection closed.
        let Ok(server) = TcpStream::connect(&shared.upstream).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let linger = match plan {
            Plan::CutAfterPush { linger_ms, .. } => Duration::from_millis(linger_ms),
            _ => Duration::ZERO,
        };
        let conn = Arc::new(Conn {
            shared,
            plan,
            delays,
            rng: Mutex::new(rng),
            mute_down: std::sync::atomic::AtomicBool::new(false),
            cut: Notify::new(),
            fired: std::sync::atomic::AtomicBool::new(false),
        });
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        tokio::select! {
            _ = async {
                tokio::join!(
                    pipe(cr, sw, Dir::Up, Arc::clone(&conn)),
                    pipe(sr, cw, Dir::Down, Arc::clone(&conn)),
                )
            } => {}
            () = async {
                conn.cut.notified().await;
                tokio::time::sleep(linger).await;
            } => {}
        }
        // A re-push planned on a connection that carried no push (it ended first)
        // is planned again on a later one, until one has happened: whether a given
        // connection pushes depends on timing, and the test needs one re-push.
        if matches!(conn.plan, Plan::CutAfterPush { .. })
            && !conn.fired.load(std::sync::atomic::Ordering::SeqCst)
        {
            conn.shared.refund_unfired_push();
        }
        // Dropping both halves of both sockets closes them.
    }

    async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, dir: Dir, conn: Arc<Conn>) {
        use std::sync::atomic::Ordering;
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0u64;
        loop {
            let want = conn.read_size(buf.len());
            let n = match from.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(d) = conn.delay() {
                lock(&conn.shared.stats).delays += 1;
                tokio::time::sleep(d).await;
            }
            let mut end = n;
            let mut cut_here = false;
            if let Plan::Cut { dir: d, after } = conn.plan
                && d == dir
                && total + n as u64 >= after
            {
                end = usize::try_from(after - total).unwrap_or(n).min(n);
                cut_here = true;
            }
            let muted = dir == Dir::Down && conn.mute_down.load(Ordering::SeqCst);
            if !muted && to.write_all(&buf[..end]).await.is_err() {
                break;
            }
            total += end as u64;
            conn.shared.tapped(dir, total);
            if cut_here {
                // The connection task drops both sockets now.
                conn.cut_now(|s| s.cut += 1);
                return;
            }
            if let Plan::CutAfterPush { after, .. } = conn.plan
                && dir == Dir::Up
                && total >= after
                && !conn.mute_down.swap(true, Ordering::SeqCst)
            {
                conn.cut_now(|s| s.cut_after_push += 1);
            }
        }
        if std::env::var_os("DORAN_PROXY_DEBUG").is_some() {
            eprintln!("proxy {dir:?} {total} bytes ({:?})", conn.plan);
        }
        let _ = to.shutdown().await;
    }
}
