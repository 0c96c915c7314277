//! A short local demo of the family document: three family members on their own
//! devices, editing offline, syncing, and what the app would show. Everything an edit
//! produces is committed to a real SQLite store first, then the family is reopened
//! from it.
//!
//! `cargo run -p doran-client-core --example demo -- [DATA_DIR]`

use std::{collections::BTreeMap, error::Error, path::PathBuf};

use doran_client_core::{
    Actor, Edit, EventInput, FamilyDoc, PersonalDoc, PhotoInput,
    family_store::{cached_family, open_family},
    model::Mood,
    store::{LocalStore, SqliteStore},
    time_util::{Lang, YearMonth, relative},
    views,
};
use doran_protocol::{BlobHash, DeviceId, DocId, FamilyId, UserId};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "data/demo".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let kst = time::macros::offset!(+9);
    let month = YearMonth::of(now.to_offset(kst).date());

    let [mom, dad, kid] = [0, 1, 2].map(|_| Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    });
    let family = FamilyId::random();
    let doc_id = DocId::from(family);
    let path = dir.join(format!("mom-{}.sqlite", &family.to_hex()[..8]));
    let store = SqliteStore::open(&path)?;
    println!("도란도란 demo — local store at {}", path.display());
    let (doc, first) = FamilyDoc::create(family, "햇살 가족", "엄마", &mom, now_ms)?;
    store.commit_local(doc_id, &first)?;
    drop(doc);
    // The first open reads the document and builds the view cache.
    let mut doc = open_family(&store, doc_id, &mom)?;
    commit(&store, doc_id, doc.add_member(dad.user, "아빠", now_ms)?)?;
    commit(&store, doc_id, doc.add_member(kid.user, "막내", now_ms)?)?;
    let mission = commit(
        &store,
        doc_id,
        doc.add_mission("가족 사진 찍기", &[], None, now_ms)?,
    )?;
    let album = commit(&store, doc_id, doc.create_album("가을 소풍", now_ms)?)?;
    let photo = commit(
        &store,
        doc_id,
        doc.add_photo(
            &album,
            PhotoInput {
                blob: BlobHash::of(b"picnic.jpg").into(),
                thumb: BlobHash::of(b"picnic-thumb.jpg").into(),
                mime: "image/jpeg".into(),
                size: 812_345,
                width: 1920,
                height: 1280,
                taken_at: None,
                caption: "단풍 아래에서".into(),
            },
            now_ms,
        )?,
    )?;
    commit(
        &store,
        doc_id,
        doc.add_event(
            EventInput {
                title: "제주 여행".into(),
                start: month
                    .last_day()
                    .previous_day()
                    .unwrap_or(month.last_day())
                    .to_string(),
                end: Some(
                    month
                        .last_day()
                        .next_day()
                        .unwrap_or(month.last_day())
                        .to_string(),
                ),
                color: Some("#5FB3CE".into()),
                ..Default::default()
            },
            now_ms,
        )?,
    )?;
    println!("mom created the family, a mission, an album with a photo and a trip");

    // Dad and the kid get the family, then edit offline on their own devices.
    let snapshot = doc.save();
    let mut dad_doc = FamilyDoc::load(Some(&snapshot), [], &dad)?;
    let mut kid_doc = FamilyDoc::load(Some(&snapshot), [], &kid)?;
    let dad_changes = [
        dad_doc
            .set_mission_done(&mission, true, now_ms + 1000)?
            .change,
        dad_doc.set_like(&photo, true, now_ms + 2000)?.change,
        dad_doc
            .add_comment(&photo, "사진 정말 예쁘다!", now_ms + 3000)?
            .change,
    ];
    let kid_changes = [
        kid_doc
            .set_mission_done(&mission, true, now_ms + 1500)?
            .change,
        kid_doc.set_like(&photo, true, now_ms + 2500)?.change,
    ];
    commit(
        &store,
        doc_id,
        doc.set_mission_done(&mission, true, now_ms + 4000)?,
    )?;
    println!("dad and the kid ticked the mission, liked and commented — offline");

    // They meet: mom's device receives their changes.
    let incoming: Vec<Vec<u8>> = dad_changes
        .into_iter()
        .chain(kid_changes)
        .flatten()
        .collect();
    let chunks: Vec<&[u8]> = incoming.iter().map(Vec::as_slice).collect();
    let update = doc.apply_remote(chunks.iter().copied());
    store.apply_remote_with_view(doc_id, &chunks, None, update.view.as_deref())?;
    let me = mom.user.to_hex();
    println!("\n🔔 notifications on mom's device:");
    for n in views::notifications(&update.new_activity, &me, true, true) {
        let count = if n.count > 1 {
            format!(" ({})", n.count)
        } else {
            String::new()
        };
        println!(
            "   {}{count} · {}",
            n.latest.text(doc.view(), Lang::Ko),
            relative(n.latest.at, now_ms + 5000, kst, Lang::Ko)
        );
    }
    drop(doc);

    // Reopen from SQLite, as the app does on start: screens from the view cache at
    // once, the document for editing behind it.
    let cached = cached_family(&store, doc_id)?.ok_or("the view cache should be valid")?;
    let doc = open_family(&store, doc_id, &mom)?;
    assert_eq!(&cached, doc.view());
    println!(
        "\nreopened from SQLite (view cache valid); {} changes wait for the relay",
        store.pending_count()?
    );

    let (mut profile, _) = PersonalDoc::create(&mom, "햇살엄마", None, 3, now_ms)?;
    profile.set_mood(Mood::Love, now_ms)?;
    let profiles = BTreeMap::from([(me, profile.view().clone())]);
    let viewer = views::Viewer {
        now_ms,
        offset: kst,
        lang: Lang::Ko,
    };
    let home = views::home(doc.view(), &profiles, &BTreeMap::new(), viewer, 1);
    println!("\n🏠 {} — {}", home.family_name, home.warm_message);
    for m in &home.members {
        println!("   {} {}", m.name, m.mood.as_ref().map_or("", |m| m.emoji));
    }
    if let Some(m) = &home.mission {
        let ticks: Vec<String> = m
            .ticks
            .iter()
            .map(|t| format!("{}{}", t.name, if t.done_at.is_some() { "✓" } else { "·" }))
            .collect();
        println!("   mission: {} [{}]", m.title, ticks.join(" "));
    }
    let dash = views::mission_dashboard(doc.view(), month, kst, Lang::Ko);
    println!(
        "   this month: {}/{} missions, {}% — {}",
        dash.completed, dash.total, dash.rate, dash.label
    );
    println!("\n🏅 badges:");
    for b in views::badges(doc.view()) {
        println!(
            "   {} {} {}/{}",
            if b.earned() { "●" } else { "○" },
            b.kind.name_ko(),
            b.progress,
            b.goal
        );
    }
    println!("\n📅 {month}:");
    for e in views::calendar_month(doc.view(), month, Lang::Ko).events {
        let more = if e.continues_after { " →" } else { "" };
        println!(
            "   {} {}–{}{} ({})",
            e.event.title, e.first_in_month, e.last_in_month, more, e.owner_name
        );
    }
    Ok(())
}

/// Commits an edit's change, with its view-cache rows, to the store and returns what
/// it made. Only after this may a UI say "saved".
fn commit<T>(store: &SqliteStore, doc: DocId, edit: Edit<T>) -> Result<T, Box<dyn Error>> {
    if let Some(c) = &edit.change {
        store.commit_local_with_view(doc, c, edit.view.as_deref())?;
    }
    Ok(edit.value)
}
