//! A family's key group across devices, with the relay's part played by the test: it
//! carries Commits in one order, Welcomes and key packages — and, where a test says
//! so, lies.

use doran_protocol::{DeviceId, DocId, FamilyId, UserId};
use ed25519_dalek::SigningKey;

use super::*;
use crate::keys::public_key;

struct Device {
    user: UserId,
    device: DeviceId,
    key: SigningKey,
    ring: KeyRing,
}

fn device(user: UserId) -> Device {
    let key = SigningKey::from_bytes(&rand::random());
    let device = DeviceId::random();
    Device {
        user,
        device,
        key: key.clone(),
        ring: KeyRing::new(user, device, key),
    }
}

fn vouch(devices: &[&Device]) -> KnownDevices {
    let mut known = KnownDevices::new();
    for d in devices {
        known.insert(d.user, d.device, public_key(&d.key));
    }
    known
}

/// `d` as a member of a group.
fn member(d: &Device) -> GroupMember {
    GroupMember {
        user: d.user,
        device: d.device,
    }
}

/// `known` once `gone`'s user left the family (or was removed from it).
fn without(known: &KnownDevices, gone: &Device) -> KnownDevices {
    let mut left = known.clone();
    let members: Vec<UserId> = known
        .devices
        .keys()
        .map(|(u, _)| *u)
        .filter(|u| *u != gone.user)
        .collect();
    left.set_members(members);
    left
}

/// `known` once `gone` was revoked.
fn revoked(known: &KnownDevices, gone: &Device) -> KnownDevices {
    let mut left = known.clone();
    left.insert_revoked(gone.user, gone.device, public_key(&gone.key));
    left
}

/// The committer sees its own Commit come back first for its epoch in the log.
fn accepted(d: &mut Device, id: FamilyId, commit: &Commit, known: &KnownDevices) {
    assert_eq!(
        d.ring
            .process(id, &commit.entry, known)
            .expect("own commit"),
        Processed::Accepted {
            epoch: commit.epoch
        }
    );
}

/// A new device of `user`, and `known` vouching for it too.
fn newcomer(known: &KnownDevices, user: UserId) -> (Device, KnownDevices) {
    let d = device(user);
    let mut known = known.clone();
    known.insert(d.user, d.device, public_key(&d.key));
    (d, known)
}

struct Family {
    id: FamilyId,
    doc: DocId,
    mom_phone: Device,
    mom_laptop: Device,
    son: Device,
    known: KnownDevices,
}

/// Mom's phone starts the group, then adds her laptop and her son's phone; everybody
/// joins from the Welcome.
fn family() -> Family {
    let mom = UserId::random();
    let son_user = UserId::random();
    let mut mom_phone = device(mom);
    let mut mom_laptop = device(mom);
    let mut son = device(son_user);
    let known = vouch(&[&mom_phone, &mom_laptop, &son]);
    let id = FamilyId::random();
    assert_eq!(mom_phone.ring.create(id).expect("create"), 0);

    let mut packages = mom_laptop.ring.key_packages(1).expect("laptop package");
    packages.extend(son.ring.key_packages(1).expect("son package"));
    let commit = mom_phone.ring.add(id, &packages, &known).expect("add");
    assert_eq!(commit.epoch, 1);
    assert_eq!(
        mom_phone
            .ring
            .process(id, &commit.entry, &known)
            .expect("own commit"),
        Processed::Accepted { epoch: 1 }
    );
    // Without any key, anyone can tell the log's entries apart (the relay could).
    assert_eq!(
        classify(&commit.entry).expect("entry"),
        LogEntry::Commit {
            family: id,
            epoch: 0,
            welcome: true
        }
    );
    let welcome = commit.entry.clone();
    assert_eq!(
        mom_laptop
            .ring
            .join(id, &welcome, &known)
            .expect("laptop joins"),
        1
    );
    assert_eq!(son.ring.join(id, &welcome, &known).expect("son joins"), 1);
    Family {
        id,
        doc: DocId::from(id),
        mom_phone,
        mom_laptop,
        son,
        known,
    }
}

#[test]
fn every_member_device_opens_what_any_of_them_seals() {
    let f = family();
    let sealed = f
        .son
        .ring
        .seal(f.id, f.doc, "아들이 좋아요".as_bytes())
        .expect("seal");
    for d in [&f.mom_phone, &f.mom_laptop, &f.son] {
        assert_eq!(
            d.ring.open(f.id, f.doc, &sealed).expect("opens"),
            "아들이 좋아요".as_bytes()
        );
    }
    let members = f.mom_laptop.ring.members(f.id).expect("members");
    assert_eq!(members.len(), 3);
    assert!(
        members
            .iter()
            .any(|m| m.device == f.son.device && m.user == f.son.user)
    );
}

