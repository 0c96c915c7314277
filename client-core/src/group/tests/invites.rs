//! An invitee's devices added from the key packages they published, by a member's
//! device as it invites — and every other device's verdict on that Commit, whenever
//! it reads it.

use std::collections::BTreeSet;

use doran_protocol::model::Certifier;

use super::*;

/// A user with a key, and their first device certified by it.
struct Person {
    user: UserId,
    key: SigningKey,
    phone: Device,
    cert: doran_protocol::model::DeviceCert,
}

fn person() -> Person {
    let user = UserId::random();
    let key = SigningKey::from_bytes(&rand::random());
    let phone = device(user);
    let cert = certify(
        &key,
        Certifier::User,
        user,
        phone.device,
        public_key(&phone.key),
    );
    Person {
        user,
        key,
        phone,
        cert,
    }
}

/// What a device knows of `members` (and `invited`) from their certificates.
fn known_of(members: &[&Person], invited: &[&Person]) -> KnownDevices {
    let mut known = KnownDevices::new();
    for p in members.iter().chain(invited) {
        known.insert_certified(
            p.user,
            &public_key(&p.key),
            std::slice::from_ref(&p.cert),
            &BTreeSet::new(),
        );
    }
    known.set_members(members.iter().map(|p| p.user));
    known.set_invited(invited.iter().map(|p| p.user));
    known
}

/// Mom starts a family and adds dad's phone; both in epoch 1.
fn mom_and_dad() -> (FamilyId, Person, Person) {
    let (mut mom, mut dad) = (person(), person());
    let id = FamilyId::random();
    mom.phone.ring.create(id).expect("create");
    let known = known_of(&[&mom, &dad], &[]);
    let packages = dad.phone.ring.key_packages(1).expect("package");
    let add = mom.phone.ring.add(id, &packages, &known).expect("add dad");
    accepted(&mut mom.phone, id, &add, &known);
    dad.phone
        .ring
        .join(id, &add.entry, &known)
        .expect("dad joins");
    (id, mom, dad)
}

#[test]
fn an_invitee_is_added_from_a_published_package_and_a_late_reader_agrees() {
    let (id, mut mom, mut dad) = mom_and_dad();
    let mut son = person();
    let published = son.phone.ring.last_resort_package().expect("package");

    // Mom invites her son: her device adds his phone from the package he published.
    let mut at_invite = known_of(&[&mom, &dad], &[&son]);
    at_invite.offer(published.package.clone());
    assert_eq!(
        mom.phone
            .ring
            .package_member(&at_invite.offered()[0], &at_invite)
            .expect("vouched for"),
        member(&son.phone)
    );
    let add = mom
        .phone
        .ring
        .add(id, std::slice::from_ref(&published.package), &at_invite)
        .expect("adds the invitee");
    accepted(&mut mom.phone, id, &add, &at_invite);
    // While the invite is open, nobody removes him.
    assert!(!at_invite.is_gone(&member(&son.phone)));

    // Dad's device reads the Commit a week later: his son turned the invite down, so
    // the relay names him neither member nor invitee. The Commit's own certificates
    // vouch for the phone it added — the verdict every device reached.
    let later = known_of(&[&mom, &dad], &[]);
    assert_eq!(
        dad.phone
            .ring
            .process(id, &add.entry, &later)
            .expect("the same verdict"),
        Processed::Advanced { epoch: 2 }
    );
    // And now anyone removes him.
    assert!(later.is_gone(&member(&son.phone)));

    // Had he accepted: his phone joins from the Welcome and reads what mom seals.
    let his = known_of(&[&mom, &dad, &son], &[]);
    assert_eq!(son.phone.ring.join(id, &add.entry, &his).expect("joins"), 2);
    let sealed = mom
        .phone
        .ring
        .seal(id, DocId::from(id), b"welcome home")
        .expect("seal");
    assert_eq!(
        son.phone
            .ring
            .open(id, DocId::from(id), &sealed)
            .expect("opens"),
        b"welcome home"
    );

    // A last-resort package serves a second family: its private half stayed.
    let other = FamilyId::random();
    mom.phone.ring.create(other).expect("create");
    let add = mom
        .phone
        .ring
        .add(other, std::slice::from_ref(&published.package), &at_invite)
        .expect("adds him again");
    accepted(&mut mom.phone, other, &add, &at_invite);
    assert_eq!(
        son.phone
            .ring
            .join(other, &add.entry, &his)
            .expect("joins the second family too"),
        1
    );
    // Once forgotten, a Welcome made with it no longer opens.
    son.phone
        .ring
        .forget_package(&published.hash)
        .expect("forget");
    let third = FamilyId::random();
    mom.phone.ring.create(third).expect("create");
    let add = mom
        .phone
        .ring
        .add(third, std::slice::from_ref(&published.package), &at_invite)
        .expect("adds");
    let got = son.phone.ring.join(third, &add.entry, &his);
    assert!(matches!(got, Err(GroupError::NotForThisDevice)), "{got:?}");
}

