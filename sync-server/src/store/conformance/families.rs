//! Families, members, document ownership and blob grants.

use doran_protocol::{
    BlobHash, DocId, FamilyId, InviteState, UserId,
    model::{MemberInfo, Role},
};

use super::{
    Fixture, TestResult, UPLOADER, family_id, family_with_host, join, new_device, new_invite,
    new_user, personal_doc, register,
};
use crate::store::{BlobGrantee, DocOwner, FamilyRecord, StoreError, UploadGrant, UploadVerdict};

pub(crate) fn create_family_makes_the_host_a_member_and_owns_the_doc(f: &Fixture) -> TestResult {
    let host = register(f, 1)?;
    let family = family_id(1);
    f.accounts.create_family(family, host, 77, usize::MAX)?;
    let record = FamilyRecord {
        id: family,
        host,
        created_at: 77,
    };
    assert_eq!(f.accounts.family(family)?, Some(record.clone()));
    assert_eq!(f.accounts.families_of(host)?, vec![record]);
    let member = MemberInfo {
        user: host,
        role: Role::Host,
        joined_at: 77,
        personal_doc: personal_doc(1),
    };
    assert_eq!(f.accounts.members(family)?, vec![member.clone()]);
    assert_eq!(f.accounts.membership(family, host)?, Some(member));
    assert_eq!(
        f.accounts.doc_owner(DocId::from(family))?,
        Some(DocOwner::Family(family))
    );
    assert_eq!(f.accounts.doc_owner(DocId([0x55; 16]))?, None);
    // Unknown families read as nothing.
    let unknown = family_id(2);
    assert_eq!(f.accounts.family(unknown)?, None);
    assert!(f.accounts.members(unknown)?.is_empty());
    assert_eq!(f.accounts.membership(unknown, host)?, None);
    assert_eq!(f.accounts.family_blob_bytes(unknown)?, 0);
    Ok(())
}

pub(crate) fn create_family_errors(f: &Fixture) -> TestResult {
    let host = register(f, 1)?;
    let nobody = register(f, 2)?;
    assert!(matches!(
        f.accounts
            .create_family(family_id(1), new_user(3).0.id, 1, usize::MAX),
        Err(StoreError::NotFound("user"))
    ));
    assert_eq!(f.accounts.family(family_id(1))?, None);
    f.accounts
        .create_family(family_id(1), host, 1, usize::MAX)?;
    assert!(matches!(
        f.accounts
            .create_family(family_id(1), nobody, 2, usize::MAX),
        Err(StoreError::Conflict(_))
    ));
    // A personal document id cannot become a family.
    let personal = FamilyId(personal_doc(2).0);
    assert!(matches!(
        f.accounts.create_family(personal, nobody, 2, usize::MAX),
        Err(StoreError::Conflict(_))
    ));
    assert!(f.accounts.families_of(nobody)?.is_empty());
    assert_eq!(
        f.accounts.doc_owner(personal_doc(2))?,
        Some(DocOwner::Personal(nobody))
    );
    // A deleted family's id stays taken.
    f.accounts.delete_family(family_id(1), 500)?;
    assert!(matches!(
        f.accounts
            .create_family(family_id(1), nobody, 3, usize::MAX),
        Err(StoreError::Conflict(_))
    ));
    Ok(())
}

/// A family's key log (`FamilyId::key_log`) belongs to the family like its document:
/// found without a row of its own, gone with the family, and no personal document or
/// other family can take its id.
pub(crate) fn a_familys_volumes_are_the_familys_and_taken_by_nothing_else(
    f: &Fixture,
) -> TestResult {
    let host = register(f, 1)?;
    let family = family_id(1);
    f.accounts.create_family(family, host, 77, usize::MAX)?;
    let v2026 = family.volume(2026);
    assert_eq!(
        f.accounts.doc_owner(v2026)?,
        None,
        "not before it is opened"
    );
    assert!(f.accounts.open_volume(family, 2026, 3)?);
    assert!(!f.accounts.open_volume(family, 2026, 3)?, "opened once");
    assert_eq!(f.accounts.doc_owner(v2026)?, Some(DocOwner::Family(family)));
    // The family's cap counts its own volumes; one open already is not refused.
    assert!(f.accounts.open_volume(family, 1990, 3)?);
    assert!(f.accounts.open_volume(family, 2031, 3)?);
    assert!(matches!(
        f.accounts.open_volume(family, 2027, 3),
        Err(StoreError::TooManyVolumes)
    ));
    assert!(!f.accounts.open_volume(family, 2026, 3)?);
    assert_eq!(f.accounts.doc_owner(family.volume(2027))?, None);
    assert_eq!(
        f.accounts.volumes_of(family)?,
        vec![
            (1990, family.volume(1990)),
            (2026, v2026),
            (2031, family.volume(2031))
        ]
    );
    let other = family_with_host(f, 2, 2)?;
    assert!(
        f.accounts.open_volume(other, 2026, 3)?,
        "another family's cap"
    );
    assert_eq!(
        f.accounts.doc_owner(other.volume(2026))?,
        Some(DocOwner::Family(other))
    );
    assert!(matches!(
        f.accounts.open_volume(family_id(9), 2026, 3),
        Err(StoreError::NotFound("family"))
    ));
    assert_eq!(f.accounts.doc_owner(family_id(9).volume(2026))?, None);

    // An opened volume's id names no new family or personal document, nor their key
    // logs (devices never make such ids, and the relay refuses them on the wire).
    let squatter = register(f, 3)?;
    for id in [v2026, DocId(v2026.key_log_family().0)] {
        assert!(matches!(
            f.accounts
                .create_family(FamilyId(id.0), squatter, 2, usize::MAX),
            Err(StoreError::Conflict(_))
        ));
        let (mut user, device) = new_user(4);
        user.personal_doc = id;
        assert!(matches!(
            f.accounts.create_user(&user, &device),
            Err(StoreError::Conflict(_))
        ));
    }
    // And a volume whose id another document took first cannot be opened.
    let third = family_with_host(f, 5, 5)?;
    f.accounts
        .create_family(FamilyId(third.volume(2030).0), squatter, 2, usize::MAX)?;
    let key_log = DocId(third.volume(2031).key_log_family().0);
    f.accounts
        .create_family(FamilyId(key_log.0), squatter, 2, usize::MAX)?;
    for year in [2030, 2031] {
        assert!(matches!(
            f.accounts.open_volume(third, year, 3),
            Err(StoreError::Conflict(_))
        ));
    }
    assert_eq!(
        f.accounts.doc_owner(third.volume(2030))?,
        Some(DocOwner::Family(FamilyId(third.volume(2030).0))),
        "still the squatter's own family document"
    );
    assert!(f.accounts.volumes_of(third)?.is_empty());

    // Gone with the family (its logs are the caller's to drop); the ids stay taken.
    f.accounts.delete_family(family, 500)?;
    assert_eq!(f.accounts.doc_owner(v2026)?, None);
    assert_eq!(f.accounts.volumes_of(family)?.len(), 3);
    assert!(matches!(
        f.accounts.open_volume(family, 2028, 9),
        Err(StoreError::NotFound("family"))
    ));
    assert!(matches!(
        f.accounts
            .create_family(FamilyId(v2026.0), squatter, 2, usize::MAX),
        Err(StoreError::Conflict(_))
    ));
    Ok(())
}

