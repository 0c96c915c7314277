//! Joining a family's group again from an escrowed GroupInfo (an external commit): a
//! device restored from the phrase writes again with nobody else's device online, and
//! every other device reaches the same verdict on its commit.

use std::collections::BTreeSet;

use doran_protocol::model::Certifier;

use super::*;

/// A user's new device certified by their user key, and what a device knows of the
/// user then: their key and certificates (which a Commit carries).
fn certified(user: UserId, user_key: &SigningKey, devices: &[&Device], known: &mut KnownDevices) {
    let certs: Vec<_> = devices
        .iter()
        .map(|d| {
            certify(
                user_key,
                Certifier::User,
                user,
                d.device,
                public_key(&d.key),
            )
        })
        .collect();
    known.insert_certified(user, &public_key(user_key), &certs, &BTreeSet::new());
}

/// The GroupInfo the escrow entry of `d`'s current epoch holds, as a restored device
/// takes it.
fn escrowed_info(
    d: &Device,
    restored: &mut Device,
    id: FamilyId,
    user_key: &SigningKey,
) -> (u64, Vec<u8>) {
    let (_, entry) = d.ring.escrow(id, user_key, None).expect("escrow");
    let taken = restored
        .ring
        .take_escrow(id, &entry, user_key)
        .expect("opens with the user key");
    taken.group_info.expect("a GroupInfo")
}

/// A device of `phone`'s user restored from the phrase (`user_key`), certified by it
/// in `known`, makes its external commit from the GroupInfo `phone` escrowed.
fn restored_rejoins(
    phone: &Device,
    mut known: KnownDevices,
    id: FamilyId,
    user_key: &SigningKey,
) -> (Device, KnownDevices, Commit) {
    let mut restored = device(phone.user);
    certified(phone.user, user_key, &[phone, &restored], &mut known);
    let (_, info) = escrowed_info(phone, &mut restored, id, user_key);
    let commit = restored
        .ring
        .rejoin(id, &info, &known)
        .expect("external commit");
    (restored, known, commit)
}

#[test]
fn a_device_restored_from_the_phrase_joins_again_by_itself_and_writes() {
    let mom = UserId::random();
    let user_key = SigningKey::from_bytes(&rand::random());
    let mut phone = device(mom);
    let id = FamilyId::random();
    let doc = DocId::from(id);
    phone.ring.create(id).expect("create");
    let before = phone.ring.seal(id, doc, b"a mission").expect("seal");

    // The phone is lost; the phrase restores the account on a new one.
    let mut restored = device(mom);
    let mut known = KnownDevices::new();
    certified(mom, &user_key, &[&phone, &restored], &mut known);
    let (epoch, info) = escrowed_info(&phone, &mut restored, id, &user_key);
    assert_eq!(epoch, 0);
    assert_eq!(
        restored
            .ring
            .open(id, doc, &before)
            .expect("history from the escrow"),
        b"a mission"
    );
    assert!(
        restored.ring.seal(id, doc, b"x").is_err(),
        "not in the group yet"
    );

    let commit = restored
        .ring
        .rejoin(id, &info, &known)
        .expect("external commit");
    assert_eq!(commit.epoch, 1);
    assert!(restored.ring.is_joining(id));
    assert_eq!(restored.ring.epoch(id), None, "not in until it comes back");
    assert_eq!(
        classify(&commit.entry).expect("entry"),
        LogEntry::Commit {
            family: id,
            epoch: 0,
            welcome: false
        }
    );
    // Saved and restored while it waits for the log (a crash in between).
    let saved = restored.ring.save().expect("save");
    restored.ring =
        KeyRing::restore(mom, restored.device, restored.key.clone(), &saved).expect("restore");
    assert!(restored.ring.is_joining(id));
    accepted(&mut restored, id, &commit, &known);
    assert!(!restored.ring.is_joining(id));
    let after = restored
        .ring
        .seal(id, doc, b"a new mission")
        .expect("writes");
    assert_eq!(
        restored.ring.open(id, doc, &before).expect("old"),
        b"a mission"
    );

    // Found again, the old phone reads the commit like any other: the new device is
    // vouched for by the certificates the commit carries.
    let only_phone = {
        let mut k = KnownDevices::new();
        certified(mom, &user_key, &[&phone], &mut k);
        k
    };
    assert_eq!(
        phone
            .ring
            .process(id, &commit.entry, &only_phone)
            .expect("the same verdict"),
        Processed::Advanced { epoch: 1 }
    );
    assert_eq!(
        phone.ring.open(id, doc, &after).expect("opens"),
        b"a new mission"
    );
}

