//! A family created clear, sealed end to end by its host later (issue 18), against the
//! real relay: from the host's first sealed change on, the relay takes envelopes only;
//! a member's change made offline meanwhile is refused clear, kept, and arrives
//! sealed; every member's device is let into the key group and reads everything; a
//! member who joins after reads the whole history; what the family makes after the
//! sealing goes to this year's volume (issue 17); and once the sealed snapshot is
//! confirmed the relay holds none of the family's clear history.

use std::path::Path;

use doran_device::{Device, ErrorCode};
use doran_e2e::{
    Relay, contains,
    devices::{WAIT, invite_received, link_and_confirm, mission, open_clear, sees_mission, until},
    files_under, relay_chunks, this_years_volume,
};
use doran_protocol::{DocId, FamilyId};

/// An account at `home` on `server`, on a device that creates families clear.
async fn account(home: &Path, server: &str, email: &str, name: &str) -> Device {
    let device = open_clear(home).await;
    device
        .create_account(server, email, name)
        .await
        .expect("an account");
    device
}

/// `host` invites `email` as `name`; `joiner` accepts.
async fn joins(host: &Device, joiner: &Device, family: &str, email: &str, name: &str) {
    let mut events = joiner.subscribe();
    host.invite(family, email, name).await.expect("invite sent");
    let invite = invite_received(&mut events).await;
    joiner.answer_invite(&invite, true).await.expect("accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_family_sealed_by_its_host_keeps_everything_and_the_relay_forgets_it() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay"), "127.0.0.1:0");
    let server = relay.url();
    let mom = account(
        &dir.path().join("mom"),
        &server,
        "mom@example.com",
        "엄마곰",
    )
    .await;
    let son = account(
        &dir.path().join("son"),
        &server,
        "son@example.com",
        "아들곰",
    )
    .await;
    let family = mom
        .create_family("우리 가족", "엄마")
        .await
        .expect("a clear family");
    joins(&mom, &son, &family, "son@example.com", "아들").await;
    mom.add_mission(&family, mission("김장 준비하기", &["엄마"]))
        .await
        .expect("mom's mission");
    sees_mission(&son, &family, "김장 준비하기").await;
    son.add_mission(&family, mission("할머니께 전화", &["아들"]))
        .await
        .expect("the son's mission");
    sees_mission(&mom, &family, "할머니께 전화").await;
    // Mom's laptop, linked while the family is clear, reads it clear.
    let laptop = open_clear(&dir.path().join("laptop")).await;
    link_and_confirm(&mom, &laptop, &server).await;
    sees_mission(&laptop, &family, "할머니께 전화").await;
    let doc = DocId::from(family.parse::<FamilyId>().expect("family id"));
    let clear = relay_chunks(&relay, doc);
    assert!(
        clear.iter().any(|c| contains(c, "김장".as_bytes())),
        "the family starts clear"
    );

    // Only the host seals a family.
    let refused = son
        .seal_family(&family)
        .await
        .expect_err("the son cannot seal it");
    assert_eq!(refused.code, ErrorCode::Forbidden);

    // The son's phone is offline and he adds a mission; meanwhile mom seals the family
    // and adds one of her own.
    son.sync_now(WAIT).await.expect("synced");
    son.stop_sync();
    son.add_mission(&family, mission("오프라인 메모", &["아들"]))
        .await
        .expect("an offline mission");
    assert!(
        mom.seal_family(&family).await.expect("sealed"),
        "newly sealed"
    );
    assert!(
        !mom.seal_family(&family).await.expect("asked again"),
        "sealed once"
    );
    mom.add_mission(&family, mission("봉인 뒤 첫 일", &["엄마"]))
        .await
        .expect("a mission after sealing");
    mom.sync_now(WAIT).await.expect("synced");

    // From mom's first sealed change on, the relay holds envelopes only.
    let after = relay_chunks(&relay, doc);
    let first_sealed = after
        .iter()
        .position(|c| c.starts_with(b"DRD\x01"))
        .expect("a sealed chunk");
    assert_eq!(
        first_sealed,
        clear.len(),
        "sealed from the change after the clear ones"
    );
    assert!(
        after[first_sealed..]
            .iter()
            .all(|c| c.starts_with(b"DRD\x01"))
    );
    assert!(
        !after.iter().any(|c| contains(c, "봉인".as_bytes())),
        "mom's new mission is sealed"
    );

    // Grandma joins while the relay still holds the clear history: her device reads
    // it clear, turns at mom's first sealed change, and is let in by mom's.
    let grandma = account(
        &dir.path().join("grandma"),
        &server,
        "grandma@example.com",
        "할머니곰",
    )
    .await;
    joins(&mom, &grandma, &family, "grandma@example.com", "할머니").await;
    sees_mission(&grandma, &family, "김장 준비하기").await;
    sees_mission(&grandma, &family, "봉인 뒤 첫 일").await;

    // Back online, the son's clear change is refused, kept, and goes again sealed once
    // mom's device (online) has let his into the family's key group.
    son.start_sync();
    sees_mission(&son, &family, "봉인 뒤 첫 일").await;
    sees_mission(&mom, &family, "오프라인 메모").await;
    son.add_mission(&family, mission("봉인 뒤 아들", &["아들"]))
        .await
        .expect("a mission on a sealed family");
    sees_mission(&mom, &family, "봉인 뒤 아들").await;
    // Her laptop turns too: let in by her phone, it reads and writes sealed.
    sees_mission(&laptop, &family, "봉인 뒤 아들").await;
    laptop
        .add_mission(&family, mission("노트북 봉인 메모", &["엄마"]))
        .await
        .expect("a mission from the laptop");
    sees_mission(&son, &family, "노트북 봉인 메모").await;
    let sealed_now = relay_chunks(&relay, doc);
    assert!(
        !sealed_now
            .iter()
            .any(|c| contains(c, "오프라인".as_bytes()) || contains(c, "봉인".as_bytes())),
        "every change after the sealing went sealed"
    );

    // Mom's sealed snapshot, confirmed by the son's device, replaces the clear
    // history: the relay's log then holds envelopes only.
    until("the clear history dropped", async || {
        mom.sync_now(WAIT).await.expect("synced");
        son.sync_now(WAIT).await.expect("synced");
        let log = relay_chunks(&relay, doc);
        let clear = log.iter().filter(|c| !c.starts_with(b"DRD\x01")).count();
        if clear == 0 { Ok(()) } else { Err(clear) }
    })
    .await;

    // Nor do its files (the SQLite file and its WAL, the blob folder with the
    // snapshot) hold any of the family's text.
    for (path, bytes) in files_under(relay.data()) {
        for text in ["김장", "할머니께", "오프라인", "봉인", "노트북"] {
            assert!(
                !contains(&bytes, text.as_bytes()),
                "{} holds {text:?} in the clear",
                path.display()
            );
        }
    }

    // Dad joins after: his device reads the whole history.
    let dad = account(
        &dir.path().join("dad"),
        &server,
        "dad@example.com",
        "아빠곰",
    )
    .await;
    joins(&mom, &dad, &family, "dad@example.com", "아빠").await;
    for title in [
        "김장 준비하기",
        "할머니께 전화",
        "오프라인 메모",
        "봉인 뒤 첫 일",
        "봉인 뒤 아들",
        "노트북 봉인 메모",
    ] {
        sees_mission(&dad, &family, title).await;
    }
    // What the family made once the relay took its sealing went to this year's
    // volume (issue 17), which dad's device opened to show it.
    let volume = this_years_volume(family.parse().expect("family id"));
    assert!(!relay_chunks(&relay, volume).is_empty(), "filed by year");
    dad.add_mission(&family, mission("아빠도 왔다", &["아빠"]))
        .await
        .expect("dad's mission");
    sees_mission(&son, &family, "아빠도 왔다").await;
    sees_mission(&grandma, &family, "아빠도 왔다").await;
}