#[test]
fn the_sealed_chunk_holds_no_plaintext_and_is_bound_to_its_document_and_epoch() {
    let f = family();
    let text = "엄마 생일 저녁 7시".as_bytes();
    let sealed = f.mom_phone.ring.seal(f.id, f.doc, text).expect("seal");
    assert_eq!(sealed.len(), text.len() + OVERHEAD);
    assert!(!sealed.windows(6).any(|w| text.windows(6).any(|t| t == w)));
    assert_eq!(epoch_of(&sealed), Ok(1));
    // Two seals of the same bytes differ (random nonces).
    assert_ne!(
        sealed,
        f.mom_phone.ring.seal(f.id, f.doc, text).expect("seal")
    );

    // Moved to another document of the family: refused.
    let other = DocId::random();
    assert_eq!(
        f.son.ring.open(f.id, other, &sealed),
        Err(EnvelopeError::Refused)
    );
    // Any byte changed — header, nonce, ciphertext or tag: refused.
    for at in [5, 20, 40, sealed.len() - 1] {
        let mut changed = sealed.clone();
        changed[at] ^= 1;
        let got = f.son.ring.open(f.id, f.doc, &changed);
        assert!(
            matches!(
                got,
                Err(EnvelopeError::Refused | EnvelopeError::UnknownEpoch(_))
            ),
            "byte {at}: {got:?}"
        );
    }
    // Relabelled with an epoch the device holds (0 is mom's phone's first): refused.
    let mut relabelled = sealed.clone();
    relabelled[4..12].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(
        f.mom_phone.ring.open(f.id, f.doc, &relabelled),
        Err(EnvelopeError::Refused)
    );
    // Not a sealed chunk at all.
    assert_eq!(
        f.son.ring.open(f.id, f.doc, b"{\"ops\":[]}"),
        Err(EnvelopeError::Malformed)
    );
    let mut future = sealed;
    future[3] = 9;
    assert_eq!(
        f.son.ring.open(f.id, f.doc, &future),
        Err(EnvelopeError::UnknownVersion(9))
    );
}

#[test]
fn a_new_device_reads_from_the_epoch_it_joined_not_before() {
    let mom = UserId::random();
    let mut phone = device(mom);
    let mut laptop = device(mom);
    let known = vouch(&[&phone, &laptop]);
    let id = FamilyId::random();
    let doc = DocId::from(id);
    phone.ring.create(id).expect("create");
    let before = phone
        .ring
        .seal(id, doc, b"before the laptop")
        .expect("seal");
    let packages = laptop.ring.key_packages(1).expect("package");
    let commit = phone.ring.add(id, &packages, &known).expect("add");
    accepted(&mut phone, id, &commit, &known);
    laptop
        .ring
        .join(id, &commit.entry.clone(), &known)
        .expect("join");
    assert_eq!(
        laptop.ring.open(id, doc, &before),
        Err(EnvelopeError::UnknownEpoch(0))
    );
    let after = phone.ring.seal(id, doc, b"after").expect("seal");
    assert_eq!(laptop.ring.open(id, doc, &after).expect("opens"), b"after");
}

#[test]
fn a_removed_device_cannot_read_what_is_written_after_its_removal() {
    let mut f = family();
    let before = f.mom_phone.ring.seal(f.id, f.doc, b"before").expect("seal");

    // While the son is a member (his device vouched for), nobody else may remove it.
    assert!(matches!(
        f.mom_phone.ring.remove(f.id, &[member(&f.son)], &f.known),
        Err(GroupError::NotAllowed(_))
    ));
    // The son is removed from the family: no device vouches for his phone any more,
    // and mom's phone removes it; the relay carries the Commit to everyone.
    let left = without(&f.known, &f.son);
    let commit = f
        .mom_phone
        .ring
        .remove(f.id, &[member(&f.son)], &left)
        .expect("remove");
    assert_eq!(commit.epoch, 2);
    assert!(matches!(
        classify(&commit.entry),
        Ok(LogEntry::Commit { welcome: false, .. })
    ));
    accepted(&mut f.mom_phone, f.id, &commit, &left);
    assert_eq!(
        f.mom_laptop
            .ring
            .process(f.id, &commit.entry, &left)
            .expect("laptop"),
        Processed::Advanced { epoch: 2 }
    );
    assert_eq!(
        f.son.ring.process(f.id, &commit.entry, &left).expect("son"),
        Processed::Removed
    );
    assert_eq!(f.son.ring.epoch(f.id), None);

    // The raw chunk written after the removal: the son's device has no key for it.
    let after = f
        .mom_laptop
        .ring
        .seal(f.id, f.doc, "새 일정".as_bytes())
        .expect("seal");
    assert_eq!(
        f.son.ring.open(f.id, f.doc, &after),
        Err(EnvelopeError::UnknownEpoch(2))
    );
    assert_eq!(
        f.mom_phone.ring.open(f.id, f.doc, &after).expect("mom"),
        "새 일정".as_bytes()
    );
    // What it had before, it still opens (nothing takes back bytes already read).
    assert_eq!(
        f.son.ring.open(f.id, f.doc, &before).expect("before"),
        b"before"
    );
    // And it can seal nothing for the family any more.
    assert!(matches!(
        f.son.ring.seal(f.id, f.doc, b"x"),
        Err(GroupError::UnknownFamily(_))
    ));
    let members = f.mom_phone.ring.members(f.id).expect("members");
    assert!(members.iter().all(|m| m.device != f.son.device));
}

