//! Personal documents sealed (issue 18): a new account's personal document (mood,
//! settings, the families list…) is sealed under its user's profile key group from
//! its first change; the user's own devices and the members of their families read
//! it, the relay does not, and a member removed from the only family they shared
//! cannot open what the user writes after — against the real relay.

use std::{path::Path, sync::Arc};

use doran_device::{
    Device,
    account::{Account, StoreSecrets},
    core::{
        store::{LocalStore, SqliteStore},
        sync::{Keeper, Unsealed, personal_group},
    },
};
use doran_e2e::{
    Relay, contains,
    devices::{
        WAIT, accounts_and_family, invite_received, link_and_confirm, mission, mission_titles,
        open, phone_lost_and_restored, sees_mission, until,
    },
    files_under, relay_chunks,
};
use doran_protocol::{FamilyId, UserId};

/// The account and key keeper saved in the store of the device at `home`.
fn account_and_keeper(home: &Path) -> (Account, Keeper) {
    let store: Arc<dyn LocalStore> =
        Arc::new(SqliteStore::open(home.join("device.sqlite")).expect("the device's store"));
    let account = Account::load(&*store, &StoreSecrets(Arc::clone(&store)))
        .expect("load")
        .expect("the account");
    let keeper = Keeper::load(
        &*store,
        account.user,
        account.device,
        account.device_key.clone(),
    )
    .expect("the keeper");
    (account, keeper)
}

