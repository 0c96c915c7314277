//! Conformance tests of [`DeviceRecords`](crate::store::DeviceRecords).

use std::sync::Arc;

use doran_protocol::{DeviceId, DocId, FamilyId, UserId};

use super::TestResult;
use crate::store::{
    AccountRecord, LocalStore, MAX_NOTIFICATION_BODY_LEN, MAX_NOTIFICATION_ID_LEN, Membership,
    NotificationRecord, StoreError,
};

fn family(n: u8) -> FamilyId {
    FamilyId([n; 16])
}

fn note(id: &str, at_ms: i64) -> NotificationRecord {
    NotificationRecord {
        id: id.to_owned(),
        family: Some(family(1)),
        at_ms,
        body: format!("body of {id}").into_bytes(),
        read: false,
    }
}

pub(crate) fn the_account_is_one_row(store: &Arc<dyn LocalStore>) -> TestResult {
    assert_eq!(store.account()?, None);
    let a = AccountRecord {
        user: UserId([1; 16]),
        device: DeviceId([2; 16]),
        email: "mom@example.com".into(),
        nickname: "엄마곰".into(),
        server: "https://relay.example.com".into(),
        personal_doc: DocId([3; 16]),
    };
    store.set_account(&a)?;
    assert_eq!(store.account()?.as_ref(), Some(&a));
    let b = AccountRecord {
        email: String::new(),
        device: DeviceId([9; 16]),
        ..a
    };
    store.set_account(&b)?;
    assert_eq!(
        store.account()?,
        Some(b),
        "a second account replaces the first"
    );
    store.delete_account()?;
    store.delete_account()?;
    assert_eq!(store.account()?, None);
    Ok(())
}

pub(crate) fn memberships_follow_the_relay(store: &Arc<dyn LocalStore>) -> TestResult {
    assert!(store.families()?.is_empty());
    assert!(store.set_membership(family(1), Membership::Member, 10)?);
    assert!(
        !store.set_membership(family(1), Membership::Member, 11)?,
        "unchanged"
    );
    assert!(store.set_membership(family(2), Membership::Member, 12)?);
    // The relay lists 2 and 3: 1 is removed, 3 joined elsewhere, 2 unchanged.
    let changed = store.sync_memberships(&[family(2), family(3)], 20)?;
    assert_eq!(
        changed,
        vec![
            (family(1), Membership::Removed),
            (family(3), Membership::Member)
        ]
    );
    let all = store.families()?;
    let view: Vec<_> = all
        .iter()
        .map(|r| (r.family, r.membership, r.since_ms))
        .collect();
    assert_eq!(
        view,
        vec![
            (family(1), Membership::Removed, 20),
            (family(2), Membership::Member, 12),
            (family(3), Membership::Member, 20),
        ],
        "in the order they became known, with when they last changed"
    );
    // Listed again later (re-invited): a member again.
    let changed = store.sync_memberships(&[family(1), family(2), family(3)], 30)?;
    assert_eq!(changed, vec![(family(1), Membership::Member)]);
    assert!(
        store
            .sync_memberships(&[family(1), family(2), family(3)], 40)?
            .is_empty()
    );
    Ok(())
}

pub(crate) fn forgotten_families_are_gone(store: &Arc<dyn LocalStore>) -> TestResult {
    store.set_membership(family(1), Membership::Member, 1)?;
    store.set_membership(family(2), Membership::Member, 2)?;
    // A removal noticed after the leave was finished does not bring it back.
    store.forget_family(family(2))?;
    assert!(!store.set_membership(family(2), Membership::Removed, 3)?);
    assert!(!store.set_membership(family(9), Membership::Removed, 3)?);
    assert_eq!(
        store
            .families()?
            .iter()
            .map(|r| r.family)
            .collect::<Vec<_>>(),
        vec![family(1)],
        "no removed family appears from nothing"
    );
    store.set_membership(family(2), Membership::Member, 2)?;
    store.forget_family(family(1))?;
    store.forget_family(family(7))?;
    let left: Vec<_> = store.families()?.iter().map(|r| r.family).collect();
    assert_eq!(left, vec![family(2)]);
    // A forgotten family is not "removed" by the next sign-in either.
    assert!(store.sync_memberships(&[family(2)], 3)?.is_empty());
    Ok(())
}

pub(crate) fn personal_docs_are_remembered(store: &Arc<dyn LocalStore>) -> TestResult {
    let (mom, son) = (UserId([1; 16]), UserId([2; 16]));
    assert_eq!(store.personal_doc(mom)?, None);
    store.set_personal_doc(mom, DocId([10; 16]))?;
    store.set_personal_doc(son, DocId([20; 16]))?;
    store.set_personal_doc(mom, DocId([11; 16]))?;
    assert_eq!(store.personal_doc(mom)?, Some(DocId([11; 16])));
    assert_eq!(store.personal_doc(son)?, Some(DocId([20; 16])));
    Ok(())
}

