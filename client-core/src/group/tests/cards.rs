//! Invite cards: the invitee's devices open them from the key packages they
//! published, the family's from its epoch keys, and nobody else — not the relay, not a
//! device the relay slipped in, not a card moved to another invite.

use super::*;

fn card() -> InviteCard {
    InviteCard {
        family_title: "도란도란 우리집".into(),
        inviter_name: "엄마".into(),
        proposed_name: "막내아들".into(),
    }
}

fn context(f: &Family, invitee: UserId) -> CardContext {
    CardContext {
        invite: doran_protocol::InviteId::random(),
        family: f.id,
        inviter: f.mom_phone.user,
        invitee,
    }
}

/// [`card`] as mom's phone seals it for `ctx` in a sealed family, to the one
/// published `package` (if `known` vouches for its device) and to the family.
fn sealed_to(
    f: &Family,
    ctx: &CardContext,
    package: &LastResort,
    known: &KnownDevices,
) -> (Vec<u8>, CardReaders) {
    f.mom_phone
        .ring
        .seal_card(
            ctx,
            &card(),
            std::slice::from_ref(&package.package),
            known,
            true,
        )
        .expect("sealed")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Grandma's phone, with the key package it published, invited by mom's phone:
/// the card sealed to the package and to the family.
fn sealed_for_grandma(f: &Family) -> (Device, LastResort, CardContext, Vec<u8>) {
    let mut grandma = device(UserId::random());
    let published = grandma.ring.last_resort_package().expect("package");
    let ctx = context(f, grandma.user);
    let (sealed, readers) = sealed_to(f, &ctx, &published, &vouch(&[&grandma]));
    assert_eq!(
        readers,
        CardReaders {
            devices: 1,
            family: true
        }
    );
    (grandma, published, ctx, sealed)
}

#[test]
fn the_invitee_and_the_family_open_the_card_and_it_holds_no_plaintext() {
    let f = family();
    let (grandma, _, ctx, sealed) = sealed_for_grandma(&f);
    for text in ["도란도란 우리집", "엄마", "막내아들"] {
        assert!(!contains(&sealed, text.as_bytes()), "{text} in the card");
    }
    // The invitee, before accepting: from the package's private half.
    assert_eq!(grandma.ring.open_card(&ctx, &sealed, &f.known), Ok(card()));
    // The family: every device in the epoch it was sealed in.
    assert_eq!(
        f.mom_laptop.ring.open_card(&ctx, &sealed, &f.known),
        Ok(card())
    );
    assert_eq!(f.son.ring.open_card(&ctx, &sealed, &f.known), Ok(card()));
    // Anyone else: nothing.
    let stranger = device(UserId::random());
    assert_eq!(
        stranger.ring.open_card(&ctx, &sealed, &f.known),
        Err(CardError::NotForThisDevice)
    );
    // A key ring restored from its save (the invitee's app started again) still opens it.
    let saved = grandma.ring.save().expect("save");
    let restored =
        KeyRing::restore(grandma.user, grandma.device, grandma.key, &saved).expect("restore");
    assert_eq!(restored.open_card(&ctx, &sealed, &f.known), Ok(card()));
}

#[test]
fn a_card_moved_to_another_invite_or_changed_does_not_open() {
    let f = family();
    let (grandma, _, ctx, sealed) = sealed_for_grandma(&f);

    let other_invite = CardContext {
        invite: doran_protocol::InviteId::random(),
        ..ctx
    };
    let other_inviter = CardContext {
        inviter: f.son.user,
        ..ctx
    };
    for moved in [other_invite, other_inviter] {
        assert_eq!(
            grandma.ring.open_card(&moved, &sealed, &f.known),
            Err(CardError::Refused)
        );
        assert!(
            f.mom_laptop
                .ring
                .open_card(&moved, &sealed, &f.known)
                .is_err()
        );
    }
    // Any byte changed: never another text. (A change in a slot that is not a
    // device's own leaves it its own slot and the body, which still prove the card.)
    for at in 4..sealed.len() {
        let mut changed = sealed.clone();
        changed[at] ^= 0x40;
        for ring in [&grandma.ring, &f.mom_laptop.ring] {
            if let Ok(opened) = ring.open_card(&ctx, &changed, &f.known) {
                assert_eq!(opened, card(), "byte {at}");
            }
        }
    }
    // The body itself changed: nobody opens it.
    let mut changed = sealed;
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert_eq!(
        grandma.ring.open_card(&ctx, &changed, &f.known),
        Err(CardError::Refused)
    );
    assert_eq!(
        f.mom_laptop.ring.open_card(&ctx, &changed, &f.known),
        Err(CardError::Refused)
    );
    assert_eq!(
        grandma.ring.open_card(&ctx, b"not a card", &f.known),
        Err(CardError::Malformed)
    );
}

#[test]
fn a_package_nobody_vouches_for_gets_no_slot() {
    let f = family();
    let grandma = device(UserId::random());
    // The relay serves a package of a device of its own under grandma's name.
    let mut planted = device(grandma.user);
    let package = planted.ring.last_resort_package().expect("package");
    let known = vouch(&[&grandma]);
    let ctx = context(&f, grandma.user);
    let (sealed, readers) = sealed_to(&f, &ctx, &package, &known);
    assert_eq!(readers.devices, 0);
    assert_eq!(
        planted.ring.open_card(&ctx, &sealed, &f.known),
        Err(CardError::NotForThisDevice)
    );
    // A package of a vouched device of someone else than the invitee: no slot either.
    let mut dad = device(UserId::random());
    let dads = dad.ring.last_resort_package().expect("package");
    let (sealed, readers) = sealed_to(&f, &ctx, &dads, &vouch(&[&dad]));
    assert_eq!(readers.devices, 0);
    assert_eq!(
        dad.ring.open_card(&ctx, &sealed, &f.known),
        Err(CardError::NotForThisDevice)
    );
}

#[test]
fn a_forgotten_package_no_longer_opens_a_card_and_a_clear_family_hides_nothing() {
    let f = family();
    let (mut grandma, published, ctx, sealed) = sealed_for_grandma(&f);
    grandma
        .ring
        .forget_package(&published.hash)
        .expect("forget");
    assert_eq!(
        grandma.ring.open_card(&ctx, &sealed, &f.known),
        Err(CardError::NotForThisDevice)
    );

    // A family whose documents are in the clear: its card opens for anyone (its relay
    // reads the title in the document anyway), the invitee's slot still there.
    let (clear, readers) = f
        .mom_phone
        .ring
        .seal_card(&ctx, &card(), &[], &vouch(&[&grandma]), false)
        .expect("sealed");
    assert_eq!(readers.devices, 0);
    assert_eq!(
        device(UserId::random())
            .ring
            .open_card(&ctx, &clear, &f.known),
        Ok(card())
    );
}

#[test]
fn a_card_the_relay_made_is_refused() {
    let f = family();
    let (grandma, published, ctx, sealed) = sealed_for_grandma(&f);
    // Signed by mom's phone: taken only from a device the inviter's certificates vouch
    // for. A reader that knows nothing of mom's devices takes nothing.
    assert_eq!(
        grandma.ring.open_card(&ctx, &sealed, &KnownDevices::new()),
        Err(CardError::NotVouched)
    );
    // The relay seals a card of its own to grandma's published package (anyone can:
    // the init key is public), signed by a device of its own under mom's name.
    let forger = device(f.mom_phone.user);
    let forged_known = vouch(&[&grandma]);
    let (forged, _) = forger
        .ring
        .seal_card(
            &ctx,
            &InviteCard {
                family_title: "가짜 가족".into(),
                inviter_name: "엄마".into(),
                proposed_name: "머슴".into(),
            },
            std::slice::from_ref(&published.package),
            &forged_known,
            false,
        )
        .expect("sealed");
    assert_eq!(
        grandma.ring.open_card(&ctx, &forged, &f.known),
        Err(CardError::NotVouched)
    );
    // Its key in the clear for a family whose id says sealed: refused outright.
    let sealed_family = CardContext {
        family: FamilyId::new_family(true),
        ..ctx
    };
    let (clear, _) = forger
        .ring
        .seal_card(&sealed_family, &card(), &[], &forged_known, false)
        .expect("sealed");
    assert_eq!(
        grandma.ring.open_card(&sealed_family, &clear, &f.known),
        Err(CardError::Refused)
    );
}