/// `committer` refreshes its leaf; the relay accepts it and carries it to the others.
fn rotate(committer: &mut Device, others: [&mut Device; 2], id: FamilyId, known: &KnownDevices) {
    let commit = committer.ring.update(id).expect("update");
    accepted(committer, id, &commit, known);
    for d in others {
        assert_eq!(
            d.ring.process(id, &commit.entry, known).expect("processed"),
            Processed::Advanced {
                epoch: commit.epoch
            }
        );
    }
}

#[test]
fn old_chunks_keep_opening_after_two_rotations() {
    let mut f = family();
    let first = f.son.ring.seal(f.id, f.doc, b"epoch one").expect("seal");
    rotate(
        &mut f.mom_laptop,
        [&mut f.mom_phone, &mut f.son],
        f.id,
        &f.known,
    );
    rotate(
        &mut f.son,
        [&mut f.mom_phone, &mut f.mom_laptop],
        f.id,
        &f.known,
    );
    let third = f
        .mom_phone
        .ring
        .seal(f.id, f.doc, b"epoch three")
        .expect("seal");
    assert_eq!(epoch_of(&third), Ok(3));
    for d in [&f.mom_phone, &f.mom_laptop, &f.son] {
        assert_eq!(
            d.ring.open(f.id, f.doc, &first).expect("first"),
            b"epoch one"
        );
        assert_eq!(
            d.ring.open(f.id, f.doc, &third).expect("third"),
            b"epoch three"
        );
    }
}

#[test]
fn forgotten_epochs_no_longer_open() {
    let mut f = family();
    let first = f.son.ring.seal(f.id, f.doc, b"old").expect("seal");
    let commit = f.mom_phone.ring.update(f.id).expect("update");
    accepted(&mut f.mom_phone, f.id, &commit, &f.known);
    f.son
        .ring
        .process(f.id, &commit.entry, &f.known)
        .expect("son");
    f.son.ring.forget_before(f.id, 2);
    assert_eq!(
        f.son.ring.open(f.id, f.doc, &first),
        Err(EnvelopeError::UnknownEpoch(1))
    );
    let new = f.mom_phone.ring.seal(f.id, f.doc, b"new").expect("seal");
    assert_eq!(f.son.ring.open(f.id, f.doc, &new).expect("new"), b"new");
}

#[test]
fn a_device_the_member_does_not_know_is_never_added() {
    let mut f = family();
    // The relay hands out a key package of its own, claiming to be a new device of the son.
    let mut rogue = device(f.son.user);
    let packages = rogue.ring.key_packages(1).expect("rogue package");
    assert_eq!(classify(&packages[0]).expect("entry"), LogEntry::KeyPackage);
    let got = f.mom_phone.ring.add(f.id, &packages, &f.known);
    assert!(matches!(got, Err(GroupError::NotVouched { .. })), "{got:?}");
    // ... or of the son's real device id, signed with its own key.
    let mut impostor = device(f.son.user);
    impostor.device = f.son.device;
    impostor.ring = KeyRing::new(impostor.user, impostor.device, impostor.key.clone());
    let packages = impostor.ring.key_packages(1).expect("impostor package");
    let got = f.mom_phone.ring.add(f.id, &packages, &f.known);
    assert!(matches!(got, Err(GroupError::NotVouched { .. })), "{got:?}");
    // Nothing changed: no pending commit, the same epoch.
    assert_eq!(f.mom_phone.ring.epoch(f.id), Some(1));
    assert!(f.mom_phone.ring.update(f.id).is_ok());
}

