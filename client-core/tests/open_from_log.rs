//! Opening a family from its stored log: a snapshot and the chunks stored after it.
//! The tail is applied to Automerge in one batch (one pass over the document instead
//! of one per change); these tests hold that the result is exactly what applying the
//! chunks one by one gave, whatever the log holds.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic loudly.

use doran_client_core::{Actor, FamilyDoc};
use doran_protocol::{DeviceId, FamilyId, UserId};

const T0: i64 = 1_700_000_000_000;

fn actor() -> Actor {
    Actor {
        user: UserId::random(),
        device: DeviceId::random(),
    }
}

/// Host and member devices of one family, in step, and the host's first change.
fn family() -> (FamilyDoc, FamilyDoc, Vec<u8>) {
    let member_actor = actor();
    let (mut host, first) =
        FamilyDoc::create(FamilyId::random(), "우리 가족", "엄마", &actor(), T0).unwrap();
    let mut member = FamilyDoc::load(Some(&host.save()), [], &member_actor).unwrap();
    let join = member.add_member(member_actor.user, "아빠", T0).unwrap();
    assert!(
        host.apply_remote([join.change.unwrap().as_slice()])
            .rejected
            .is_empty()
    );
    (host, member, first)
}

/// Both devices edit concurrently, exchanging now and then; returns every change in
/// the order the host stored them (its own as it made them, the member's on arrival).
fn busy_week(host: &mut FamilyDoc, member: &mut FamilyDoc) -> Vec<Vec<u8>> {
    let mut log = Vec::new();
    let mut unsent: Vec<Vec<u8>> = Vec::new();
    for day in 0..40_i64 {
        let now = T0 + day * 86_400_000;
        let mine = host
            .add_mission(&format!("집안일 {day}"), &[member.me()], None, now)
            .unwrap();
        let id = mine.value.clone();
        let theirs = member.create_album(&format!("앨범 {day}"), now).unwrap();
        let mine = mine.change.unwrap();
        let theirs = theirs.change.unwrap();
        log.push(mine.clone());
        unsent.push(mine);
        if day % 3 == 0 {
            // The member hears of the host's missions and ticks today's.
            let heard = member.apply_remote(unsent.iter().map(Vec::as_slice));
            assert!(heard.rejected.is_empty());
            unsent.clear();
            let tick = member.set_mission_done(&id, true, now).unwrap();
            for change in [theirs.clone(), tick.change.unwrap()] {
                assert!(host.apply_remote([change.as_slice()]).rejected.is_empty());
                log.push(change);
            }
        } else {
            assert!(host.apply_remote([theirs.as_slice()]).rejected.is_empty());
            log.push(theirs);
        }
    }
    log
}

#[test]
fn a_long_tail_opens_to_the_same_state_as_the_live_document() {
    let (mut host, mut member, _) = family();
    let snapshot = host.save();
    let tail = busy_week(&mut host, &mut member);
    let reopened =
        FamilyDoc::load(Some(&snapshot), tail.iter().map(Vec::as_slice), &actor()).unwrap();
    let mut reopened = reopened;
    assert_eq!(reopened.replica_mut().heads(), host.replica_mut().heads());
    assert_eq!(reopened.view(), host.view());
    assert_eq!(reopened.view().missions.len(), 40);
    assert_eq!(reopened.view().albums.len(), 40);
}

#[test]
fn a_change_stored_before_its_dependency_is_applied_when_the_dependency_comes() {
    let (mut host, mut member, _) = family();
    let snapshot = host.save();
    let tail = busy_week(&mut host, &mut member);
    // Reverse the tail: almost every change now comes before what it builds on, as in
    // a log where changes waited for their dependencies.
    let reopened = FamilyDoc::load(
        Some(&snapshot),
        tail.iter().rev().map(Vec::as_slice),
        &actor(),
    )
    .unwrap();
    let mut reopened = reopened;
    assert_eq!(reopened.replica_mut().heads(), host.replica_mut().heads());
    assert_eq!(reopened.view(), host.view());
}

#[test]
fn an_unreadable_stored_chunk_costs_only_itself() {
    let (mut host, mut member, first) = family();
    let mut log = host
        .replica_mut()
        .doc_mut()
        .get_changes(&[])
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect::<Vec<_>>();
    assert_eq!(log[0], first);
    let tail = busy_week(&mut host, &mut member);
    let (before, after) = tail.split_at(tail.len() / 2);
    log.extend(before.iter().cloned());
    // A damaged row in the middle of the log (an Automerge change header, then junk).
    log.push([&[0x85, 0x6f, 0x4a, 0x83][..], &[0xff; 40]].concat());
    log.extend(after.iter().cloned());
    let mut reopened = FamilyDoc::load(None, log.iter().map(Vec::as_slice), &actor()).unwrap();
    assert_eq!(reopened.replica_mut().heads(), host.replica_mut().heads());
    assert_eq!(reopened.view(), host.view());
}

#[test]
fn a_change_whose_dependency_never_comes_waits_without_holding_up_the_rest() {
    let (mut host, mut member, _) = family();
    let snapshot = host.save();
    // The member's other device makes two changes; the host's log only ever gets the
    // second.
    let tablet = Actor {
        user: member.me(),
        device: DeviceId::random(),
    };
    let mut other = FamilyDoc::load(Some(&snapshot), [], &tablet).unwrap();
    let lost = other.create_album("못 받은 앨범", T0).unwrap();
    let orphan = other.create_album("기다리는 앨범", T0).unwrap();
    drop(lost);
    let tail = busy_week(&mut host, &mut member);
    let (before, after) = tail.split_at(tail.len() / 2);
    let mut log: Vec<Vec<u8>> = before.to_vec();
    log.push(orphan.change.unwrap());
    log.extend(after.iter().cloned());
    let mut reopened =
        FamilyDoc::load(Some(&snapshot), log.iter().map(Vec::as_slice), &actor()).unwrap();
    assert_eq!(reopened.replica_mut().heads(), host.replica_mut().heads());
    assert_eq!(reopened.view(), host.view());
    assert!(
        reopened
            .view()
            .albums
            .values()
            .all(|a| a.name != "기다리는 앨범")
    );
}