pub(crate) fn a_familys_key_log_is_the_familys(f: &Fixture) -> TestResult {
    let host = register(f, 1)?;
    let family = family_id(1);
    f.accounts.create_family(family, host, 77, usize::MAX)?;
    assert_eq!(
        f.accounts.doc_owner(family.key_log())?,
        Some(DocOwner::Family(family))
    );
    // No account can register the key log as its personal document.
    let (mut user, device) = new_user(2);
    user.personal_doc = family.key_log();
    assert!(matches!(
        f.accounts.create_user(&user, &device),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(f.accounts.user(user.id)?, None);
    assert_eq!(
        f.accounts.doc_owner(family.key_log())?,
        Some(DocOwner::Family(family))
    );
    // No family can be made whose key log is someone's personal document.
    let other = register(f, 3)?;
    let hijack = personal_doc(3).key_log_family();
    assert!(matches!(
        f.accounts.create_family(hijack, other, 2, usize::MAX),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        f.accounts.doc_owner(personal_doc(3))?,
        Some(DocOwner::Personal(other))
    );
    // Gone with the family; its id stays taken.
    f.accounts.delete_family(family, 500)?;
    assert_eq!(f.accounts.doc_owner(family.key_log())?, None);
    let (mut late, device) = new_user(4);
    late.personal_doc = family.key_log();
    assert!(matches!(
        f.accounts.create_user(&late, &device),
        Err(StoreError::Conflict(_))
    ));
    Ok(())
}

pub(crate) fn families_and_members_are_in_join_order(f: &Fixture) -> TestResult {
    let a = register(f, 1)?;
    let b = register(f, 2)?;
    let c = register(f, 3)?;
    // b hosts family 5 (created at 10); a hosts family 4 (created at 20).
    f.accounts.create_family(family_id(5), b, 10, usize::MAX)?;
    f.accounts.create_family(family_id(4), a, 20, usize::MAX)?;
    join(f, 1, family_id(4), a, c, 100)?;
    join(f, 2, family_id(5), b, c, 50)?;
    join(f, 3, family_id(5), b, a, 200)?;
    let families = |user| -> Result<Vec<FamilyId>, StoreError> {
        Ok(f.accounts
            .families_of(user)?
            .into_iter()
            .map(|r| r.id)
            .collect())
    };
    assert_eq!(
        families(c)?,
        vec![family_id(5), family_id(4)],
        "joined at 51, then 101"
    );
    assert_eq!(families(a)?, vec![family_id(4), family_id(5)]);
    assert_eq!(families(b)?, vec![family_id(5)]);
    let members: Vec<_> = f
        .accounts
        .members(family_id(5))?
        .into_iter()
        .map(|m| (m.user, m.role, m.joined_at))
        .collect();
    assert_eq!(
        members,
        vec![
            (b, Role::Host, 10),
            (c, Role::Member, 51),
            (a, Role::Member, 201),
        ]
    );
    Ok(())
}

pub(crate) fn remove_member_removes_access(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let kid = register(f, 2)?;
    join(f, 1, family, host, kid, 10)?;
    let photo = BlobHash::of(b"photo");
    f.accounts.grant_blob(family, photo, 5, UPLOADER)?;
    assert!(f.accounts.blob_granted(kid, photo)?);

    f.accounts.remove_member(family, kid)?;
    assert_eq!(f.accounts.membership(family, kid)?, None);
    assert!(f.accounts.families_of(kid)?.is_empty());
    assert!(!f.accounts.blob_granted(kid, photo)?);
    assert_eq!(f.accounts.members(family)?.len(), 1);
    assert!(matches!(
        f.accounts.remove_member(family, kid),
        Err(StoreError::NotFound("member"))
    ));
    // They can be invited again.
    f.accounts
        .create_invite(&new_invite(2, family, host, kid, 20))?;
    Ok(())
}

pub(crate) fn the_host_cannot_be_removed(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    assert!(matches!(
        f.accounts.remove_member(family, host),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        f.accounts.membership(family, host)?.map(|m| m.role),
        Some(Role::Host)
    );
    Ok(())
}

pub(crate) fn delete_family_removes_members_invites_and_grants(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let kid = register(f, 2)?;
    let guest = register(f, 3)?;
    join(f, 1, family, host, kid, 10)?;
    let pending = new_invite(2, family, host, guest, 20);
    f.accounts.create_invite(&pending)?;
    let photo = BlobHash::of(b"photo");
    f.accounts.grant_blob(family, photo, 5, UPLOADER)?;
    let other = family_with_host(f, 2, 4)?;
    f.accounts.grant_blob(other, photo, 5, UPLOADER)?;

    f.accounts.delete_family(family, 500)?;
    // Its blobs are released: held until their grace is over, then nothing.
    assert!(f.accounts.blob_referenced(photo)?);
    f.accounts.expire_blob_releases(501)?;
    assert_eq!(f.accounts.family(family)?, None);
    assert!(f.accounts.members(family)?.is_empty());
    assert!(f.accounts.families_of(host)?.is_empty());
    assert!(f.accounts.families_of(kid)?.is_empty());
    assert_eq!(f.accounts.doc_owner(DocId::from(family))?, None);
    assert_eq!(f.accounts.invite(pending.id, 21)?, None);
    assert!(f.accounts.invites_for(guest, 21)?.is_empty());
    assert!(f.accounts.invites_of_family(family, 21)?.is_empty());
    assert!(!f.accounts.blob_granted(kid, photo)?);
    assert_eq!(f.accounts.family_blob_bytes(family)?, 0);
    assert!(matches!(
        f.accounts.answer_invite(pending.id, true, 21, usize::MAX),
        Err(StoreError::NotFound("invite"))
    ));
    assert!(matches!(
        f.accounts.grant_blob(family, photo, 5, UPLOADER),
        Err(StoreError::NotFound("family"))
    ));
    assert!(matches!(
        f.accounts.delete_family(family, 500),
        Err(StoreError::NotFound("family"))
    ));
    // The other family is untouched; the users remain.
    assert_eq!(f.accounts.family_blob_bytes(other)?, 5);
    assert!(f.accounts.family(other)?.is_some());
    assert!(f.accounts.user(kid)?.is_some());
    assert!(matches!(
        f.accounts.delete_family(family_id(9), 500),
        Err(StoreError::NotFound("family"))
    ));
    Ok(())
}

pub(crate) fn blob_grants_follow_membership(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let kid = register(f, 2)?;
    let photo = BlobHash::of(b"photo");
    let voice = BlobHash::of(b"voice");
    assert!(!f.accounts.blob_granted(host, photo)?);
    f.accounts.grant_blob(family, photo, 1_000, UPLOADER)?;
    f.accounts.grant_blob(family, voice, 234, UPLOADER)?;
    f.accounts.grant_blob(family, photo, 999_999, UPLOADER)?; // idempotent, first size kept
    assert!(f.accounts.blob_granted(host, photo)?);
    assert!(!f.accounts.blob_granted(kid, photo)?, "not a member yet");
    assert_eq!(f.accounts.family_blob_bytes(family)?, 1_234);

    join(f, 1, family, host, kid, 10)?;
    assert!(f.accounts.blob_granted(kid, photo)?);
    assert!(!f.accounts.blob_granted(kid, BlobHash::of(b"other"))?);
    // A grant to another family of theirs counts too, and only once per family.
    let other = family_with_host(f, 2, 3)?;
    f.accounts.grant_blob(other, photo, 1_000, UPLOADER)?;
    assert_eq!(f.accounts.family_blob_bytes(family)?, 1_234);
    assert_eq!(f.accounts.family_blob_bytes(other)?, 1_000);
    assert!(!f.accounts.blob_granted(new_user(3).0.id, voice)?);
    assert!(matches!(
        f.accounts.grant_blob(family_id(9), photo, 1, UPLOADER),
        Err(StoreError::NotFound("family"))
    ));
    Ok(())
}

/// A download's one read says what its two did: the device as `device` reads it, and
/// its user's grant as `blob_granted` says it — for a revoked device too (the caller
/// decides what that device hears).
pub(crate) fn a_devices_record_comes_with_its_users_grant(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let host_device = new_device(1, 0).id;
    let kid = register(f, 2)?;
    let kid_device = new_device(2, 0).id;
    let photo = BlobHash::of(b"photo");
    f.accounts.grant_blob(family, photo, 1_000, UPLOADER)?;
    join(f, 1, family, host, kid, 10)?;
    let stranger = register(f, 3)?;
    let stranger_device = new_device(3, 0).id;

    for (device, user) in [
        (host_device, host),
        (kid_device, kid),
        (stranger_device, stranger),
    ] {
        for blob in [photo, BlobHash::of(b"not granted")] {
            let (record, granted) = f
                .accounts
                .device_and_blob_grant(device, blob)?
                .ok_or("the device is there")?;
            assert_eq!(Some(&record), f.accounts.device(device)?.as_ref());
            assert_eq!(record.user, user);
            assert_eq!(granted, f.accounts.blob_granted(user, blob)?);
        }
    }
    assert!(
        f.accounts
            .device_and_blob_grant(kid_device, photo)?
            .ok_or("kid")?
            .1
    );
    assert!(
        !f.accounts
            .device_and_blob_grant(stranger_device, photo)?
            .ok_or("stranger")?
            .1
    );
    assert_eq!(
        f.accounts
            .device_and_blob_grant(new_device(9, 0).id, photo)?,
        None,
        "no such device"
    );

    f.accounts.revoke_device(kid, kid_device, kid_device, 50)?;
    let (record, granted) = f
        .accounts
        .device_and_blob_grant(kid_device, photo)?
        .ok_or("a revoked device is still there")?;
    assert_eq!(record.revoked_at, Some(50));
    assert!(granted);
    Ok(())
}

pub(crate) fn personal_blobs_are_read_by_everyone_sharing_a_family(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let mom = new_user(1).0.id;
    let kid = register(f, 2)?;
    let stranger = register(f, 3)?;
    let avatar = BlobHash::of(b"kid's face");
    let snapshot = BlobHash::of(b"kid's personal snapshot");

    // A grant to a user: the user reads it, whatever their families.
    assert!(!f.accounts.blob_granted(kid, avatar)?);
    f.accounts.grant_blob_to_user(kid, avatar, 700)?;
    f.accounts.grant_blob_to_user(kid, snapshot, 50)?;
    f.accounts.grant_blob_to_user(kid, avatar, 999_999)?; // idempotent, first size kept
    assert!(f.accounts.blob_granted(kid, avatar)?);
    assert_eq!(f.accounts.user_blob_bytes(kid)?, 750);
    assert_eq!(f.accounts.user_blob_bytes(mom)?, 0);
    assert!(
        !f.accounts.blob_granted(mom, avatar)?,
        "no family shared yet"
    );
    assert!(!f.accounts.blob_granted(stranger, avatar)?);
    // Personal grants do not count against any family's quota.
    assert_eq!(f.accounts.family_blob_bytes(family)?, 0);

    // Joining a family later opens the blobs granted before, both ways.
    let mom_avatar = BlobHash::of(b"mom's face");
    f.accounts.grant_blob_to_user(mom, mom_avatar, 10)?;
    assert!(!f.accounts.blob_granted(kid, mom_avatar)?);
    join(f, 1, family, mom, kid, 10)?;
    assert!(f.accounts.blob_granted(mom, avatar)?);
    assert!(f.accounts.blob_granted(mom, snapshot)?);
    assert!(f.accounts.blob_granted(kid, mom_avatar)?);
    assert!(
        !f.accounts.blob_granted(stranger, avatar)?,
        "not a co-member"
    );
    assert!(!f.accounts.blob_granted(stranger, mom_avatar)?);
    assert!(!f.accounts.blob_granted(mom, BlobHash::of(b"other"))?);

    // The stranger shares another family with the kid only: the kid's blobs open to
    // them, mom's do not (sharing a family with someone who shares one with mom is
    // not enough).
    let other = family_with_host(f, 2, 4)?;
    let aunt = new_user(4).0.id;
    join(f, 2, other, aunt, kid, 20)?;
    join(f, 3, other, aunt, stranger, 30)?;
    assert!(f.accounts.blob_granted(stranger, avatar)?);
    assert!(!f.accounts.blob_granted(stranger, mom_avatar)?);

    // Leaving ends it; a deleted family shares nothing.
    f.accounts.remove_member(other, stranger)?;
    assert!(!f.accounts.blob_granted(stranger, avatar)?);
    f.accounts.delete_family(family, 500)?;
    assert!(!f.accounts.blob_granted(mom, avatar)?);
    assert!(!f.accounts.blob_granted(kid, mom_avatar)?);
    // The owners keep their own blobs, and their bytes.
    assert!(f.accounts.blob_granted(kid, avatar)?);
    assert!(f.accounts.blob_granted(mom, mom_avatar)?);
    assert_eq!(f.accounts.user_blob_bytes(kid)?, 750);

    assert!(matches!(
        f.accounts.grant_blob_to_user(new_user(9).0.id, avatar, 1),
        Err(StoreError::NotFound("user"))
    ));
    assert_eq!(f.accounts.user_blob_bytes(new_user(9).0.id)?, 0);
    Ok(())
}

pub(crate) fn family_and_personal_grants_are_independent(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let mom = new_user(1).0.id;
    let outsider = register(f, 2)?;
    let photo = BlobHash::of(b"photo");
    // The same bytes, granted to the family and to a user, count once in each.
    f.accounts.grant_blob(family, photo, 100, UPLOADER)?;
    f.accounts.grant_blob_to_user(outsider, photo, 100)?;
    assert_eq!(f.accounts.family_blob_bytes(family)?, 100);
    assert_eq!(f.accounts.user_blob_bytes(outsider)?, 100);
    assert_eq!(f.accounts.user_blob_bytes(mom)?, 0);
    assert!(f.accounts.blob_granted(mom, photo)?);
    assert!(f.accounts.blob_granted(outsider, photo)?);
    // Exactly whose grant it is.
    assert!(
        f.accounts
            .has_blob_grant(BlobGrantee::Family(family), photo)?
    );
    assert!(
        f.accounts
            .has_blob_grant(BlobGrantee::User(outsider), photo)?
    );
    assert!(!f.accounts.has_blob_grant(BlobGrantee::User(mom), photo)?);
    assert!(
        !f.accounts
            .has_blob_grant(BlobGrantee::Family(family_id(9)), photo)?
    );
    let other = BlobHash::of(b"other");
    assert!(
        !f.accounts
            .has_blob_grant(BlobGrantee::Family(family), other)?
    );
    assert!(
        !f.accounts
            .has_blob_grant(BlobGrantee::User(outsider), other)?
    );
    // Deleting the family leaves the user's grant.
    f.accounts.delete_family(family, 500)?;
    f.accounts.expire_blob_releases(501)?;
    assert!(
        !f.accounts
            .has_blob_grant(BlobGrantee::Family(family), photo)?
    );
    assert!(!f.accounts.blob_granted(mom, photo)?);
    assert!(f.accounts.blob_granted(outsider, photo)?);
    Ok(())
}

pub(crate) fn a_replaced_snapshot_is_released_and_counted_in_its_grace(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let mom = new_user(1).0.id;
    let to = BlobGrantee::Family(family);
    let doc = DocId::from(family);
    let (old, new) = (BlobHash::of(b"old snapshot"), BlobHash::of(b"new snapshot"));
    // Mom uploads the first snapshot's bytes, and it becomes the snapshot: the
    // reference takes her upload grant over (the bytes count once).
    f.accounts.grant_blob(family, old, 300, mom)?;
    f.accounts.add_snapshot_ref(doc, to, old, 300)?;
    f.accounts.settle_snapshot(doc, to, old, mom, 10)?;
    assert_eq!(f.accounts.family_blob_bytes(family)?, 300);
    assert!(
        f.accounts.blob_granted(mom, old)?,
        "readable as the snapshot"
    );
    // A newer snapshot replaces it: the old one is released, still counted and kept
    // until its grace is over, but no longer readable.
    f.accounts.grant_blob(family, new, 400, mom)?;
    f.accounts.add_snapshot_ref(doc, to, new, 400)?;
    assert_eq!(f.accounts.family_blob_bytes(family)?, 700);
    f.accounts.settle_snapshot(doc, to, new, mom, 20)?;
    assert_eq!(
        f.accounts.family_blob_bytes(family)?,
        700,
        "released, in its grace"
    );
    assert!(!f.accounts.blob_granted(mom, old)?);
    assert!(
        f.accounts.has_blob_grant(to, old)?,
        "a re-upload needs no room"
    );
    assert!(f.accounts.blob_referenced(old)?);
    assert_eq!(
        f.accounts.expire_blob_releases(20)?,
        0,
        "not before its time"
    );
    assert_eq!(f.accounts.expire_blob_releases(21)?, 1);
    assert_eq!(f.accounts.family_blob_bytes(family)?, 400);
    assert!(
        !f.accounts.blob_referenced(old)?,
        "nothing holds it: it may go"
    );
    assert!(f.accounts.blob_referenced(new)?);
    assert!(matches!(
        f.accounts.settle_snapshot(doc, to, old, mom, 30),
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

pub(crate) fn a_snapshot_never_takes_over_someone_elses_upload(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let (host, member) = (new_user(1).0.id, register(f, 2)?);
    join(f, 1, family, host, member, 20)?;
    let to = BlobGrantee::Family(family);
    let doc = DocId::from(family);
    // The host's photo, used by a member as the family's "snapshot", then replaced.
    let photo = BlobHash::of(b"the host's photo");
    f.accounts.grant_blob(family, photo, 500, host)?;
    f.accounts.add_snapshot_ref(doc, to, photo, 500)?;
    f.accounts.settle_snapshot(doc, to, photo, member, 30)?;
    let real = BlobHash::of(b"a real snapshot");
    f.accounts.grant_blob(family, real, 100, member)?;
    f.accounts.add_snapshot_ref(doc, to, real, 100)?;
    f.accounts.settle_snapshot(doc, to, real, member, 40)?;
    f.accounts.expire_blob_releases(u64::MAX / 4)?;
    // The photo keeps its upload grant: readable, counted, referenced.
    assert!(f.accounts.blob_granted(member, photo)?);
    assert!(f.accounts.blob_referenced(photo)?);
    assert_eq!(f.accounts.family_blob_bytes(family)?, 600);
    // Bytes uploaded by two members are no one's alone either.
    let shared = BlobHash::of(b"uploaded twice");
    f.accounts.grant_blob(family, shared, 10, member)?;
    f.accounts.grant_blob(family, shared, 10, host)?;
    f.accounts.add_snapshot_ref(doc, to, shared, 10)?;
    f.accounts.settle_snapshot(doc, to, shared, member, 50)?;
    f.accounts.add_snapshot_ref(doc, to, real, 100)?;
    f.accounts.settle_snapshot(doc, to, real, member, 60)?;
    f.accounts.expire_blob_releases(u64::MAX / 4)?;
    assert!(f.accounts.blob_referenced(shared)?);
    assert!(f.accounts.blob_granted(host, shared)?);
    Ok(())
}

pub(crate) fn a_refused_snapshot_reference_is_dropped(f: &Fixture) -> TestResult {
    let mom = register(f, 1)?;
    let doc = personal_doc(1);
    let to = BlobGrantee::User(mom);
    let blob = BlobHash::of(b"stale personal snapshot");
    f.accounts.grant_blob_to_user(mom, blob, 70)?;
    f.accounts.add_snapshot_ref(doc, to, blob, 70)?;
    f.accounts.add_snapshot_ref(doc, to, blob, 70)?; // idempotent
    assert_eq!(f.accounts.user_blob_bytes(mom)?, 70);
    assert!(f.accounts.drop_snapshot_ref(doc, blob, 5)?);
    assert!(!f.accounts.drop_snapshot_ref(doc, blob, 6)?, "already gone");
    // Her upload grant was never touched.
    f.accounts.expire_blob_releases(u64::MAX / 4)?;
    assert!(f.accounts.blob_granted(mom, blob)?);
    assert_eq!(f.accounts.user_blob_bytes(mom)?, 70);
    assert!(matches!(
        f.accounts
            .add_snapshot_ref(doc, BlobGrantee::User(UserId([9; 16])), blob, 1),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.accounts.add_snapshot_ref(
            DocId::from(family_id(9)),
            BlobGrantee::Family(family_id(9)),
            blob,
            1
        ),
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

pub(crate) fn a_deleted_familys_blobs_are_released(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let other = family_with_host(f, 2, 2)?;
    let host = new_user(1).0.id;
    let (photo, snap) = (BlobHash::of(b"photo"), BlobHash::of(b"snapshot"));
    let shared = BlobHash::of(b"in two families");
    f.accounts.grant_blob(family, photo, 10, host)?;
    f.accounts.grant_blob(family, shared, 30, host)?;
    f.accounts.grant_blob(other, shared, 30, new_user(2).0.id)?;
    let to = BlobGrantee::Family(family);
    f.accounts
        .add_snapshot_ref(DocId::from(family), to, snap, 20)?;
    f.accounts.delete_family(family, 100)?;
    for blob in [photo, snap, shared] {
        assert!(f.accounts.blob_referenced(blob)?, "in its grace");
    }
    f.accounts.expire_blob_releases(101)?;
    assert!(!f.accounts.blob_referenced(photo)?);
    assert!(!f.accounts.blob_referenced(snap)?);
    assert!(
        f.accounts.blob_referenced(shared)?,
        "the other family still has it"
    );
    Ok(())
}

pub(crate) fn families_per_user_are_capped(f: &Fixture) -> TestResult {
    let host = register(f, 1)?;
    let guest = register(f, 2)?;
    for n in 1..=2 {
        f.accounts.create_family(family_id(n), host, 10, 2)?;
    }
    assert!(matches!(
        f.accounts.create_family(family_id(3), host, 10, 2),
        Err(StoreError::TooManyFamilies)
    ));
    assert!(f.accounts.family(family_id(3))?.is_none());
    // Joining counts too.
    f.accounts.create_family(family_id(4), guest, 10, 2)?;
    let invite = new_invite(1, family_id(4), guest, host, 20);
    f.accounts.create_invite(&invite)?;
    assert!(matches!(
        f.accounts.answer_invite(invite.id, true, 21, 2),
        Err(StoreError::TooManyFamilies)
    ));
    assert!(f.accounts.membership(family_id(4), host)?.is_none());
    // A deleted family makes room.
    f.accounts.delete_family(family_id(1), 30)?;
    f.accounts.answer_invite(invite.id, true, 31, 2)?;
    assert!(f.accounts.membership(family_id(4), host)?.is_some());
    Ok(())
}

/// Accepts racing for a user's last free family (several relays, or one relay's
/// blocking threads): exactly one is taken, the others are refused and add nothing,
/// and the invites they answered stay open.
pub(crate) fn racing_accepts_respect_the_family_cap(f: &Fixture) -> TestResult {
    const RACERS: u8 = 6;
    let guest = register(f, 1)?;
    let mut invites = Vec::new();
    for n in 1..=RACERS {
        let host = register(f, 10 + n)?;
        f.accounts
            .create_family(family_id(n), host, 10, usize::MAX)?;
        let invite = new_invite(n, family_id(n), host, guest, 20);
        f.accounts.create_invite(&invite)?;
        invites.push(invite.id);
    }
    let handles: Vec<_> = invites
        .iter()
        .map(|&id| {
            let accounts = std::sync::Arc::clone(&f.accounts);
            std::thread::spawn(move || (id, accounts.answer_invite(id, true, 21, 1)))
        })
        .collect();
    let mut accepted = 0;
    for handle in handles {
        let (id, result) = handle.join().map_err(|_| "a racer panicked")?;
        match result {
            Ok(_) => accepted += 1,
            Err(StoreError::TooManyFamilies) => {
                let open = f.accounts.invite(id, 21)?.ok_or("the invite")?;
                assert_eq!(open.state, InviteState::Pending, "{id:?} stays open");
            }
            Err(e) => return Err(format!("accept {id:?}: {e}").into()),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(f.accounts.families_of(guest)?.len(), 1);
    Ok(())
}

pub(crate) fn a_pending_snapshot_adopts_only_its_pushers_upload(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let (host, member) = (new_user(1).0.id, register(f, 2)?);
    join(f, 1, family, host, member, 20)?;
    let to = BlobGrantee::Family(family);
    let doc = DocId::from(family);
    // The confirmed snapshot stays referenced while a pending one adopts an upload.
    let confirmed = BlobHash::of(b"the confirmed snapshot");
    f.accounts.grant_blob(family, confirmed, 50, host)?;
    f.accounts.add_snapshot_ref(doc, to, confirmed, 50)?;
    f.accounts.settle_snapshot(doc, to, confirmed, host, 10)?;
    // The member's own upload of a pending snapshot's bytes goes with its reference.
    let pending = BlobHash::of(b"the member's pending snapshot");
    f.accounts.grant_blob(family, pending, 100, member)?;
    f.accounts.add_snapshot_ref(doc, to, pending, 100)?;
    f.accounts.adopt_snapshot_upload(doc, to, pending, member)?;
    assert_eq!(f.accounts.family_blob_bytes(family)?, 150);
    assert!(f.accounts.drop_snapshot_ref(doc, pending, 30)?);
    f.accounts.expire_blob_releases(u64::MAX / 4)?;
    assert!(!f.accounts.blob_referenced(pending)?, "expired: it may go");
    assert!(f.accounts.blob_referenced(confirmed)?);
    assert!(f.accounts.blob_granted(member, confirmed)?);
    assert_eq!(f.accounts.family_blob_bytes(family)?, 50);
    // The host's photo pushed by the member as a "snapshot" keeps its upload grant.
    let photo = BlobHash::of(b"the host's photo");
    f.accounts.grant_blob(family, photo, 500, host)?;
    f.accounts.add_snapshot_ref(doc, to, photo, 500)?;
    f.accounts.adopt_snapshot_upload(doc, to, photo, member)?;
    assert!(f.accounts.drop_snapshot_ref(doc, photo, 40)?);
    f.accounts.expire_blob_releases(u64::MAX / 4)?;
    assert!(f.accounts.blob_granted(host, photo)?);
    assert!(f.accounts.blob_referenced(photo)?);
    // No reference, no adoption.
    assert!(matches!(
        f.accounts.adopt_snapshot_upload(doc, to, pending, member),
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

/// An upload of `blob` (`size` bytes) to `to` by user `n`'s first device.
fn upload(to: BlobGrantee, n: u8, blob: &[u8], size: u64, quota: u64) -> UploadGrant {
    UploadGrant {
        to,
        blob: BlobHash::of(blob),
        size,
        by: new_user(n).0.id,
        device: new_user(n).1.id,
        quota,
    }
}

pub(crate) fn an_upload_is_granted_only_if_still_allowed(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let kid = register(f, 2)?;
    let to = BlobGrantee::Family(family);

    // Not (yet) a member: refused, nothing granted.
    let photo = upload(to, 2, b"photo", 100, 1_000);
    assert_eq!(f.accounts.grant_upload(&photo)?, UploadVerdict::NotMember);
    assert!(!f.accounts.has_blob_grant(to, photo.blob)?);
    join(f, 1, family, host, kid, 10)?;
    assert_eq!(f.accounts.grant_upload(&photo)?, UploadVerdict::Granted);
    assert!(f.accounts.blob_granted(host, photo.blob)?);
    assert_eq!(f.accounts.family_blob_bytes(family)?, 100);

    // Removed from the family: the next upload is refused.
    f.accounts.remove_member(family, kid)?;
    let voice = upload(to, 2, b"voice", 10, 1_000);
    assert_eq!(f.accounts.grant_upload(&voice)?, UploadVerdict::NotMember);
    assert!(!f.accounts.has_blob_grant(to, voice.blob)?);

    // A revoked device: refused, for a family and for a personal blob.
    let phone = new_device(1, 1);
    f.accounts.add_device(host, &phone)?;
    f.accounts
        .revoke_device(host, phone.id, new_user(1).1.id, 20)?;
    let from_phone = UploadGrant {
        device: phone.id,
        ..upload(to, 1, b"from the phone", 10, 1_000)
    };
    assert_eq!(
        f.accounts.grant_upload(&from_phone)?,
        UploadVerdict::DeviceRevoked
    );
    let avatar = UploadGrant {
        to: BlobGrantee::User(host),
        ..from_phone
    };
    assert_eq!(
        f.accounts.grant_upload(&avatar)?,
        UploadVerdict::DeviceRevoked
    );
    assert_eq!(f.accounts.user_blob_bytes(host)?, 0);

    // Someone else's device is not the uploader's.
    let borrowed = UploadGrant {
        device: new_user(2).1.id,
        ..upload(to, 1, b"borrowed", 10, 1_000)
    };
    assert!(matches!(
        f.accounts.grant_upload(&borrowed),
        Err(StoreError::NotFound("device"))
    ));
    // A personal blob is only ever the uploader's own.
    let theirs = upload(BlobGrantee::User(kid), 1, b"theirs", 10, 1_000);
    assert_eq!(f.accounts.grant_upload(&theirs)?, UploadVerdict::NotMember);

    // A deleted family has no members.
    f.accounts.delete_family(family, 30)?;
    let late = upload(to, 1, b"late", 10, 1_000);
    assert_eq!(f.accounts.grant_upload(&late)?, UploadVerdict::NotMember);
    Ok(())
}

pub(crate) fn an_upload_must_fit_the_quota_when_granted(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let to = BlobGrantee::Family(family);
    // 600 of 1 000 bytes are granted meanwhile; a 500-byte blob no longer fits.
    assert_eq!(
        f.accounts
            .grant_upload(&upload(to, 1, b"first", 600, 1_000))?,
        UploadVerdict::Granted
    );
    let second = upload(to, 1, b"second", 500, 1_000);
    assert_eq!(
        f.accounts.grant_upload(&second)?,
        UploadVerdict::QuotaExceeded
    );
    assert!(!f.accounts.has_blob_grant(to, second.blob)?);
    assert_eq!(f.accounts.family_blob_bytes(family)?, 600);
    // Exactly full is fine, and a blob already counted needs no room (a retry).
    assert_eq!(
        f.accounts
            .grant_upload(&upload(to, 1, b"third", 400, 1_000))?,
        UploadVerdict::Granted
    );
    assert_eq!(
        f.accounts
            .grant_upload(&upload(to, 1, b"first", 600, 1_000))?,
        UploadVerdict::Granted
    );
    assert_eq!(f.accounts.family_blob_bytes(family)?, 1_000);

    // A personal quota the same way.
    let me = BlobGrantee::User(host);
    assert_eq!(
        f.accounts
            .grant_upload(&upload(me, 1, b"avatar", 70, 100))?,
        UploadVerdict::Granted
    );
    assert_eq!(
        f.accounts
            .grant_upload(&upload(me, 1, b"new avatar", 70, 100))?,
        UploadVerdict::QuotaExceeded
    );
    assert_eq!(f.accounts.user_blob_bytes(host)?, 70);
    Ok(())
}

pub(crate) fn racing_uploads_share_the_quota(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let to = BlobGrantee::Family(family);
    // Eight uploads of 300 bytes at once, room for three.
    let verdicts = std::thread::scope(|scope| {
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let accounts = &f.accounts;
                scope.spawn(move || accounts.grant_upload(&upload(to, 1, &[i], 300, 1_000)))
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| t.join().map_err(|_| "an upload thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut granted = 0;
    for verdict in verdicts {
        match verdict? {
            UploadVerdict::Granted => granted += 1,
            UploadVerdict::QuotaExceeded => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted, 3);
    assert_eq!(f.accounts.family_blob_bytes(family)?, 900);
    Ok(())
}

/// A download's check asked again, with each kind of change between the asks: every
/// answer is what was written before it (a store may keep answers; none may outlive
/// a change — above all not a grant or a device that is gone).
pub(crate) fn a_downloads_check_follows_every_change(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let kid = register(f, 2)?;
    let kid_device = new_device(2, 0).id;
    let [photo, avatar] = [BlobHash::of(b"photo"), BlobHash::of(b"avatar")];
    let check = |device, blob| -> Result<(Option<u64>, bool), Box<dyn std::error::Error>> {
        let (record, granted) = f
            .accounts
            .device_and_blob_grant(device, blob)?
            .ok_or("the device is there")?;
        Ok((record.revoked_at, granted))
    };
    assert_eq!(check(kid_device, photo)?, (None, false));
    assert_eq!(check(kid_device, photo)?, (None, false));
    join(f, 1, family, host, kid, 10)?;
    assert_eq!(
        check(kid_device, photo)?,
        (None, false),
        "nothing granted yet"
    );
    f.accounts.grant_blob(family, photo, 1_000, UPLOADER)?;
    assert_eq!(
        check(kid_device, photo)?,
        (None, true),
        "granted to the family"
    );
    // A personal blob of someone sharing a family.
    assert_eq!(check(kid_device, avatar)?, (None, false));
    f.accounts.grant_blob_to_user(host, avatar, 10)?;
    assert_eq!(check(kid_device, avatar)?, (None, true), "mom's avatar");
    // The family's document written meanwhile changes nothing here.
    let doc = DocId::from(family);
    f.logs.append_batch(&[super::new_chunk(doc, b"a change")])?;
    assert_eq!(check(kid_device, photo)?, (None, true));
    f.accounts.remove_member(family, kid)?;
    assert_eq!(check(kid_device, photo)?, (None, false), "left the family");
    assert_eq!(
        check(kid_device, avatar)?,
        (None, false),
        "no family shared"
    );
    join(f, 2, family, host, kid, 20)?;
    assert_eq!(check(kid_device, photo)?, (None, true));
    f.accounts.revoke_device(kid, kid_device, kid_device, 30)?;
    assert_eq!(
        check(kid_device, photo)?,
        (Some(30), true),
        "revoked, at once"
    );
    // A device added since is there at once; the family's deletion ends the grants.
    let tablet = new_device(2, 1);
    assert_eq!(f.accounts.device_and_blob_grant(tablet.id, photo)?, None);
    f.accounts.add_device(kid, &tablet)?;
    assert_eq!(check(tablet.id, photo)?, (None, true));
    f.accounts.delete_family(family, 40)?;
    assert_eq!(
        check(tablet.id, photo)?,
        (None, false),
        "the family is gone"
    );
    assert_eq!(check(tablet.id, avatar)?, (None, false));
    Ok(())
}