#[test]
fn a_commit_adding_an_unknown_device_is_refused_and_changes_nothing() {
    let mut f = family();
    // The mom's phone was told (by a lying relay, say) that a rogue device is one of
    // her son's; the other devices were not. It adds the rogue together with the
    // son's new tablet, which everybody knows.
    let mut rogue = device(f.son.user);
    let (mut tablet, known) = newcomer(&f.known, f.son.user);
    let mut fooled = known.clone();
    fooled.insert(rogue.user, rogue.device, public_key(&rogue.key));
    let mut packages = rogue.ring.key_packages(1).expect("package");
    packages.extend(tablet.ring.key_packages(1).expect("package"));
    let commit = f.mom_phone.ring.add(f.id, &packages, &fooled).expect("add");
    accepted(&mut f.mom_phone, f.id, &commit, &fooled);

    let got = f.mom_laptop.ring.process(f.id, &commit.entry, &known);
    assert!(matches!(got, Err(GroupError::NotVouched { .. })), "{got:?}");
    assert_eq!(f.mom_laptop.ring.epoch(f.id), Some(1));
    // The Welcome lists the rogue in the group: the tablet refuses to join it.
    let got = tablet.ring.join(f.id, &commit.entry.clone(), &known);
    assert!(matches!(got, Err(GroupError::NotVouched { .. })), "{got:?}");
    assert_eq!(tablet.ring.epoch(f.id), None);
}

#[test]
fn a_welcome_for_another_device_or_garbage_is_refused() {
    let mut f = family();
    let mut other = device(UserId::random());
    let (mut late, known) = newcomer(&f.known, f.mom_phone.user);
    let packages = late.ring.key_packages(1).expect("package");
    let commit = f.mom_phone.ring.add(f.id, &packages, &known).expect("add");
    let welcome = commit.entry;
    let got = other.ring.join(f.id, &welcome, &known);
    assert!(matches!(got, Err(GroupError::NotForThisDevice)), "{got:?}");
    assert!(matches!(
        other.ring.join(f.id, b"not a welcome", &known),
        Err(GroupError::Malformed(_))
    ));
    assert!(matches!(
        f.mom_laptop.ring.process(f.id, b"\x00\x01garbage", &known),
        Err(GroupError::Malformed(_))
    ));
    assert!(matches!(
        f.mom_laptop
            .ring
            .add(f.id, &[b"no package".to_vec()], &known),
        Err(GroupError::Malformed("key package"))
    ));
    // A key package handed in as a Commit is not one.
    assert!(matches!(
        f.mom_laptop.ring.process(f.id, &packages[0], &known),
        Err(GroupError::Malformed(_))
    ));
    // A Commit entry cut short.
    assert!(matches!(
        f.mom_laptop.ring.process(f.id, &welcome[..10], &known),
        Err(GroupError::Malformed(_))
    ));
    // A Commit of another family's group.
    let mut stranger = device(UserId::random());
    let fid = FamilyId::random();
    stranger.ring.create(fid).expect("create");
    let foreign = stranger.ring.update(fid).expect("update");
    assert!(matches!(
        f.mom_laptop.ring.process(f.id, &foreign.entry, &known),
        Err(GroupError::WrongGroup)
    ));
}

#[test]
fn two_devices_committing_at_once_settle_on_the_logs_order() {
    let mut f = family();
    let from_phone = f.mom_phone.ring.update(f.id).expect("phone update");
    let from_laptop = f.mom_laptop.ring.update(f.id).expect("laptop update");
    assert_eq!(from_phone.epoch, from_laptop.epoch);
    // One Commit at a time per device.
    assert!(matches!(
        f.mom_phone.ring.update(f.id),
        Err(GroupError::CommitPending)
    ));
    // The log holds the phone's first, then the laptop's. Every device reads it in
    // that order.
    let log = [&from_phone.entry, &from_laptop.entry];
    let mut seen = Vec::new();
    for d in [&mut f.mom_phone, &mut f.mom_laptop, &mut f.son] {
        let outcome: Vec<Processed> = log
            .iter()
            .map(|m| d.ring.process(f.id, m, &f.known).expect("processed"))
            .collect();
        seen.push(outcome);
    }
    assert_eq!(
        seen,
        [
            vec![Processed::Accepted { epoch: 2 }, Processed::Stale],
            vec![Processed::Superseded { epoch: 2 }, Processed::Stale],
            vec![Processed::Advanced { epoch: 2 }, Processed::Stale],
        ]
    );
    // The laptop makes its change again on top.
    let again = f.mom_laptop.ring.update(f.id).expect("again");
    assert_eq!(again.epoch, 3);
    accepted(&mut f.mom_laptop, f.id, &again, &f.known);
    for d in [&mut f.mom_phone, &mut f.son] {
        assert_eq!(
            d.ring
                .process(f.id, &again.entry, &f.known)
                .expect("processed"),
            Processed::Advanced { epoch: 3 }
        );
    }
    let sealed = f.son.ring.seal(f.id, f.doc, b"settled").expect("seal");
    assert_eq!(
        f.mom_phone.ring.open(f.id, f.doc, &sealed).expect("opens"),
        b"settled"
    );
    // A Commit the log has not reached yet (a gap) is not applied.
    let ahead = f.son.ring.update(f.id).expect("son update");
    let later = {
        let mut phone_copy = KeyRing::restore(
            f.mom_phone.user,
            f.mom_phone.device,
            f.mom_phone.key.clone(),
            &f.mom_phone.ring.save().expect("save"),
        )
        .expect("restore");
        phone_copy
            .process(f.id, &ahead.entry, &f.known)
            .expect("applied");
        phone_copy.update(f.id).expect("next")
    };
    let got = f.mom_laptop.ring.process(f.id, &later.entry, &f.known);
    assert!(
        matches!(got, Err(GroupError::FromTheFuture { at: 3, got: 4 })),
        "{got:?}"
    );
}

