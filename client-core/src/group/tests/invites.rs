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
    let known = known_of(&[&mom, &dad], &[]);
    start(id, &mut mom, &mut dad, &known);
    (id, mom, dad)
}

/// Mom's phone starts family `id` and adds dad's phone, as `known` vouches.
fn start(id: FamilyId, mom: &mut Person, dad: &mut Person, known: &KnownDevices) {
    mom.phone.ring.create(id).expect("create");
    let packages = dad.phone.ring.key_packages(1).expect("package");
    let add = mom.phone.ring.add(id, &packages, known).expect("add dad");
    accepted(&mut mom.phone, id, &add, known);
    dad.phone
        .ring
        .join(id, &add.entry, known)
        .expect("dad joins");
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
    // A device reading it after his phone was revoked takes it, as every device did
    // when it was new (one offline meanwhile must not wait for ever), and sees the
    // phone gone: the next step takes it out again.
    let mut knows_revoked = known_of(&[&mom, &dad], &[]);
    knows_revoked.insert_revoked(son.user, son.phone.device, public_key(&son.phone.key));
    let got = dad.phone.ring.process(id, &add.entry, &knows_revoked);
    assert!(
        matches!(got, Ok(Processed::Advanced { epoch: 2 })),
        "{got:?}"
    );
    assert!(knows_revoked.is_gone(&member(&son.phone)));

    // A Commit that carries no certificates — made by a device that knew the phone
    // without them — leaves a device that does not know him waiting.
    let other = FamilyId::random();
    let mut lax = known_of(&[&mom, &dad], &[]);
    lax.insert(son.user, son.phone.device, public_key(&son.phone.key));
    start(other, &mut mom, &mut dad, &lax);
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

/// A published package is added only with four weeks of its life left (every device
/// checks an added package's lifetime as it reads the Commit); one of another
/// ciphersuite never.
#[test]
fn an_offered_package_needs_four_weeks_of_life_left() {
    let (_, mom, _) = mom_and_dad();
    let mut son = person();
    let published = son.phone.ring.last_resort_package().expect("package");
    let known = known_of(&[&mom], &[&son]);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert_eq!(
        mom.phone
            .ring
            .offered_member(&published.package, &known, now_s)
            .expect("fresh"),
        member(&son.phone)
    );
    // 84 days of life: 60 days on, fewer than 28 are left.
    let got = mom
        .phone
        .ring
        .offered_member(&published.package, &known, now_s + 60 * 24 * 60 * 60);
    assert!(matches!(got, Err(GroupError::Malformed(_))), "{got:?}");
}

/// A son invited together with his sister joins from a Welcome whose tree still
/// holds her phone after she turned the invite down: her leaf, of someone neither a
/// member nor invited, does not stop his join (it would never happen again: the
/// others see him in the group). An invitee's revoked device is removed even while
/// the invite is open.
#[test]
fn a_join_takes_a_tree_with_an_outsiders_leaf_and_a_revoked_invitee_device_goes() {
    let (id, mut mom, dad) = mom_and_dad();
    let (mut son, mut daughter) = (person(), person());
    let packages = vec![
        son.phone.ring.last_resort_package().expect("his").package,
        daughter
            .phone
            .ring
            .last_resort_package()
            .expect("hers")
            .package,
    ];
    let at_invite = known_of(&[&mom], &[&son, &daughter]);
    let add = mom
        .phone
        .ring
        .add(id, &packages, &at_invite)
        .expect("adds both");
    accepted(&mut mom.phone, id, &add, &at_invite);

    // She turned it down; he accepted: what his device knows.
    let his = known_of(&[&mom, &dad, &son], &[]);
    assert!(his.is_gone(&member(&daughter.phone)));
    assert_eq!(son.phone.ring.join(id, &add.entry, &his).expect("joins"), 2);

    // An invitee's revoked device: gone while the invite is still open.
    let mut revoked = at_invite.clone();
    revoked.insert_revoked(son.user, son.phone.device, public_key(&son.phone.key));
    assert!(revoked.is_gone(&member(&son.phone)));
    assert!(!at_invite.is_gone(&member(&son.phone)));
}

/// Carried certificates that are malformed, or more than the relay keeps for one
/// user, are refused alike by every device — whatever it knows of the user — and
/// skipped (each one costs a signature check on every device).
#[test]
fn oversized_carried_certificates_are_refused_alike() {
    let (id, mut mom, mut dad) = mom_and_dad();
    let mut son = person();
    let published = son.phone.ring.last_resort_package().expect("package");
    // A hostile client certifies 300 devices of the son's (it holds his user key in
    // this test) and carries them all.
    let mut certs = vec![son.cert.clone()];
    for _ in 0..300 {
        let d = device(son.user);
        certs.push(certify(
            &son.key,
            Certifier::User,
            son.user,
            d.device,
            public_key(&d.key),
        ));
    }
    let mut bloated = known_of(&[&mom, &dad], &[]);
    bloated.insert_certified(son.user, &public_key(&son.key), &certs, &BTreeSet::new());
    bloated.set_invited([son.user]);
    let add = mom
        .phone
        .ring
        .add(id, std::slice::from_ref(&published.package), &bloated)
        .expect("its own client lets it");
    for knows in [
        known_of(&[&mom, &dad], &[]),
        known_of(&[&mom, &dad], &[&son]),
    ] {
        let got = dad.phone.ring.process(id, &add.entry, &knows);
        assert!(
            matches!(got, Err(GroupError::NotAllowed(_))),
            "refused, not waited for: {got:?}"
        );
        assert_eq!(dad.phone.ring.epoch(id), Some(1));
    }
}