#[test]
fn a_join_beaten_to_its_epoch_is_dropped_and_the_winner_can_let_the_device_in() {
    let Family {
        id,
        mut mom_phone,
        mut son,
        known,
        ..
    } = family();
    let user_key = SigningKey::from_bytes(&rand::random());
    let (mut restored, known, lost) = restored_rejoins(&mom_phone, known, id, &user_key);

    // The son's device commits first for that epoch, adding the restored device
    // the usual way.
    let package = restored.ring.key_packages(1).expect("package");
    let add = son.ring.add(id, &package, &known).expect("add");
    accepted(&mut son, id, &add, &known);
    assert_eq!(
        restored.ring.process(id, &add.entry, &known).expect("lost"),
        Processed::JoinLost
    );
    assert!(!restored.ring.is_joining(id));
    assert_eq!(restored.ring.epoch(id), None);
    assert_eq!(
        restored.ring.join(id, &add.entry, &known).expect("welcome"),
        2
    );
    // The lost one is stale for everyone.
    assert_eq!(
        mom_phone.ring.process(id, &add.entry, &known).expect("add"),
        Processed::Advanced { epoch: 2 }
    );
    assert_eq!(
        mom_phone
            .ring
            .process(id, &lost.entry, &known)
            .expect("stale"),
        Processed::Stale
    );
}

#[test]
fn an_external_commit_of_a_device_nobody_vouches_for_changes_nothing() {
    let Family {
        id,
        doc,
        mut mom_phone,
        mut son,
        known,
        ..
    } = family();
    let user_key = SigningKey::from_bytes(&rand::random());
    // A device claiming to be mom's, with no certificate from her key: it holds a
    // GroupInfo (as a relay that had one would), and the others refuse its commit.
    let mut intruder = device(mom_phone.user);
    let (_, info) = escrowed_info(&mom_phone, &mut intruder, id, &user_key);
    let mut its_own = known.clone();
    its_own.insert(intruder.user, intruder.device, public_key(&intruder.key));
    let commit = intruder.ring.rejoin(id, &info, &its_own).expect("made");
    assert!(matches!(
        son.ring.process(id, &commit.entry, &known),
        Err(GroupError::NotVouched { .. })
    ));
    // Nothing changed: mom's next Commit for that epoch goes through everywhere.
    let update = mom_phone.ring.update(id).expect("update");
    accepted(&mut mom_phone, id, &update, &known);
    assert_eq!(
        son.ring.process(id, &update.entry, &known).expect("update"),
        Processed::Advanced { epoch: 2 }
    );
    let sealed = mom_phone.ring.seal(id, doc, b"after").expect("seal");
    assert_eq!(son.ring.open(id, doc, &sealed).expect("opens"), b"after");
    // And a device that is not vouched for does not even make one.
    let mut other = device(UserId::random());
    assert!(other.ring.rejoin(id, &info, &known).is_err());
}

/// The relay (or anything but a device the joiner knows) cannot make a restored
/// device give up its external commit: an entry of that epoch nobody known signed —
/// a genuine Commit re-signed by a stranger, or stripped of its signature into the
/// old unsigned format — counts for nothing, and the device's own commit still takes
/// it in. A Commit a known device signed does make it give up.
#[test]
fn only_a_commit_a_known_device_signed_makes_a_join_give_up() {
    let Family {
        id,
        mut son,
        known,
        mom_phone,
        ..
    } = family();
    let user_key = SigningKey::from_bytes(&rand::random());
    let (mut restored, mut known, commit) = restored_rejoins(&mom_phone, known, id, &user_key);

    // A genuine Commit of that epoch (the son's, never appended), signed by a
    // stranger, and the same without any signature.
    let genuine = son.ring.update(id).expect("update");
    assert!(entry_signed_by_known(id, &genuine.entry, &known));
    let (body, _) = split_commit_entry(&genuine.entry).expect("entry");
    let stranger = device(UserId::random());
    let resigned = commit_entry(
        &EntrySigner {
            family: id,
            device: stranger.device,
            key: &stranger.key,
        },
        body,
        None,
    )
    .expect("entry");
    let (len_body, _) = entry_body(&genuine.entry).expect("body");
    let unsigned = [&COMMIT_MAGIC_V1[..], len_body].concat();
    for junk in [&resigned, &unsigned] {
        assert!(!entry_signed_by_known(id, junk, &known));
        assert_eq!(
            restored
                .ring
                .process(id, junk, &known)
                .expect("not counted"),
            Processed::Stale
        );
        assert!(restored.ring.is_joining(id));
    }
    accepted(&mut restored, id, &commit, &known);

    // Another attempt, beaten by a Commit a known device signed: given up.
    let mut again = device(mom_phone.user);
    certified(mom_phone.user, &user_key, &[&mom_phone, &again], &mut known);
    let (_, info) = escrowed_info(&mom_phone, &mut again, id, &user_key);
    again
        .ring
        .rejoin(id, &info, &known)
        .expect("external commit");
    assert_eq!(
        again
            .ring
            .process(id, &genuine.entry, &known)
            .expect("lost"),
        Processed::JoinLost
    );
    assert!(!again.ring.is_joining(id));
}