#[test]
fn a_restored_key_ring_opens_what_it_opened_and_follows_the_group() {
    let mut f = family();
    let old = f.mom_phone.ring.seal(f.id, f.doc, b"kept").expect("seal");
    let saved = f.mom_laptop.ring.save().expect("save");
    let mut laptop = KeyRing::restore(
        f.mom_laptop.user,
        f.mom_laptop.device,
        f.mom_laptop.key.clone(),
        &saved,
    )
    .expect("restore");
    assert_eq!(laptop.open(f.id, f.doc, &old).expect("old"), b"kept");
    let commit = f.mom_phone.ring.update(f.id).expect("update");
    accepted(&mut f.mom_phone, f.id, &commit, &f.known);
    assert_eq!(
        laptop
            .process(f.id, &commit.entry, &f.known)
            .expect("processed"),
        Processed::Advanced { epoch: 2 }
    );
    let new = laptop.seal(f.id, f.doc, b"after restart").expect("seal");
    assert_eq!(
        f.mom_phone.ring.open(f.id, f.doc, &new).expect("opens"),
        b"after restart"
    );
    // Unused key packages survive too: a device restored before its Welcome arrives
    // still joins.
    let mut late = device(f.son.user);
    let packages = late.ring.key_packages(1).expect("package");
    let late_saved = late.ring.save().expect("save");
    let mut known = f.known.clone();
    known.insert(late.user, late.device, public_key(&late.key));
    let commit = f.mom_phone.ring.add(f.id, &packages, &known).expect("add");
    accepted(&mut f.mom_phone, f.id, &commit, &f.known);
    let mut restored =
        KeyRing::restore(late.user, late.device, late.key.clone(), &late_saved).expect("restore");
    assert_eq!(
        restored
            .join(f.id, &commit.entry.clone(), &known)
            .expect("join"),
        3
    );
    assert!(matches!(
        KeyRing::restore(late.user, late.device, late.key.clone(), b"\x07junk"),
        Err(GroupError::Restore(_))
    ));
}

#[test]
fn a_foreign_message_while_a_commit_is_pending_leaves_it_pending() {
    let mut f = family();
    let mine = f.mom_laptop.ring.update(f.id).expect("update");
    // Someone (the relay, a member's modified client) appends a message that names
    // the family's group and epoch but is nobody's Commit in it: a group of the same
    // id made elsewhere, at the same epoch.
    let mut stranger = device(UserId::random());
    stranger.ring.create(f.id).expect("create");
    let first = stranger.ring.update(f.id).expect("update");
    accepted(&mut stranger, f.id, &first, &KnownDevices::new());
    let foreign = stranger.ring.update(f.id).expect("update");
    assert_eq!(
        classify(&foreign.entry).expect("entry"),
        classify(&mine.entry).expect("entry")
    );
    assert!(
        f.mom_laptop
            .ring
            .process(f.id, &foreign.entry, &f.known)
            .is_err()
    );
    // The laptop's own Commit, next in the log, still moves the group on.
    accepted(&mut f.mom_laptop, f.id, &mine, &f.known);
    for d in [&mut f.mom_phone, &mut f.son] {
        assert!(d.ring.process(f.id, &foreign.entry, &f.known).is_err());
        assert_eq!(
            d.ring
                .process(f.id, &mine.entry, &f.known)
                .expect("processed"),
            Processed::Advanced { epoch: 2 }
        );
    }
}