pub(crate) fn snapshot_covers_are_per_document(store: &Arc<dyn LocalStore>) -> TestResult {
    let (a, b) = (DocId([1; 16]), DocId([2; 16]));
    assert_eq!(store.snapshot_covers(a)?, 0);
    store.commit_local(a, b"change")?;
    store.set_snapshot_covers(a, 40)?;
    // A document not in the store yet (a snapshot of a document synced later).
    store.set_snapshot_covers(b, 7)?;
    assert_eq!(store.snapshot_covers(a)?, 40);
    assert_eq!(store.snapshot_covers(b)?, 7);
    assert_eq!(
        store.load(a)?.map(|d| d.changes),
        Some(vec![b"change".to_vec()]),
        "the log is untouched"
    );
    assert!(matches!(
        store.set_snapshot_covers(a, u64::MAX),
        Err(StoreError::OutOfRange { .. })
    ));
    assert_eq!(store.snapshot_covers(a)?, 40);
    Ok(())
}

pub(crate) fn notifications_are_kept_once_newest_first_and_trimmed(
    store: &Arc<dyn LocalStore>,
) -> TestResult {
    assert!(store.add_notification(&note("b", 20), 3)?);
    assert!(store.add_notification(&note("a", 10), 3)?);
    assert!(!store.add_notification(&note("a", 99), 3)?, "kept once");
    assert!(store.add_notification(&note("c", 30), 3)?);
    let ids: Vec<_> = store.notifications(10)?.into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["c", "b", "a"]);
    assert_eq!(store.notifications(10)?[2].at_ms, 10, "the first one stays");
    // A fourth: the oldest goes.
    assert!(store.add_notification(&note("d", 40), 3)?);
    let ids: Vec<_> = store.notifications(10)?.into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["d", "c", "b"]);
    // One older than everything kept is not kept.
    assert!(!store.add_notification(&note("old", 1), 3)?);
    assert_eq!(store.notifications(2)?.len(), 2);
    let n = &store.notifications(1)?[0];
    assert_eq!(n, &note("d", 40));
    Ok(())
}

pub(crate) fn notifications_are_read_and_dismissed(store: &Arc<dyn LocalStore>) -> TestResult {
    for (id, at) in [("a", 1), ("b", 2), ("c", 3)] {
        store.add_notification(&note(id, at), 10)?;
    }
    assert_eq!(store.unread_notifications()?, 3);
    assert_eq!(store.mark_notifications_read(Some("b"))?, 1);
    assert_eq!(store.mark_notifications_read(Some("b"))?, 0);
    assert_eq!(store.mark_notifications_read(Some("zzz"))?, 0);
    assert_eq!(store.unread_notifications()?, 2);
    let read: Vec<_> = store
        .notifications(10)?
        .into_iter()
        .map(|n| (n.id, n.read))
        .collect();
    assert_eq!(
        read,
        [("c".into(), false), ("b".into(), true), ("a".into(), false)]
    );
    assert_eq!(store.mark_notifications_read(None)?, 2);
    assert_eq!(store.unread_notifications()?, 0);
    assert!(store.dismiss_notification("a")?);
    assert!(!store.dismiss_notification("a")?);
    let ids: Vec<_> = store.notifications(10)?.into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["c", "b"]);
    Ok(())
}

pub(crate) fn oversized_notifications_are_refused(store: &Arc<dyn LocalStore>) -> TestResult {
    let mut n = note("x", 1);
    n.body = vec![b'x'; MAX_NOTIFICATION_BODY_LEN + 1];
    assert!(matches!(
        store.add_notification(&n, 10),
        Err(StoreError::SizeOutOfBounds { .. })
    ));
    let long_id = note(&"i".repeat(MAX_NOTIFICATION_ID_LEN + 1), 1);
    assert!(matches!(
        store.add_notification(&long_id, 10),
        Err(StoreError::SizeOutOfBounds { .. })
    ));
    assert!(matches!(
        store.add_notification(&note("", 1), 10),
        Err(StoreError::SizeOutOfBounds { .. })
    ));
    assert!(store.notifications(10)?.is_empty());
    n.body = vec![b'x'; MAX_NOTIFICATION_BODY_LEN];
    n.family = None;
    assert!(store.add_notification(&n, 10)?);
    assert_eq!(store.notifications(10)?, vec![n]);
    Ok(())
}