/// The devices' logs in a failing test (`RUST_LOG`).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Until `device` shows `user`'s mood as `mood` (its machine name).
async fn sees_mood(device: &Device, user: &str, mood: &str) {
    until(&format!("mood {mood}"), async || {
        match device.profile(Some(user)).await {
            Ok(p) if p.mood.as_ref().is_some_and(|m| m.key == mood) => Ok(()),
            Ok(p) => Err(format!("{:?}", p.mood)),
            Err(e) => Err(format!("{e:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_profile_reads_in_the_family_and_on_every_device_and_the_relay_reads_none() {
    logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();
    let (mom_home, son_home) = (dir.path().join("mom"), dir.path().join("son"));
    let mom = open(&mom_home).await;
    let son = open(&son_home).await;
    let mut son_events = son.subscribe();
    let (mom_account, _, family) = accounts_and_family(&mom, &son, &server).await;
    mom.set_mood("sleepy").await.expect("mood");
    let mut settings = mom.settings().await.expect("settings");
    settings.notify_reactions = false;
    mom.set_settings(settings).await.expect("settings saved");

    // The son joins; his device reads her mood from her sealed personal document,
    // with the key her phone published in the family's (sealed) document.
    mom.invite(&family, "son@example.com", "아들")
        .await
        .expect("invite sent");
    let invite = invite_received(&mut son_events).await;
    son.answer_invite(&invite, true).await.expect("accepted");
    sees_mood(&son, &mom_account.user, "sleepy").await;

    // Her laptop, linked: her phone adds it to her profile key group; it reads her
    // own profile and settings.
    let laptop_home = dir.path().join("laptop");
    let laptop = open(&laptop_home).await;
    link_and_confirm(&mom, &laptop, &server).await;
    sees_mood(&laptop, "me", "sleepy").await;
    until("her settings on the laptop", async || {
        match laptop.settings().await {
            Ok(s) if !s.notify_reactions => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    })
    .await;

    // Every chunk of her personal document on the relay is an envelope; its files
    // never hold the mood.
    let (mom_acc, _) = account_and_keeper(&mom_home);
    let doc = mom_acc.personal_doc;
    let group = personal_group(doc);
    assert!(
        group.says_sealed(),
        "a new account's personal document is sealed"
    );
    mom.sync_now(WAIT).await.expect("synced");
    let stored = relay_chunks(&relay, doc);
    assert!(stored.len() >= 2, "{} chunks", stored.len());
    assert!(stored.iter().all(|c| c.starts_with(b"DRD\x01")));
    for (path, bytes) in files_under(relay.data()) {
        assert!(
            !contains(&bytes, b"Sleepy"),
            "{} holds the mood in the clear",
            path.display()
        );
    }

    // Mom removes her son, the only family they share: her phone moves her profile
    // key group to a new epoch he gets no key for; a mood set after it does not
    // open with his keys, while what he had still does.
    let (_, before) = account_and_keeper(&mom_home);
    let epoch = before
        .epoch(group)
        .expect("her phone is in her profile key group");
    mom.remove_member(&family, "아들").await.expect("removed");
    until("a new epoch of her profile keys", async || {
        let (_, keeper) = account_and_keeper(&mom_home);
        match keeper.epoch(group) {
            Some(now) if now > epoch => Ok(()),
            seen => Err(seen),
        }
    })
    .await;
    mom.set_mood("angry").await.expect("a new mood");
    mom.sync_now(WAIT).await.expect("synced");
    sees_mood(&laptop, "me", "angry").await;
    let chunks = relay_chunks(&relay, doc);
    let (_, sons) = account_and_keeper(&son_home);
    assert!(
        matches!(sons.open(group, doc, &chunks[0]), Unsealed::Changes(_)),
        "what he had still opens"
    );
    let last = chunks.last().expect("the new mood's chunk");
    assert!(
        matches!(sons.open(group, doc, last), Unsealed::NoKey),
        "a mood set after his removal does not open with his keys"
    );
    let user: UserId = mom_account.user.parse().expect("user id");
    assert_ne!(
        son.profile(Some(&user.to_hex()))
            .await
            .ok()
            .and_then(|p| p.mood)
            .map(|m| m.key),
        Some("angry")
    );
}

/// A user in no family yet (her profile's only readers are her own devices) loses
/// her only phone: a phone restored from the phrase reads her sealed profile from the
/// escrow her lost phone left in her profile key log, joins that group by itself, and
/// writes to her profile again — sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_phrase_alone_brings_a_sealed_profile_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();
    let mom_home = dir.path().join("mom");
    let mom = open(&mom_home).await;
    mom.create_account(&server, "mom@example.com", "엄마곰")
        .await
        .expect("mom's account");
    mom.set_mood("sleepy").await.expect("mood");
    let (account, _) = account_and_keeper(&mom_home);
    let doc = account.personal_doc;
    let again_home = dir.path().join("new phone");
    let again = phone_lost_and_restored(
        &relay,
        (mom, &mom_home),
        personal_group(doc).key_log(),
        &again_home,
    )
    .await;
    sees_mood(&again, "me", "sleepy").await;
    let before = relay_chunks(&relay, doc).len();
    again.set_mood("love").await.expect("a new mood");
    until("the new mood on the relay", async || {
        again.sync_now(WAIT).await.expect("synced");
        let now = relay_chunks(&relay, doc).len();
        if now > before { Ok(()) } else { Err(now) }
    })
    .await;
    let last = relay_chunks(&relay, doc)
        .pop()
        .expect("the new mood's chunk");
    assert!(last.starts_with(b"DRD\x01"), "written sealed");
    let (_, keeper) = account_and_keeper(&again_home);
    assert!(
        matches!(
            keeper.open(personal_group(doc), doc, &last),
            Unsealed::Changes(_)
        ),
        "the restored phone wrote it under a key it holds"
    );
}

/// A device that was in a family's key group only while all of mom's devices were
/// offline — dad's new laptop, linked and then revoked (lost) — could read mom's
/// published profile keys meanwhile: when mom's phone comes back and reads the
/// family's key log (taking the Add of the since-revoked laptop as the others did,
/// rather than waiting for ever at it), it reads the family again and moves her
/// profile keys on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_added_and_gone_while_she_was_offline_rotates_her_profile_keys() {
    logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();
    let mom_home = dir.path().join("mom");
    let mom = open(&mom_home).await;
    let dad = open(&dir.path().join("dad")).await;
    let mut dad_events = dad.subscribe();
    mom.create_account(&server, "mom@example.com", "엄마곰")
        .await
        .expect("mom's account");
    dad.create_account(&server, "dad@example.com", "아빠곰")
        .await
        .expect("dad's account");
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family created");
    mom.invite(&family, "dad@example.com", "아빠")
        .await
        .expect("invite sent");
    let invite = invite_received(&mut dad_events).await;
    dad.answer_invite(&invite, true).await.expect("accepted");
    mom.sync_now(WAIT).await.expect("synced");
    dad.sync_now(WAIT).await.expect("synced");
    let (account, keeper) = account_and_keeper(&mom_home);
    let group = personal_group(account.personal_doc);
    let epoch = keeper
        .epoch(group)
        .expect("her phone is in her profile key group");

    // Mom goes offline; dad links a laptop (his phone adds it to the family's key
    // group, where mom's published keys are), then revokes it.
    mom.stop_sync();
    let laptop = open(&dir.path().join("laptop")).await;
    let linked = link_and_confirm(&dad, &laptop, &server).await;
    let id = family.parse().expect("family id");
    until("the laptop in the family's key group", async || {
        let _ = dad.sync_now(WAIT).await;
        let members = account_and_keeper(&dir.path().join("dad")).1.members(id);
        if members.iter().any(|m| m.device.to_hex() == linked.device) {
            Ok(())
        } else {
            Err(members.len())
        }
    })
    .await;
    laptop.close().await;
    dad.revoke_device(&linked.device).await.expect("revoked");
    until("the laptop out of the family's key group", async || {
        let _ = dad.sync_now(WAIT).await;
        let members = account_and_keeper(&dir.path().join("dad")).1.members(id);
        if members.iter().any(|m| m.device.to_hex() == linked.device) {
            Err(members.len())
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(
        account_and_keeper(&mom_home).0.personal_doc,
        account.personal_doc
    );

    dad.add_mission(
        &family,
        doran_device::MissionInput {
            title: "새 노트북 찾기".into(),
            participants: vec!["아빠".into()],
            due: None,
        },
    )
    .await
    .expect("a mission after");
    dad.sync_now(WAIT).await.expect("synced");

    // Back online, mom's phone reads both Commits — the Add of a device revoked
    // since, as every device took it when it was new — reads what dad wrote after,
    // and rotates her profile keys.
    mom.start_sync();
    until("dad's mission on mom's phone", async || {
        match mom.missions(&family, None).await {
            Ok(view)
                if view
                    .month
                    .missions
                    .iter()
                    .any(|m| m.title == "새 노트북 찾기") =>
            {
                Ok(())
            }
            Ok(view) => Err(format!("{} missions", view.month.missions.len())),
            Err(e) => Err(format!("{e:?}")),
        }
    })
    .await;
    mom.sync_now(WAIT).await.expect("synced");
    until("a new epoch of her profile keys", async || {
        let (_, keeper) = account_and_keeper(&mom_home);
        match keeper.epoch(group) {
            Some(now) if now > epoch => Ok(()),
            seen => Err(seen),
        }
    })
    .await;
}

/// Mom revokes her laptop from her phone and writes at once — a mission, a mood —
/// before the Commits taking the laptop out of her key groups have come back: both
/// wait for them (the family's group and her profile's), so nothing written after
/// the revocation opens with the laptop's keys, while what it had still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_laptop_opens_nothing_written_after_its_revocation() {
    logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();
    let (mom_home, laptop_home) = (dir.path().join("mom"), dir.path().join("laptop"));
    let mom = open(&mom_home).await;
    mom.create_account(&server, "mom@example.com", "엄마곰")
        .await
        .expect("mom's account");
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("family created");
    mom.add_mission(&family, mission("화분에 물 주기", &["엄마"]))
        .await
        .expect("a mission");
    mom.set_mood("sleepy").await.expect("mood");
    let laptop = open(&laptop_home).await;
    let linked = link_and_confirm(&mom, &laptop, &server).await;
    sees_mood(&laptop, "me", "sleepy").await;
    sees_mission(&laptop, &family, "화분에 물 주기").await;
    laptop.close().await;

    let id: FamilyId = family.parse().expect("family id");
    let (account, _) = account_and_keeper(&mom_home);
    // (Missions made this year are kept in this year's volume.)
    let (doc, personal) = (doran_e2e::this_years_volume(id), account.personal_doc);
    let group = personal_group(personal);
    let (laptop_account, laptop_keys) = account_and_keeper(&laptop_home);
    assert_eq!(laptop_account.device.to_hex(), linked.device);
    assert!(laptop_keys.in_group(id) && laptop_keys.in_group(group));
    mom.sync_now(WAIT).await.expect("synced");
    let before = (
        relay_chunks(&relay, doc).len(),
        relay_chunks(&relay, personal).len(),
    );

    mom.revoke_device(&linked.device).await.expect("revoked");
    mom.add_mission(&family, mission("새 노트북 사기", &["엄마"]))
        .await
        .expect("a mission after");
    mom.set_mood("angry").await.expect("a mood after");
    mom.sync_now(WAIT).await.expect("synced");
    assert!(
        mission_titles(&mom, &family)
            .await
            .contains(&"새 노트북 사기".to_owned())
    );
    let (_, keeper) = account_and_keeper(&mom_home);
    for g in [id, group] {
        assert_eq!(keeper.members(g).len(), 1, "the laptop left {g}");
    }

    let family_chunks = relay_chunks(&relay, doc);
    let profile_chunks = relay_chunks(&relay, personal);
    assert!(family_chunks.len() > before.0 && profile_chunks.len() > before.1);
    assert!(
        matches!(
            laptop_keys.open(id, doc, &family_chunks[0]),
            Unsealed::Changes(_)
        ),
        "what it had still opens"
    );
    for (g, d, chunks, from) in [
        (id, doc, &family_chunks, before.0),
        (group, personal, &profile_chunks, before.1),
    ] {
        for (n, chunk) in chunks.iter().enumerate().skip(from) {
            assert!(
                matches!(
                    laptop_keys.open(g, d, chunk),
                    Unsealed::NoKey | Unsealed::Hold
                ),
                "chunk {} of {d}, written after the revocation, opens with the laptop's keys",
                n + 1
            );
        }
    }
}