#[test]
fn a_refused_commit_or_welcome_can_be_taken_once_the_device_is_vouched_for() {
    let mut f = family();
    // The son's new tablet: mom's phone knows it already, the laptop not yet.
    let (mut tablet, with_tablet) = newcomer(&f.known, f.son.user);
    let packages = tablet.ring.key_packages(1).expect("package");
    let commit = f
        .mom_phone
        .ring
        .add(f.id, &packages, &with_tablet)
        .expect("add");
    accepted(&mut f.mom_phone, f.id, &commit, &with_tablet);
    let got = f.mom_laptop.ring.process(f.id, &commit.entry, &f.known);
    assert!(matches!(got, Err(GroupError::NotVouched { .. })), "{got:?}");
    // Its certificate arrives: the same Commit is taken.
    assert_eq!(
        f.mom_laptop
            .ring
            .process(f.id, &commit.entry, &with_tablet)
            .expect("taken now"),
        Processed::Advanced { epoch: 2 }
    );
    // The tablet, not knowing the laptop yet, refuses the Welcome — and keeps its
    // key package, so the same Welcome joins once it does.
    let welcome = commit.entry.clone();
    let mut partial = KnownDevices::new();
    for d in [&f.mom_phone, &f.son, &tablet] {
        partial.insert(d.user, d.device, public_key(&d.key));
    }
    let got = tablet.ring.join(f.id, &welcome, &partial);
    assert!(matches!(got, Err(GroupError::NotVouched { .. })), "{got:?}");
    assert_eq!(
        tablet
            .ring
            .join(f.id, &welcome, &with_tablet)
            .expect("joins"),
        2
    );
}

#[test]
fn a_welcome_for_another_family_is_refused_and_spends_nothing() {
    let mut f = family();
    let (mut late, known) = newcomer(&f.known, f.son.user);
    let packages = late.ring.key_packages(1).expect("package");
    let commit = f.mom_phone.ring.add(f.id, &packages, &known).expect("add");
    let welcome = commit.entry;
    // Found in another family's key log (a member posting it there): not joined as
    // that family.
    let elsewhere = FamilyId::random();
    let got = late.ring.join(elsewhere, &welcome, &known);
    assert!(matches!(got, Err(GroupError::WrongGroup)), "{got:?}");
    assert_eq!(late.ring.epoch(elsewhere), None);
    assert_eq!(late.ring.join(f.id, &welcome, &known).expect("joins"), 2);
}

#[test]
fn a_revoked_device_keeps_its_past_but_adds_nobody_and_anyone_may_remove_it() {
    let mut f = family();
    // The laptop refreshes its leaf; a week later, when the son's phone reads the
    // Commit, the laptop has been revoked. Made while it was in good standing, the
    // Commit means the same to everyone: taken.
    let from_laptop = f.mom_laptop.ring.update(f.id).expect("update");
    accepted(&mut f.mom_laptop, f.id, &from_laptop, &f.known);
    let later = revoked(&f.known, &f.mom_laptop);
    assert_eq!(
        f.son
            .ring
            .process(f.id, &from_laptop.entry, &later)
            .expect("taken"),
        Processed::Advanced { epoch: 2 }
    );
    f.mom_phone
        .ring
        .process(f.id, &from_laptop.entry, &later)
        .expect("taken");
    // The stolen laptop adds a device of its own: refused by everyone.
    let (mut rogue, with_rogue) = newcomer(&f.known, f.mom_laptop.user);
    let packages = rogue.ring.key_packages(1).expect("package");
    let add = f
        .mom_laptop
        .ring
        .add(f.id, &packages, &with_rogue)
        .expect("its own client lets it");
    let got = f.son.ring.process(f.id, &add.entry, &later);
    assert!(matches!(got, Err(GroupError::NotVouched { .. })), "{got:?}");
    // The son's modified client removes mom's phone, which nobody revoked: refused.
    let rogue_removal = f
        .son
        .ring
        .remove(
            f.id,
            &[member(&f.mom_phone)],
            &without(&later, &f.mom_phone),
        )
        .expect("his own client lets him");
    let got = f
        .mom_laptop
        .ring
        .process(f.id, &rogue_removal.entry, &later);
    assert!(matches!(got, Err(GroupError::NotAllowed(_))), "{got:?}");
    assert!(!got.expect_err("refused").is_wait());
    assert_eq!(f.mom_laptop.ring.epoch(f.id), Some(2));
    // Anyone may remove the revoked laptop (the son's rogue Commit, first in the log
    // for epoch 2, was refused by everyone and skipped).
    let out = f
        .mom_phone
        .ring
        .remove(f.id, &[member(&f.mom_laptop)], &later)
        .expect("anyone may remove a revoked device");
    accepted(&mut f.mom_phone, f.id, &out, &later);
    // A device that knows nothing yet of a member's device does not judge its
    // removal by another member: it waits for the certificates.
    let mut unaware = later.clone();
    unaware
        .devices
        .remove(&(f.mom_laptop.user, f.mom_laptop.device));
    let got = unaware.may_remove(&member(&f.mom_laptop));
    assert!(got.as_ref().is_err_and(GroupError::is_wait), "{got:?}");
    assert!(later.may_remove(&member(&f.mom_laptop)).is_ok());
    assert!(matches!(
        later.may_remove(&member(&f.son)),
        Err(GroupError::NotAllowed(_))
    ));
    assert!(without(&later, &f.son).may_remove(&member(&f.son)).is_ok());
}

