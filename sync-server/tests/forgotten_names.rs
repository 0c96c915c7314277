//! The relay binary opening a database a relay of protocol 6 wrote (SQLite schema
//! version 10), which held family titles and 호칭 in the clear: after the upgrade the
//! database's files hold none of their bytes, and everything else works as before —
//! the family and its members, a pending invite (with an empty card), sign-in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use doran_protocol::{
    FamilyId, InviteId, InviteState, Request, Response, ServerEvent, ServerFrame, UserId,
};
use rusqlite::Connection;
use support::{Client, Identity, Server, assert_relay_works};

/// The relay store's migrations up to version 10, as a relay of protocol 6 ran them.
const VERSION_10: [&str; 10] = [
    include_str!("../src/store/migrations/001_init.sql"),
    include_str!("../src/store/migrations/002_user_blob_grants.sql"),
    include_str!("../src/store/migrations/003_quotas_and_snapshot_refs.sql"),
    include_str!("../src/store/migrations/004_link_requests.sql"),
    include_str!("../src/store/migrations/005_pending_snapshots.sql"),
    include_str!("../src/store/migrations/006_purge_indexes.sql"),
    include_str!("../src/store/migrations/007_chunk_authors.sql"),
    include_str!("../src/store/migrations/008_device_certs.sql"),
    include_str!("../src/store/migrations/009_key_packages.sql"),
    include_str!("../src/store/migrations/010_sealed_logs.sql"),
];

/// What the old relay held in the clear: distinct strings, so none is found by chance.
const TITLE: &str = "할머니댁-가족이름-하나";
const OLD_TITLE: &str = "옛-가족이름-둘";
const HOST_NAME: &str = "큰딸-호칭-가나다라";
const MEMBER_NAME: &str = "작은아들-호칭-마바사";
const PROPOSED: &str = "막내며느리-호칭-아자차";

fn secrets() -> [&'static str; 5] {
    [TITLE, OLD_TITLE, HOST_NAME, MEMBER_NAME, PROPOSED]
}

/// Which of the secrets the database's files (the file and its WAL) hold.
fn found_in(dir: &Path) -> Vec<&'static str> {
    let mut bytes = Vec::new();
    for file in ["relay.sqlite", "relay.sqlite-wal"] {
        if let Ok(b) = std::fs::read(dir.join(file)) {
            bytes.extend(b);
        }
    }
    secrets()
        .into_iter()
        .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect()
}

fn insert_user(conn: &Connection, id: &Identity) -> rusqlite::Result<()> {
    let user = id.user();
    conn.execute(
        "INSERT INTO users (id, email, nickname, user_key, personal_doc, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1)",
        (
            user.0,
            &id.email,
            &id.nickname,
            id.user_public().0,
            id.personal_doc.0,
        ),
    )?;
    conn.execute(
        "INSERT INTO docs (doc, user) VALUES (?1, ?2)",
        (id.personal_doc.0, user.0),
    )?;
    conn.execute(
        "INSERT INTO devices (id, user, key, client, added_at) VALUES (?1, ?2, ?3, 'old', 1)",
        (id.device.0, user.0, id.device_public().0),
    )?;
    Ok(())
}

/// Writes a version-10 database: Alice hosts a family (renamed once) that Bob
/// joined; Carol's invite is pending.
fn old_database(
    path: &Path,
    (alice, bob, carol): (&Identity, &Identity, &Identity),
    family: FamilyId,
    invite: InviteId,
) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    for (version, sql) in (1i64..).zip(VERSION_10) {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", version)?;
    }
    for id in [alice, bob, carol] {
        insert_user(&conn, id)?;
    }
    conn.execute(
        "INSERT INTO families (id, title, host, created_at) VALUES (?1, ?2, ?3, 1)",
        (family.0, OLD_TITLE, alice.user().0),
    )?;
    // Bob's old family next to it, then a rename to a longer title: the old one
    // stays behind in the page, as relays of protocol 5 and before left it.
    let bobs = FamilyId::random();
    conn.execute(
        "INSERT INTO families (id, title, host, created_at, deleted) VALUES (?1, 'x', ?2, 1, 1)",
        (bobs.0, bob.user().0),
    )?;
    conn.execute(
        "UPDATE families SET title = ?2 WHERE id = ?1",
        (family.0, TITLE),
    )?;
    conn.execute("INSERT INTO docs (doc, family) VALUES (?1, ?1)", [family.0])?;
    for (user, name, role, at) in [
        (alice.user(), HOST_NAME, "host", 1),
        (bob.user(), MEMBER_NAME, "member", 2),
    ] {
        conn.execute(
            "INSERT INTO members (family, user, name, role, joined_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            (family.0, user.0, name, role, at),
        )?;
    }
    let now = i64::try_from(support::now_ms()).expect("a time");
    conn.execute(
        "INSERT INTO invites (id, family, inviter, invitee, proposed_name, created_at,
                              expires_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
        (
            invite.0,
            family.0,
            alice.user().0,
            carol.user().0,
            PROPOSED,
            now,
            now + 86_400_000,
        ),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_relay_keeps_no_title_or_name_of_its_old_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_kim");
    let mut carol = Identity::new("carol@example.com", "carol");
    for id in [&mut alice, &mut bob, &mut carol] {
        id.user = Some(UserId::random());
    }
    let (family, invite) = (FamilyId::random(), InviteId::random());
    old_database(
        &dir.path().join("relay.sqlite"),
        (&alice, &bob, &carol),
        family,
        invite,
    )
    .expect("a version-10 database");
    assert_eq!(
        found_in(dir.path()),
        secrets(),
        "the old database holds them all"
    );

    // SQLite whatever the test run's backend: the file is what is under test.
    let mut server = Server::start_exactly(dir.path(), &[]);
    assert_eq!(
        found_in(dir.path()),
        Vec::<&str>::new(),
        "nothing of them once the relay runs"
    );

    // Carol's device is told of her pending invite at sign-in: its card is empty.
    let mut c = Client::sign_in(&server, &carol).await;
    let received = c
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (received.invite, received.family, received.card.len()),
        (invite, family, 0)
    );
    assert_eq!(received.inviter_nickname, "alice");
    // The family and its members are as they were.
    let mut a = Client::sign_in(&server, &alice).await;
    let families = a.families().await;
    assert_eq!(families.len(), 1);
    let members: Vec<UserId> = families[0].members.iter().map(|m| m.user).collect();
    assert_eq!(members, vec![alice.user(), bob.user()]);
    // The invite is still answerable.
    let answered = c.request(carol.answer_request(invite, true)).await;
    match answered {
        Ok(Response::InviteAnswered {
            invite: info,
            family: Some(joined),
        }) => {
            assert_eq!(info.state, InviteState::Accepted);
            assert_eq!(joined.members.len(), 3);
        }
        other => panic!("expected InviteAnswered, got {other:?}"),
    }
    assert!(matches!(
        a.request(Request::ListFamilies).await,
        Ok(Response::Families(list)) if list[0].members.len() == 3
    ));
    assert_relay_works(&server, "upgraded").await;

    assert!(server.terminate().success());
    assert_eq!(
        found_in(dir.path()),
        Vec::<&str>::new(),
        "nor once it stopped"
    );
}