#[test]
fn carried_certificates_vouch_only_under_the_user_key_a_device_knows() {
    let (id, mut mom, mut dad) = mom_and_dad();
    let mut son = person();
    let published = son.phone.ring.last_resort_package().expect("package");
    let at_invite = known_of(&[&mom, &dad], &[&son]);
    let add = mom
        .phone
        .ring
        .add(id, std::slice::from_ref(&published.package), &at_invite)
        .expect("adds the invitee");
    accepted(&mut mom.phone, id, &add, &at_invite);

    // Dad's device pinned another key for that user (the relay served one of its own
    // once): the Commit's certificates do not vouch, and nothing changes.
    let mut pinned_other = known_of(&[&mom, &dad], &[]);
    let impostor = SigningKey::from_bytes(&rand::random());
    pinned_other.insert_certified(son.user, &public_key(&impostor), &[], &BTreeSet::new());
    let got = dad.phone.ring.process(id, &add.entry, &pinned_other);
    assert!(got.as_ref().is_err_and(GroupError::is_wait), "{got:?}");
    assert_eq!(dad.phone.ring.epoch(id), Some(1));
    // A device knowing his phone as revoked does not take the Commit's word either.
    let mut knows_revoked = known_of(&[&mom, &dad], &[]);
    knows_revoked.insert_revoked(son.user, son.phone.device, public_key(&son.phone.key));
    let got = dad.phone.ring.process(id, &add.entry, &knows_revoked);
    assert!(got.is_err(), "{got:?}");
    assert_eq!(dad.phone.ring.epoch(id), Some(1));

    // A Commit that carries no certificates — made by a device that knew the phone
    // without them — leaves a device that does not know him waiting.
    let other = FamilyId::random();
    let mut lax = known_of(&[&mom, &dad], &[]);
    lax.insert(son.user, son.phone.device, public_key(&son.phone.key));
    mom.phone.ring.create(other).expect("create");
    let packages = dad.phone.ring.key_packages(1).expect("package");
    let first = mom.phone.ring.add(other, &packages, &lax).expect("add dad");
    accepted(&mut mom.phone, other, &first, &lax);
    dad.phone
        .ring
        .join(other, &first.entry, &lax)
        .expect("dad joins");
    let add = mom
        .phone
        .ring
        .add(other, std::slice::from_ref(&published.package), &lax)
        .expect("adds");
    let unaware = known_of(&[&mom, &dad], &[]);
    let got = dad.phone.ring.process(other, &add.entry, &unaware);
    assert!(got.as_ref().is_err_and(GroupError::is_wait), "{got:?}");
    assert_eq!(dad.phone.ring.epoch(other), Some(1));
    // The device that knew him takes it.
    assert_eq!(
        dad.phone
            .ring
            .process(other, &add.entry, &lax)
            .expect("vouched"),
        Processed::Advanced { epoch: 2 }
    );
}