#[test]
fn a_removed_device_can_be_added_again() {
    let mut f = family();
    let left = without(&f.known, &f.son);
    let commit = f
        .mom_phone
        .ring
        .remove(f.id, &[member(&f.son)], &left)
        .expect("remove");
    accepted(&mut f.mom_phone, f.id, &commit, &left);
    assert_eq!(
        f.son.ring.process(f.id, &commit.entry, &left).expect("son"),
        Processed::Removed
    );
    // He is invited back: vouched for again, his device joins anew.
    let packages = f.son.ring.key_packages(1).expect("package");
    let commit = f
        .mom_phone
        .ring
        .add(f.id, &packages, &f.known)
        .expect("add");
    accepted(&mut f.mom_phone, f.id, &commit, &f.known);
    let epoch = f
        .son
        .ring
        .join(f.id, &commit.entry.clone(), &f.known)
        .expect("joins again");
    assert_eq!(epoch, 3);
    let sealed = f
        .mom_phone
        .ring
        .seal(f.id, f.doc, "돌아왔어".as_bytes())
        .expect("seal");
    assert_eq!(
        f.son.ring.open(f.id, f.doc, &sealed).expect("opens"),
        "돌아왔어".as_bytes()
    );
}

/// The first Commit entry of each epoch in `log`, in order: the ones every member
/// applies, and the only ones a device waiting to be added may join from.
fn first_commits(log: &[Vec<u8>], family: FamilyId) -> Vec<&Vec<u8>> {
    let mut seen = std::collections::BTreeSet::new();
    log.iter()
        .filter(|entry| match classify(entry) {
            Ok(LogEntry::Commit {
                family: f, epoch, ..
            }) => f == family && seen.insert(epoch),
            _ => false,
        })
        .collect()
}

#[test]
fn a_new_device_joins_only_from_the_commit_that_won_its_epoch() {
    let mut f = family();
    let (mut tablet, known) = newcomer(&f.known, f.son.user);
    // Mom's phone adds the tablet while the laptop refreshes its leaf; the laptop's
    // entry reaches the log first.
    let packages = tablet.ring.key_packages(2).expect("packages");
    let add = f
        .mom_phone
        .ring
        .add(f.id, &packages[..1], &known)
        .expect("add");
    let refresh = f.mom_laptop.ring.update(f.id).expect("update");
    let mut log = vec![refresh.entry.clone(), add.entry];
    assert_eq!(
        f.mom_phone
            .ring
            .process(f.id, &refresh.entry, &known)
            .expect("phone"),
        Processed::Superseded { epoch: 2 }
    );
    // The phone adds the tablet again, on top.
    let again = f
        .mom_phone
        .ring
        .add(f.id, &packages[1..], &known)
        .expect("add again");
    log.push(again.entry.clone());
    let firsts = first_commits(&log, f.id);
    assert_eq!(firsts, vec![&refresh.entry, &again.entry]);
    // The tablet takes the Welcome of the first Commit of its epoch that has one.
    let entry = firsts
        .iter()
        .find(|e| matches!(classify(e), Ok(LogEntry::Commit { welcome: true, .. })))
        .expect("a welcome");
    assert_eq!(tablet.ring.join(f.id, entry, &known).expect("joins"), 3);
    for d in [&mut f.mom_phone, &mut f.mom_laptop, &mut f.son] {
        for e in &log {
            let _ = d.ring.process(f.id, e, &known).expect("in the log's order");
        }
        assert_eq!(d.ring.epoch(f.id), Some(3));
    }
    let sealed = tablet.ring.seal(f.id, f.doc, b"hello").expect("seal");
    assert_eq!(
        f.son.ring.open(f.id, f.doc, &sealed).expect("opens"),
        b"hello"
    );
}

#[test]
fn a_key_ring_restored_from_before_its_own_commit_says_so() {
    let mut f = family();
    let saved = f.mom_laptop.ring.save().expect("save");
    let commit = f.mom_laptop.ring.update(f.id).expect("update");
    // The laptop's storage was rolled back to before the Commit (a backup restored);
    // its Commit, appended meanwhile, comes back from the log.
    let mut restored = KeyRing::restore(
        f.mom_laptop.user,
        f.mom_laptop.device,
        f.mom_laptop.key.clone(),
        &saved,
    )
    .expect("restore");
    let got = restored.process(f.id, &commit.entry, &f.known);
    assert!(matches!(got, Err(GroupError::OwnCommitLost)), "{got:?}");
    // A Welcome cut from one Commit and pasted behind a Commit of a later epoch is
    // refused: it does not lead into the epoch that Commit makes.
    let (mut tablet, known) = newcomer(&f.known, f.son.user);
    let packages = tablet.ring.key_packages(1).expect("package");
    let add = f.mom_phone.ring.add(f.id, &packages, &known).expect("add");
    accepted(&mut f.mom_phone, f.id, &add, &known);
    let next = f.mom_phone.ring.update(f.id).expect("update");
    let (_, welcome) = split_commit_entry(&add.entry).expect("entry");
    let (next_commit, _) = split_commit_entry(&next.entry).expect("entry");
    let signer = EntrySigner {
        family: f.id,
        device: f.mom_phone.device,
        key: &f.mom_phone.key,
    };
    let pasted = commit_entry(&signer, next_commit, welcome).expect("an entry of another commit");
    let got = tablet.ring.join(f.id, &pasted, &known);
    assert!(matches!(got, Err(GroupError::Malformed(_))), "{got:?}");
    assert_eq!(
        tablet.ring.join(f.id, &add.entry, &known).expect("joins"),
        2
    );
}

