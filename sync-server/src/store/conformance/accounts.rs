//! Users, devices, link codes, and number ranges.

use doran_protocol::{BlobHash, ChunkId, DocId, LinkId, UserId};

use super::{Fixture, TestResult, UPLOADER, family_with_host, new_device, new_user, register};
use crate::store::{DeviceRecord, NewDevice, SnapshotRef, StoreError, UserRecord};

const BIG: u64 = i64::MAX as u64 + 1;

pub(crate) fn create_user_then_read_it_back(f: &Fixture) -> TestResult {
    let (user, device) = new_user(1);
    f.accounts.create_user(&user, &device)?;
    let expected = UserRecord {
        id: user.id,
        email: user.email.clone(),
        nickname: user.nickname.clone(),
        avatar: None,
        user_key: user.user_key,
        personal_doc: user.personal_doc,
        created_at: user.created_at,
    };
    assert_eq!(f.accounts.user(user.id)?, Some(expected.clone()));
    assert_eq!(
        f.accounts.user_by_email(&user.email)?,
        Some(expected.clone())
    );
    assert_eq!(f.accounts.user_by_key(&user.user_key)?, Some(expected));
    let record = DeviceRecord {
        id: device.id,
        user: user.id,
        key: device.key,
        client: device.client.clone(),
        added_at: device.added_at,
        last_seen: None,
        revoked_at: None,
    };
    assert_eq!(f.accounts.device(device.id)?, Some(record.clone()));
    assert_eq!(f.accounts.devices(user.id)?, vec![record]);
    assert_eq!(
        f.accounts.doc_owner(user.personal_doc)?,
        Some(crate::store::DocOwner::Personal(user.id))
    );
    // Its key log: the key group of the user's own devices.
    let keys = doran_protocol::FamilyId(user.personal_doc.0).key_log();
    assert_eq!(
        f.accounts.doc_owner(keys)?,
        Some(crate::store::DocOwner::PersonalKeys(user.id))
    );
    // No other account can take it as its personal document (the relay would then
    // give it that user's key log), nor the other way round.
    let (mut thief, thief_device) = new_user(9);
    thief.personal_doc = keys;
    assert!(matches!(
        f.accounts.create_user(&thief, &thief_device),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        f.accounts.doc_owner(keys)?,
        Some(crate::store::DocOwner::PersonalKeys(user.id))
    );
    assert!(f.accounts.families_of(user.id)?.is_empty());
    // The email is matched exactly: the caller normalises.
    assert_eq!(f.accounts.user_by_email("USER1@example.com")?, None);
    Ok(())
}

pub(crate) fn a_taken_email_is_refused_and_changes_nothing(f: &Fixture) -> TestResult {
    register(f, 1)?;
    let (mut user, device) = new_user(2);
    user.email = new_user(1).0.email;
    assert!(matches!(
        f.accounts.create_user(&user, &device),
        Err(StoreError::EmailTaken)
    ));
    assert_eq!(f.accounts.user(user.id)?, None);
    assert_eq!(f.accounts.device(device.id)?, None);
    assert_eq!(f.accounts.doc_owner(user.personal_doc)?, None);
    // With another email, the same user registers.
    user.email = "two@example.com".into();
    f.accounts.create_user(&user, &device)?;
    Ok(())
}

/// Sign-ups racing for one email (several relays, or one relay's blocking threads):
/// exactly one account is made, the others are told the email is taken, and nothing
/// of theirs is left behind.
pub(crate) fn racing_sign_ups_of_one_email_make_one_account(f: &Fixture) -> TestResult {
    const RACERS: u8 = 8;
    let handles: Vec<_> = (1..=RACERS)
        .map(|n| {
            let accounts = std::sync::Arc::clone(&f.accounts);
            std::thread::spawn(move || {
                let (mut user, device) = new_user(n);
                user.email = "shared@example.com".into();
                (n, accounts.create_user(&user, &device))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for handle in handles {
        let (n, result) = handle.join().map_err(|_| "a racer panicked")?;
        match result {
            Ok(()) => winners.push(n),
            Err(StoreError::EmailTaken) => {
                let (user, device) = new_user(n);
                assert_eq!(f.accounts.user(user.id)?, None);
                assert_eq!(f.accounts.device(device.id)?, None);
                assert_eq!(f.accounts.doc_owner(user.personal_doc)?, None);
            }
            Err(e) => return Err(format!("racer {n}: {e}").into()),
        }
    }
    assert_eq!(winners.len(), 1, "one account: {winners:?}");
    let winner = new_user(winners[0]).0.id;
    let found = f.accounts.user_by_email("shared@example.com")?;
    assert_eq!(found.map(|u| u.id), Some(winner));
    Ok(())
}

pub(crate) fn taken_ids_and_keys_are_conflicts(f: &Fixture) -> TestResult {
    let one = register(f, 1)?;
    let family = family_with_host(f, 1, 9)?;
    let (fresh, fresh_device) = new_user(2);
    let (taken, taken_device) = new_user(1);

    let mut cases = Vec::new();
    let mut same_id = fresh.clone();
    same_id.id = taken.id;
    cases.push((same_id, fresh_device.clone()));
    let mut same_key = fresh.clone();
    same_key.user_key = taken.user_key;
    cases.push((same_key, fresh_device.clone()));
    let mut same_doc = fresh.clone();
    same_doc.personal_doc = taken.personal_doc;
    cases.push((same_doc, fresh_device.clone()));
    let mut family_doc = fresh.clone();
    family_doc.personal_doc = DocId::from(family);
    cases.push((family_doc, fresh_device.clone()));
    let mut same_device = fresh_device.clone();
    same_device.id = taken_device.id;
    cases.push((fresh.clone(), same_device));
    let mut same_device_key = fresh_device.clone();
    same_device_key.key = taken_device.key;
    cases.push((fresh.clone(), same_device_key));

    for (user, device) in cases {
        let result = f.accounts.create_user(&user, &device);
        assert!(
            matches!(result, Err(StoreError::Conflict(_))),
            "{user:?} {device:?}: {result:?}"
        );
        assert_eq!(f.accounts.user_by_email(&user.email)?, None);
    }
    assert_eq!(f.accounts.user(fresh.id)?, None);
    assert_eq!(f.accounts.devices(one)?.len(), 1);
    f.accounts.create_user(&fresh, &fresh_device)?;
    Ok(())
}

pub(crate) fn unknown_users_and_devices_read_as_none(f: &Fixture) -> TestResult {
    let (user, device) = new_user(1);
    assert_eq!(f.accounts.user(user.id)?, None);
    assert_eq!(f.accounts.user_by_email(&user.email)?, None);
    assert_eq!(f.accounts.user_by_key(&user.user_key)?, None);
    assert_eq!(f.accounts.device(device.id)?, None);
    assert!(f.accounts.devices(user.id)?.is_empty());
    assert_eq!(f.accounts.doc_owner(user.personal_doc)?, None);
    Ok(())
}

pub(crate) fn set_profile_updates_nickname_and_avatar(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let avatar = BlobHash::of(b"me.jpg");
    f.accounts.set_profile(user, "새 별명", Some(avatar))?;
    let record = f.accounts.user(user)?.ok_or("user")?;
    assert_eq!(record.nickname, "새 별명");
    assert_eq!(record.avatar, Some(avatar));
    f.accounts.set_profile(user, "plain", None)?;
    let record = f.accounts.user(user)?.ok_or("user")?;
    assert_eq!((record.nickname.as_str(), record.avatar), ("plain", None));
    assert!(matches!(
        f.accounts.set_profile(UserId([7; 16]), "x", None),
        Err(StoreError::NotFound("user"))
    ));
    Ok(())
}

pub(crate) fn add_device_lists_devices_oldest_first(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let mut late = new_device(1, 5);
    late.added_at = 9_000;
    let mut early = new_device(1, 6);
    early.added_at = 500;
    f.accounts.add_device(user, &late)?;
    f.accounts.add_device(user, &early)?;
    let ids: Vec<_> = f.accounts.devices(user)?.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![early.id, new_device(1, 0).id, late.id]);
    // Another user's devices are theirs.
    let other = register(f, 2)?;
    assert_eq!(f.accounts.devices(other)?.len(), 1);
    assert_eq!(
        f.accounts.device(late.id)?.map(|d| (d.user, d.client)),
        Some((user, late.client))
    );
    Ok(())
}

pub(crate) fn add_device_errors_change_nothing(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    assert!(matches!(
        f.accounts.add_device(UserId([7; 16]), &new_device(7, 1)),
        Err(StoreError::NotFound("user"))
    ));
    assert_eq!(f.accounts.device(new_device(7, 1).id)?, None);
    let mut same_id = new_device(1, 1);
    same_id.id = new_device(1, 0).id;
    assert!(matches!(
        f.accounts.add_device(user, &same_id),
        Err(StoreError::Conflict(_))
    ));
    let mut same_key = new_device(1, 1);
    same_key.key = new_device(1, 0).key;
    assert!(matches!(
        f.accounts.add_device(user, &same_key),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(f.accounts.devices(user)?.len(), 1);
    Ok(())
}

pub(crate) fn revoke_device_is_idempotent_and_per_user(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let other = register(f, 2)?;
    let device = new_device(1, 0).id;
    assert!(matches!(
        f.accounts.revoke_device(other, device, device, 50),
        Err(StoreError::NotFound("device"))
    ));
    assert_eq!(f.accounts.device(device)?.ok_or("device")?.revoked_at, None);
    f.accounts.revoke_device(user, device, device, 50)?;
    assert_eq!(
        f.accounts.device(device)?.ok_or("device")?.revoked_at,
        Some(50)
    );
    // A revoked device revokes nothing more, itself included.
    assert!(matches!(
        f.accounts.revoke_device(user, device, device, 60),
        Err(StoreError::DeviceRevoked)
    ));
    let second = new_device(1, 1);
    f.accounts.add_device(user, &second)?;
    f.accounts.revoke_device(user, device, second.id, 60)?;
    assert_eq!(
        f.accounts.device(device)?.ok_or("device")?.revoked_at,
        Some(50),
        "the first revocation time stays"
    );
    assert!(matches!(
        f.accounts
            .revoke_device(user, new_device(1, 9).id, second.id, 50),
        Err(StoreError::NotFound("device"))
    ));
    // Revoking on behalf of another user's device, or an unknown one.
    assert!(matches!(
        f.accounts
            .revoke_device(user, second.id, new_device(2, 0).id, 50),
        Err(StoreError::NotFound("device"))
    ));
    Ok(())
}

pub(crate) fn devices_revoking_each_other_leave_one_standing(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let owner = new_device(1, 0).id;
    let thief = new_device(1, 1);
    f.accounts.add_device(user, &thief)?;
    // The owner's revocation commits first: the thief's, after it, is refused.
    f.accounts.revoke_device(user, thief.id, owner, 10)?;
    assert!(matches!(
        f.accounts.revoke_device(user, owner, thief.id, 11),
        Err(StoreError::DeviceRevoked)
    ));
    assert_eq!(f.accounts.device(owner)?.ok_or("owner")?.revoked_at, None);
    assert_eq!(
        f.accounts.device(thief.id)?.ok_or("thief")?.revoked_at,
        Some(10)
    );
    Ok(())
}

pub(crate) fn touch_device_only_moves_forward(f: &Fixture) -> TestResult {
    register(f, 1)?;
    let device = new_device(1, 0).id;
    let seen = |f: &Fixture| -> Result<(Option<u64>, String), Box<dyn std::error::Error>> {
        let d = f.accounts.device(device)?.ok_or("device")?;
        Ok((d.last_seen, d.client))
    };
    let laptop = "Dorandoran · laptop (Linux)";
    f.accounts.touch_device(device, 100, Some(laptop))?;
    assert_eq!(seen(f)?, (Some(100), laptop.into()));
    // A connection that ends keeps the name; an older time leaves last_seen alone.
    f.accounts.touch_device(device, 90, None)?;
    assert_eq!(seen(f)?, (Some(100), laptop.into()));
    f.accounts
        .touch_device(device, 200, Some("엄마의 노트북"))?;
    assert_eq!(seen(f)?, (Some(200), "엄마의 노트북".into()));
    f.accounts.touch_device(device, 300, None)?;
    assert_eq!(seen(f)?, (Some(300), "엄마의 노트북".into()));
    assert!(matches!(
        f.accounts.touch_device(new_device(9, 9).id, 1, None),
        Err(StoreError::NotFound("device"))
    ));
    Ok(())
}

fn code(n: u8) -> [u8; 32] {
    *blake3::hash(&[n; 8]).as_bytes()
}

/// Claims `code` at `now` for a new, unregistered device `k`; the code's user.
fn redeem(f: &Fixture, code: [u8; 32], k: u8, now: u64) -> Result<Option<UserId>, StoreError> {
    let device = NewDevice {
        added_at: now.min(i64::MAX as u64),
        ..new_device(250, k)
    };
    Ok(f.accounts
        .claim_link_code(code, LinkId([k; 16]), &device, now)?
        .map(|l| l.user))
}

pub(crate) fn a_link_code_is_taken_once(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let device = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, device, 1_000)?;
    assert_eq!(redeem(f, code(1), 1, 999)?, Some(user));
    assert!(
        matches!(redeem(f, code(1), 2, 999), Err(StoreError::LinkClaimed)),
        "used"
    );
    // The next code (issued once the first was claimed) works too.
    f.accounts.put_link_code(code(2), user, device, 1_000)?;
    assert_eq!(redeem(f, code(2), 3, 10)?, Some(user));
    assert_eq!(redeem(f, code(3), 4, 10)?, None, "unknown");
    Ok(())
}

pub(crate) fn link_codes_expire(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let device = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, device, 1_000)?;
    assert_eq!(redeem(f, code(1), 1, 1_000)?, None, "expired");
    assert_eq!(redeem(f, code(1), 2, 2_000)?, None);
    // A refused attempt changes nothing: before the deadline the code still works.
    assert_eq!(redeem(f, code(1), 3, 999)?, Some(user));
    Ok(())
}

pub(crate) fn link_codes_of_revoked_devices_do_not_work(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let device = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, device, 1_000)?;
    f.accounts.revoke_device(user, device, device, 5)?;
    assert_eq!(redeem(f, code(1), 1, 10)?, None);
    assert!(matches!(
        f.accounts.put_link_code(code(2), user, device, 1_000),
        Err(StoreError::Invalid(_))
    ));
    Ok(())
}

pub(crate) fn put_link_code_errors(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let other = register(f, 2)?;
    let device = new_device(1, 0).id;
    assert!(matches!(
        f.accounts.put_link_code(code(1), other, device, 1_000),
        Err(StoreError::NotFound("device"))
    ));
    assert_eq!(redeem(f, code(1), 1, 10)?, None);
    f.accounts.put_link_code(code(1), user, device, 1_000)?;
    assert!(matches!(
        f.accounts
            .put_link_code(code(1), other, new_device(2, 0).id, 5_000),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(redeem(f, code(1), 2, 10)?, Some(user));
    Ok(())
}

pub(crate) fn out_of_range_numbers_are_invalid(f: &Fixture) -> TestResult {
    let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Invalid(_)));
    let (mut user, device) = new_user(1);
    user.created_at = BIG;
    assert!(invalid(f.accounts.create_user(&user, &device)));
    assert_eq!(f.accounts.user(user.id)?, None);
    let id = register(f, 1)?;
    let device = new_device(1, 0).id;
    assert!(invalid(f.accounts.touch_device(device, BIG, None)));
    assert!(invalid(f.accounts.revoke_device(id, device, device, BIG)));
    assert!(invalid(f.accounts.put_link_code(code(1), id, device, BIG)));
    assert!(invalid(redeem(f, code(1), 1, BIG).map(|_| ())));
    let family = family_with_host(f, 1, 2)?;
    assert!(invalid(f.accounts.grant_blob(
        family,
        BlobHash::of(b"x"),
        BIG,
        UPLOADER
    )));
    assert_eq!(f.accounts.family_blob_bytes(family)?, 0);
    assert!(invalid(f.accounts.grant_blob_to_user(
        id,
        BlobHash::of(b"x"),
        BIG
    )));
    assert_eq!(f.accounts.user_blob_bytes(id)?, 0);

    let doc = DocId([1; 16]);
    assert!(invalid(
        f.logs.append(doc, ChunkId::of(b"a"), b"a", BIG).map(|_| ())
    ));
    assert_eq!(f.logs.head(doc)?, 0);
    f.logs.append(doc, ChunkId::of(b"a"), b"a", 1)?;
    assert!(invalid(f.logs.read_since(doc, BIG, 10).map(|_| ())));
    let snapshot = SnapshotRef {
        covers_seq: 1,
        blob: BlobHash::of(b"s"),
        len: BIG,
    };
    assert!(invalid(f.logs.put_snapshot(doc, &snapshot).map(|_| ())));
    assert_eq!(f.logs.snapshot(doc)?, None);
    // The largest allowed numbers are fine.
    let max = i64::MAX as u64;
    f.accounts.touch_device(device, max, None)?;
    assert_eq!(
        f.accounts.device(device)?.ok_or("device")?.last_seen,
        Some(max)
    );
    assert!(f.logs.read_since(doc, max, 10)?.is_empty());
    Ok(())
}

/// Device certificates are opaque to the store (the relay checks them first): kept
/// once per (device, certifier), oldest first, per user, and capped with nothing of
/// an over-the-cap batch kept.
pub(crate) fn device_certs_are_kept_once_and_capped(f: &Fixture) -> TestResult {
    use doran_protocol::{
        Signature,
        model::{Certifier, DeviceCert},
    };
    let user = register(f, 1)?;
    let other = register(f, 2)?;
    let cert = |device: u8, by: Certifier, sig: u8| DeviceCert {
        device: new_device(1, device).id,
        device_key: new_device(1, device).key,
        by,
        signature: Signature([sig; 64]),
    };
    for k in 1..=6 {
        f.accounts.add_device(user, &new_device(1, k))?;
    }
    let first = cert(0, Certifier::User, 1);
    let second = cert(1, Certifier::Device(new_device(1, 0).id), 2);
    f.accounts
        .put_device_certs(user, &[first.clone(), second.clone()], 4)?;
    // The same (device, certifier) again, even with other bytes: the first stays.
    f.accounts
        .put_device_certs(user, &[cert(0, Certifier::User, 9)], 4)?;
    assert_eq!(
        f.accounts.device_certs(user)?,
        vec![first.clone(), second.clone()]
    );
    assert!(f.accounts.device_certs(other)?.is_empty());
    // Past the cap: none of the batch is kept.
    let over = [
        cert(2, Certifier::User, 3),
        cert(3, Certifier::User, 4),
        cert(4, Certifier::User, 5),
    ];
    assert!(matches!(
        f.accounts.put_device_certs(user, &over, 4),
        Err(StoreError::TooManyCerts)
    ));
    assert_eq!(f.accounts.device_certs(user)?, vec![first.clone(), second]);
    f.accounts.put_device_certs(user, &over[..2], 4)?;
    assert_eq!(f.accounts.device_certs(user)?.len(), 4);
    // Certificates of revoked devices do not count toward the cap (a stolen phone
    // that certified throwaway devices cannot lock its owner out once revoked).
    assert!(matches!(
        f.accounts
            .put_device_certs(user, &[cert(5, Certifier::User, 6)], 4),
        Err(StoreError::TooManyCerts)
    ));
    f.accounts
        .revoke_device(user, new_device(1, 3).id, new_device(1, 0).id, 3_000)?;
    f.accounts
        .put_device_certs(user, &[cert(5, Certifier::User, 6)], 4)?;
    assert_eq!(f.accounts.device_certs(user)?.len(), 5);
    // An unknown user keeps nothing.
    assert!(matches!(
        f.accounts.put_device_certs(UserId([0x77; 16]), &[first], 4),
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

/// Key packages are opaque to the store: one per device, a new one in place of the
/// old, served per user oldest device first, and only the user's own devices publish.
pub(crate) fn key_packages_are_one_per_device_oldest_first(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let other = register(f, 2)?;
    let first = new_device(1, 0).id;
    let mut early = new_device(1, 1);
    early.added_at = 500;
    f.accounts.add_device(user, &early)?;
    let quiet = new_device(1, 2);
    f.accounts.add_device(user, &quiet)?;
    assert!(f.accounts.key_packages(user)?.is_empty());

    f.accounts.put_key_package(user, first, b"first, v1", 10)?;
    assert_eq!(
        f.accounts.key_packages(user)?,
        vec![(first, b"first, v1".to_vec())]
    );
    f.accounts.put_key_package(user, early.id, b"early", 11)?;
    // A second package replaces the first; a device that published none is left out.
    f.accounts.put_key_package(user, first, b"first, v2", 12)?;
    assert_eq!(
        f.accounts.key_packages(user)?,
        vec![
            (early.id, b"early".to_vec()),
            (first, b"first, v2".to_vec())
        ]
    );
    // Another user's device, an unknown device: nothing kept.
    assert!(matches!(
        f.accounts
            .put_key_package(user, new_device(2, 0).id, b"theirs", 13),
        Err(StoreError::NotFound("device"))
    ));
    assert!(matches!(
        f.accounts
            .put_key_package(other, new_device(1, 0).id, b"mine", 13),
        Err(StoreError::NotFound("device"))
    ));
    assert!(matches!(
        f.accounts
            .put_key_package(user, new_device(1, 9).id, b"nobody", 13),
        Err(StoreError::NotFound("device"))
    ));
    assert!(matches!(
        f.accounts.put_key_package(user, quiet.id, b"late", BIG),
        Err(StoreError::Invalid(_))
    ));
    assert!(f.accounts.key_packages(other)?.is_empty());
    assert_eq!(f.accounts.key_packages(user)?.len(), 2);
    // An unknown user has none.
    assert!(f.accounts.key_packages(UserId([0x77; 16]))?.is_empty());
    Ok(())
}

/// A revoked device's key package is no longer served, and it publishes no other.
pub(crate) fn revoked_devices_key_packages_are_not_served(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let owner = new_device(1, 0).id;
    let stolen = new_device(1, 1);
    f.accounts.add_device(user, &stolen)?;
    f.accounts.put_key_package(user, owner, b"owner", 10)?;
    f.accounts.put_key_package(user, stolen.id, b"stolen", 11)?;
    assert_eq!(f.accounts.key_packages(user)?.len(), 2);
    f.accounts.revoke_device(user, stolen.id, owner, 20)?;
    assert_eq!(
        f.accounts.key_packages(user)?,
        vec![(owner, b"owner".to_vec())]
    );
    assert!(matches!(
        f.accounts.put_key_package(user, stolen.id, b"again", 30),
        Err(StoreError::DeviceRevoked)
    ));
    assert_eq!(
        f.accounts.key_packages(user)?,
        vec![(owner, b"owner".to_vec())]
    );
    Ok(())
}