/// A device added to the group takes the secrets of earlier epochs from the history
/// entry of the device that added it, and from no other: another member's device (in
/// the group at that epoch, so it could seal one) cannot hand it wrong secrets first.
#[test]
fn history_is_taken_from_the_adding_device_only() {
    let mom = UserId::random();
    let mut phone = device(mom);
    let mut laptop = device(mom);
    let mut son = device(UserId::random());
    let known = vouch(&[&phone, &laptop, &son]);
    let id = FamilyId::random();
    let doc = DocId::from(id);
    phone.ring.create(id).expect("create");
    let old = phone
        .ring
        .seal(id, doc, b"before anyone joined")
        .expect("seal");
    let mut packages = laptop.ring.key_packages(1).expect("package");
    packages.extend(son.ring.key_packages(1).expect("package"));
    let commit = phone.ring.add(id, &packages, &known).expect("add");
    accepted(&mut phone, id, &commit, &known);
    laptop
        .ring
        .join(id, &commit.entry, &known)
        .expect("laptop joins");
    son.ring.join(id, &commit.entry, &known).expect("son joins");
    assert_eq!(
        son.ring.open(id, doc, &old),
        Err(EnvelopeError::UnknownEpoch(0))
    );
    let real = phone.ring.history(id).expect("history");
    assert_eq!(
        classify(&real).expect("entry"),
        LogEntry::History { epoch: 1 }
    );
    // The laptop, in the group at that epoch too, could seal one: not the adder's.
    let from_laptop = laptop.ring.history(id).expect("history");
    assert!(matches!(
        son.ring.take_history(id, &from_laptop),
        Err(GroupError::NotForThisDevice)
    ));
    // The phone's, changed in one byte, does not count either.
    let mut changed = real.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert!(son.ring.take_history(id, &changed).is_err());
    assert!(son.ring.open(id, doc, &old).is_err());
    // The phone's own: the epoch before the son joined opens.
    assert_eq!(son.ring.take_history(id, &real).expect("taken"), 1);
    assert_eq!(
        son.ring.open(id, doc, &old).expect("opens"),
        b"before anyone joined"
    );
    // The phone itself, in the group from its start, takes nothing from anyone.
    assert!(matches!(
        phone.ring.take_history(id, &real),
        Err(GroupError::NotForThisDevice)
    ));
}

/// The user key alone (the recovery phrase) takes a family's secrets back from an
/// escrow entry — into a ring that is not in the group, which then opens what was
/// sealed; another user's ring, or another key, takes nothing.
#[test]
fn an_escrow_entry_opens_only_with_its_users_key() {
    let mom = UserId::random();
    let user_key = SigningKey::from_bytes(&rand::random());
    let mut phone = device(mom);
    let id = FamilyId::random();
    let doc = DocId::from(id);
    phone.ring.create(id).expect("create");
    let sealed = phone.ring.seal(id, doc, b"a mission").expect("seal");
    let (epoch, entry) = phone.ring.escrow(id, &user_key, None).expect("escrow");
    assert_eq!(epoch, 0);
    assert_eq!(
        classify(&entry).expect("entry"),
        LogEntry::Escrow {
            user: mom,
            epoch: 0
        }
    );
    // Restored from the phrase: same user, a new device, no group.
    let mut restored = device(mom);
    assert!(restored.ring.open(id, doc, &sealed).is_err());
    let other_key = SigningKey::from_bytes(&rand::random());
    assert!(restored.ring.take_escrow(id, &entry, &other_key).is_err());
    let mut stranger = device(UserId::random());
    assert!(matches!(
        stranger.ring.take_escrow(id, &entry, &user_key),
        Err(GroupError::NotForThisDevice)
    ));
    assert_eq!(
        restored
            .ring
            .take_escrow(id, &entry, &user_key)
            .expect("taken")
            .taken,
        1
    );
    assert_eq!(
        restored.ring.open(id, doc, &sealed).expect("opens"),
        b"a mission"
    );
}

mod cards;
mod invites;
mod rejoin;
