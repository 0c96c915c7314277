//! Invites: creation, reading with their cards and nicknames, expiry, answers,
//! withdrawal.

use std::error::Error;

use doran_protocol::{
    InviteId, UserId,
    model::{InviteInfo, InviteState, Role},
};

use super::{
    Fixture, TestResult, card, family_id, family_with_host, join, new_invite, new_user, register,
};
use crate::store::{INVITE_PAIR_WINDOW_MS, InviteLimits, NewInvite, StoreError};

/// A family (1) hosted by user 1, and user 2 to invite. Returns the pending invite
/// (id 1, card 1, sent at 10, expiring at 110).
fn setup(f: &Fixture) -> Result<NewInvite, Box<dyn Error>> {
    let family = family_with_host(f, 1, 1)?;
    let invitee = register(f, 2)?;
    let invite = new_invite(1, family, new_user(1).0.id, invitee, 10);
    f.accounts.create_invite(&invite)?;
    Ok(invite)
}

pub(crate) fn an_invite_reads_back_with_its_card(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    let expected = InviteInfo {
        invite: invite.id,
        family: invite.family,
        inviter: invite.inviter,
        inviter_nickname: "nick 1".into(),
        invitee: invite.invitee,
        invitee_nickname: "nick 2".into(),
        card: card(1),
        created_at: 10,
        expires_at: 110,
        state: InviteState::Pending,
    };
    assert_eq!(f.accounts.invite(invite.id, 50)?, Some(expected.clone()));
    assert_eq!(
        f.accounts.invites_for(invite.invitee, 50)?,
        vec![expected.clone()]
    );
    assert_eq!(
        f.accounts.invites_of_family(invite.family, 50)?,
        vec![expected]
    );
    assert!(f.accounts.invites_for(invite.inviter, 50)?.is_empty());
    // Nicknames are read when the invite is: a new one shows.
    f.accounts.set_profile(invite.invitee, "새 별명", None)?;
    let info = f.accounts.invite(invite.id, 50)?.ok_or("invite")?;
    assert_eq!(info.invitee_nickname, "새 별명");
    // An invite is not a membership.
    assert_eq!(f.accounts.membership(invite.family, invite.invitee)?, None);
    Ok(())
}

pub(crate) fn create_invite_errors_change_nothing(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    let outsider = register(f, 3)?;
    let kid = register(f, 4)?;
    join(f, 2, invite.family, invite.inviter, kid, 20)?;
    let refused = |new: &NewInvite| -> Result<StoreError, Box<dyn Error>> {
        let err = f
            .accounts
            .create_invite(new)
            .err()
            .ok_or_else(|| format!("{new:?} was accepted"))?;
        if new.id != invite.id {
            assert_eq!(f.accounts.invite(new.id, new.created_at)?, None, "{new:?}");
        }
        Ok(err)
    };
    let base = new_invite(9, invite.family, invite.inviter, outsider, 30);

    let to_member = NewInvite {
        invitee: kid,
        ..base.clone()
    };
    assert!(matches!(refused(&to_member)?, StoreError::AlreadyMember));
    let to_self = NewInvite {
        invitee: invite.inviter,
        ..base.clone()
    };
    assert!(matches!(refused(&to_self)?, StoreError::AlreadyMember));
    let again = NewInvite {
        invitee: invite.invitee,
        ..base.clone()
    };
    assert!(matches!(refused(&again)?, StoreError::AlreadyInvited));
    let same_id = NewInvite {
        id: invite.id,
        ..base.clone()
    };
    assert!(matches!(refused(&same_id)?, StoreError::Conflict(_)));
    let no_family = NewInvite {
        family: family_id(9),
        ..base.clone()
    };
    assert!(matches!(
        refused(&no_family)?,
        StoreError::NotFound("family")
    ));
    let no_user = NewInvite {
        invitee: new_user(9).0.id,
        ..base.clone()
    };
    assert!(matches!(refused(&no_user)?, StoreError::NotFound("user")));
    let not_a_member = NewInvite {
        inviter: outsider,
        invitee: register(f, 5)?,
        ..base.clone()
    };
    assert!(matches!(
        refused(&not_a_member)?,
        StoreError::NotFound("member")
    ));
    let backwards = NewInvite {
        expires_at: base.created_at,
        ..base.clone()
    };
    assert!(matches!(refused(&backwards)?, StoreError::Invalid(_)));

    assert_eq!(f.accounts.invites_of_family(invite.family, 30)?.len(), 1);
    assert!(f.accounts.invites_for(outsider, 30)?.is_empty());
    // A card is opaque: another invite may carry the very same bytes.
    let same_card = NewInvite {
        card: invite.card.clone(),
        ..base
    };
    f.accounts.create_invite(&same_card)?;
    assert_eq!(f.accounts.invites_of_family(invite.family, 30)?.len(), 2);
    Ok(())
}

pub(crate) fn an_expired_invite_reads_as_expired_and_allows_a_new_one(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    let state = |now| -> Result<Option<InviteState>, StoreError> {
        Ok(f.accounts.invite(invite.id, now)?.map(|i| i.state))
    };
    assert_eq!(state(109)?, Some(InviteState::Pending));
    assert_eq!(state(110)?, Some(InviteState::Expired));
    assert_eq!(state(5_000)?, Some(InviteState::Expired));
    assert_eq!(f.accounts.invites_for(invite.invitee, 109)?.len(), 1);
    assert!(f.accounts.invites_for(invite.invitee, 110)?.is_empty());
    assert!(f.accounts.invites_of_family(invite.family, 110)?.is_empty());
    // Still pending at 109: a new invite then is a duplicate; at 110 it is not.
    let mut next = new_invite(2, invite.family, invite.inviter, invite.invitee, 109);
    assert!(matches!(
        f.accounts.create_invite(&next),
        Err(StoreError::AlreadyInvited)
    ));
    next.created_at = 110;
    next.expires_at = 210;
    f.accounts.create_invite(&next)?;
    let open: Vec<InviteId> = f
        .accounts
        .invites_for(invite.invitee, 150)?
        .iter()
        .map(|i| i.invite)
        .collect();
    assert_eq!(open, vec![next.id]);
    Ok(())
}

pub(crate) fn accept_adds_the_membership(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    let info = f.accounts.answer_invite(invite.id, true, 60, usize::MAX)?;
    assert_eq!(info.state, InviteState::Accepted);
    assert_eq!(info.invite, invite.id);
    assert_eq!(info.card, invite.card);
    assert_eq!(f.accounts.invite(invite.id, 60)?, Some(info));
    // Answered is answered, even past the deadline.
    assert_eq!(
        f.accounts.invite(invite.id, 9_999)?.map(|i| i.state),
        Some(InviteState::Accepted)
    );
    let member = f
        .accounts
        .membership(invite.family, invite.invitee)?
        .ok_or("member")?;
    assert_eq!((member.role, member.joined_at), (Role::Member, 60));
    assert_eq!(member.personal_doc, new_user(2).0.personal_doc);
    assert_eq!(f.accounts.families_of(invite.invitee)?.len(), 1);
    assert!(f.accounts.invites_for(invite.invitee, 60)?.is_empty());
    assert!(f.accounts.invites_of_family(invite.family, 60)?.is_empty());
    for accept in [true, false] {
        assert!(matches!(
            f.accounts.answer_invite(invite.id, accept, 61, usize::MAX),
            Err(StoreError::InviteClosed)
        ));
    }
    assert!(matches!(
        f.accounts.withdraw_invite(invite.id, 61),
        Err(StoreError::InviteClosed)
    ));
    Ok(())
}

pub(crate) fn reject_adds_nothing(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    let info = f.accounts.answer_invite(invite.id, false, 60, usize::MAX)?;
    assert_eq!(info.state, InviteState::Rejected);
    assert_eq!(
        f.accounts.invite(invite.id, 60)?.map(|i| i.state),
        Some(InviteState::Rejected)
    );
    assert_eq!(f.accounts.membership(invite.family, invite.invitee)?, None);
    assert!(f.accounts.invites_for(invite.invitee, 60)?.is_empty());
    assert!(matches!(
        f.accounts.answer_invite(invite.id, true, 61, usize::MAX),
        Err(StoreError::InviteClosed)
    ));
    // A rejected invite does not block a new one.
    f.accounts.create_invite(&new_invite(
        2,
        invite.family,
        invite.inviter,
        invite.invitee,
        70,
    ))?;
    Ok(())
}

pub(crate) fn an_expired_invite_cannot_be_answered(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    for accept in [true, false] {
        assert!(matches!(
            f.accounts.answer_invite(invite.id, accept, 110, usize::MAX),
            Err(StoreError::InviteExpired)
        ));
    }
    assert!(matches!(
        f.accounts.withdraw_invite(invite.id, 200),
        Err(StoreError::InviteExpired)
    ));
    assert_eq!(f.accounts.membership(invite.family, invite.invitee)?, None);
    assert_eq!(
        f.accounts.invite(invite.id, 110)?.map(|i| i.state),
        Some(InviteState::Expired)
    );
    // Nothing was stored: at a time before the deadline it is still open.
    assert_eq!(
        f.accounts
            .answer_invite(invite.id, true, 109, usize::MAX)?
            .state,
        InviteState::Accepted
    );
    Ok(())
}

/// The relay keeps no 호칭 (protocol 7): two invites carrying the same card — the
/// same proposed 호칭, for all the relay could tell — are both accepted, and a card
/// of any bytes, up to the largest, comes back exactly as it was stored.
pub(crate) fn the_relay_keeps_no_names(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    let other = register(f, 3)?;
    let mut odd = vec![0u8, 0xff, 0x00, b'"', b'\\', 0xc3, 0x28];
    odd.resize(doran_protocol::limits::MAX_INVITE_CARD_BYTES, 0xa5);
    let second = NewInvite {
        card: invite.card.clone(),
        ..new_invite(2, invite.family, invite.inviter, other, 20)
    };
    f.accounts.create_invite(&second)?;
    assert_eq!(
        f.accounts.invite(second.id, 21)?.map(|i| i.card),
        Some(invite.card.clone())
    );
    f.accounts.withdraw_invite(second.id, 21)?;
    let third = NewInvite {
        id: InviteId([3; 16]),
        card: odd.clone(),
        ..second
    };
    f.accounts.create_invite(&third)?;
    assert_eq!(
        f.accounts.invites_for(other, 22)?,
        f.accounts.invites_of_family(invite.family, 22)?[1..].to_vec()
    );
    assert_eq!(
        f.accounts.invite(third.id, 22)?.map(|i| i.card),
        Some(odd.clone())
    );
    assert_eq!(
        f.accounts
            .answer_invite(third.id, true, 30, usize::MAX)?
            .card,
        odd
    );
    assert_eq!(
        f.accounts
            .answer_invite(invite.id, true, 40, usize::MAX)?
            .card,
        invite.card
    );
    let roles: Vec<(UserId, Role)> = f
        .accounts
        .members(invite.family)?
        .into_iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            (invite.inviter, Role::Host),
            (other, Role::Member),
            (invite.invitee, Role::Member),
        ]
    );
    Ok(())
}

pub(crate) fn accept_fails_for_a_member(f: &Fixture) -> TestResult {
    // Invite 1 is open 10..110. After it expires, invite 2 (150..250) is accepted;
    // invite 1, answered with a clock reading 50, finds a member.
    let invite = setup(f)?;
    let second = new_invite(2, invite.family, invite.inviter, invite.invitee, 150);
    f.accounts.create_invite(&second)?;
    f.accounts.answer_invite(second.id, true, 151, usize::MAX)?;
    assert!(matches!(
        f.accounts.answer_invite(invite.id, true, 50, usize::MAX),
        Err(StoreError::AlreadyMember)
    ));
    assert_eq!(
        f.accounts.invite(invite.id, 50)?.map(|i| i.state),
        Some(InviteState::Pending)
    );
    assert_eq!(
        f.accounts
            .membership(invite.family, invite.invitee)?
            .map(|m| m.joined_at),
        Some(151)
    );
    Ok(())
}

pub(crate) fn withdraw_closes_an_invite(f: &Fixture) -> TestResult {
    let invite = setup(f)?;
    let info = f.accounts.withdraw_invite(invite.id, 50)?;
    assert_eq!(info.state, InviteState::Withdrawn);
    assert_eq!(info.invitee_nickname, "nick 2");
    assert_eq!(
        f.accounts.invite(invite.id, 50)?.map(|i| i.state),
        Some(InviteState::Withdrawn)
    );
    assert!(f.accounts.invites_for(invite.invitee, 50)?.is_empty());
    assert!(matches!(
        f.accounts.answer_invite(invite.id, true, 51, usize::MAX),
        Err(StoreError::InviteClosed)
    ));
    assert!(matches!(
        f.accounts.withdraw_invite(invite.id, 51),
        Err(StoreError::InviteClosed)
    ));
    assert_eq!(f.accounts.membership(invite.family, invite.invitee)?, None);
    Ok(())
}

pub(crate) fn unknown_invites(f: &Fixture) -> TestResult {
    let id = InviteId([42; 16]);
    assert_eq!(f.accounts.invite(id, 1)?, None);
    assert!(matches!(
        f.accounts.answer_invite(id, true, 1, usize::MAX),
        Err(StoreError::NotFound("invite"))
    ));
    assert!(matches!(
        f.accounts.withdraw_invite(id, 1),
        Err(StoreError::NotFound("invite"))
    ));
    assert!(f.accounts.invites_for(new_user(1).0.id, 1)?.is_empty());
    assert!(f.accounts.invites_of_family(family_id(1), 1)?.is_empty());
    Ok(())
}

pub(crate) fn an_inviter_who_left_keeps_their_nickname(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let aunt = register(f, 2)?;
    let guest = register(f, 3)?;
    join(f, 1, family, host, aunt, 10)?;
    let invite = new_invite(2, family, aunt, guest, 20);
    f.accounts.create_invite(&invite)?;
    let before = f.accounts.invite(invite.id, 21)?.ok_or("invite")?;
    f.accounts.remove_member(family, aunt)?;
    let info = f.accounts.invite(invite.id, 21)?.ok_or("invite")?;
    assert_eq!(info, before);
    assert_eq!(info.inviter_nickname, "nick 2");
    assert_eq!(info.card, card(2));
    Ok(())
}

pub(crate) fn invite_lists_are_oldest_first(f: &Fixture) -> TestResult {
    let host = register(f, 1)?;
    let guest = register(f, 2)?;
    let guest2 = register(f, 3)?;
    for n in [1, 2, 3] {
        f.accounts
            .create_family(family_id(n), host, 1, usize::MAX)?;
    }
    // Sent at 30, 10, 20 with ids 1, 2, 3; and id 5 at 10 (same time as id 2).
    f.accounts
        .create_invite(&new_invite(1, family_id(1), host, guest, 30))?;
    f.accounts
        .create_invite(&new_invite(2, family_id(2), host, guest, 10))?;
    f.accounts
        .create_invite(&new_invite(3, family_id(3), host, guest, 20))?;
    f.accounts
        .create_invite(&new_invite(5, family_id(2), host, guest2, 10))?;
    let ids = |list: Vec<InviteInfo>| list.iter().map(|i| i.invite.0[0]).collect::<Vec<_>>();
    assert_eq!(ids(f.accounts.invites_for(guest, 50)?), vec![2, 3, 1]);
    assert_eq!(
        ids(f.accounts.invites_of_family(family_id(2), 50)?),
        vec![2, 5]
    );
    // At 115 the invites sent at 10 have expired.
    assert_eq!(ids(f.accounts.invites_for(guest, 115)?), vec![3, 1]);
    Ok(())
}

pub(crate) fn finished_invites_are_purged(f: &Fixture) -> TestResult {
    // Invite 1 (sent at 10, expiring at 110) is withdrawn at 50; invite 2 to user 3
    // is answered at 60; invite 3 to user 4 expires unanswered at 110; invite 4 to
    // user 5 is pending until 1 100.
    let withdrawn = setup(f)?;
    let host = new_user(1).0.id;
    f.accounts.withdraw_invite(withdrawn.id, 50)?;
    let (kid, late, pending) = (register(f, 3)?, register(f, 4)?, register(f, 5)?);
    let answered = new_invite(2, withdrawn.family, host, kid, 20);
    f.accounts.create_invite(&answered)?;
    f.accounts
        .answer_invite(answered.id, false, 60, usize::MAX)?;
    let expired = new_invite(3, withdrawn.family, host, late, 10);
    f.accounts.create_invite(&expired)?;
    let open = NewInvite {
        expires_at: 1_100,
        ..new_invite(4, withdrawn.family, host, pending, 10)
    };
    f.accounts.create_invite(&open)?;

    // Before 50 nothing is finished.
    assert_eq!(f.accounts.purge_finished(0, 50)?, 0);
    // Closed before 61: the withdrawn and the answered ones.
    assert_eq!(f.accounts.purge_finished(0, 61)?, 2);
    assert_eq!(f.accounts.invite(withdrawn.id, 61)?, None);
    assert_eq!(f.accounts.invite(answered.id, 61)?, None);
    assert!(f.accounts.invite(expired.id, 61)?.is_some());
    // Expired before 111: the unanswered one; the open one stays.
    assert_eq!(f.accounts.purge_finished(0, 111)?, 1);
    assert_eq!(f.accounts.invite(expired.id, 111)?, None);
    assert_eq!(
        f.accounts.invite(open.id, 111)?.map(|i| i.state),
        Some(InviteState::Pending)
    );
    assert_eq!(f.accounts.invites_for(pending, 111)?.len(), 1);
    Ok(())
}

pub(crate) fn pending_invites_are_capped(f: &Fixture) -> TestResult {
    let limits = InviteLimits {
        per_invitee: 2,
        per_family: 3,
        per_pair: usize::MAX,
    };
    // Families 1, 2 and 3 (hosts 1, 2, 3); users 4 to 8 to invite.
    let families = [
        family_with_host(f, 1, 1)?,
        family_with_host(f, 2, 2)?,
        family_with_host(f, 3, 3)?,
    ];
    let hosts = [new_user(1).0.id, new_user(2).0.id, new_user(3).0.id];
    let mut people = Vec::new();
    for n in 4..=8 {
        people.push(register(f, n)?);
    }
    let send = |n: u8, i: usize, to: UserId, at: u64| {
        f.accounts
            .create_invite_within(&new_invite(n, families[i], hosts[i], to, at), limits)
    };
    // Per invitee: two families invite user 4, the third is refused.
    send(1, 0, people[0], 10)?;
    send(2, 1, people[0], 10)?;
    assert!(matches!(
        send(3, 2, people[0], 10),
        Err(StoreError::TooManyInvites)
    ));
    assert_eq!(f.accounts.invite(InviteId([3; 16]), 10)?, None);
    assert_eq!(f.accounts.invites_for(people[0], 10)?.len(), 2);
    // Per family: family 1 has one out; two more, then the fourth is refused.
    send(4, 0, people[1], 10)?;
    send(5, 0, people[2], 10)?;
    assert!(matches!(
        send(6, 0, people[3], 10),
        Err(StoreError::TooManyInvites)
    ));
    assert_eq!(f.accounts.invites_of_family(families[0], 10)?.len(), 3);
    // Only pending, unexpired invites count: answered, withdrawn or expired ones free
    // their place.
    f.accounts
        .answer_invite(InviteId([1; 16]), false, 20, usize::MAX)?;
    send(7, 2, people[0], 20)?;
    f.accounts.withdraw_invite(InviteId([4; 16]), 20)?;
    send(8, 0, people[3], 20)?;
    // Invites sent at 10 expire at 110.
    send(9, 0, people[4], 110)?;
    // Without caps, nothing is refused.
    f.accounts
        .create_invite(&new_invite(10, families[1], hosts[1], people[4], 110))?;
    Ok(())
}

pub(crate) fn racing_invites_respect_the_cap(f: &Fixture) -> TestResult {
    let limits = InviteLimits {
        per_invitee: 3,
        per_family: usize::MAX,
        per_pair: usize::MAX,
    };
    let invitee = register(f, 20)?;
    let mut sent = Vec::new();
    for n in 1..=8u8 {
        let family = family_with_host(f, n, n)?;
        sent.push(new_invite(n, family, new_user(n).0.id, invitee, 10));
    }
    let accounts = &f.accounts;
    let results = std::thread::scope(|scope| {
        let tasks: Vec<_> = sent
            .iter()
            .map(|invite| scope.spawn(move || accounts.create_invite_within(invite, limits)))
            .collect();
        tasks
            .into_iter()
            .map(|t| t.join().map_err(|_| "an invite thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut created = 0;
    for result in results {
        match result {
            Ok(()) => created += 1,
            Err(StoreError::TooManyInvites) => {}
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(created, 3);
    assert_eq!(f.accounts.invites_for(invitee, 10)?.len(), 3);
    Ok(())
}

pub(crate) fn sending_and_withdrawing_in_a_loop_is_capped(f: &Fixture) -> TestResult {
    let limits = InviteLimits {
        per_pair: 3,
        ..InviteLimits::UNLIMITED
    };
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let invitee = register(f, 2)?;
    let day = INVITE_PAIR_WINDOW_MS;
    // Three invites sent and withdrawn within a day; the fourth is refused.
    for n in 1..=3u8 {
        let at = 1_000 + u64::from(n);
        let invite = new_invite(n, family, host, invitee, at);
        f.accounts.create_invite_within(&invite, limits)?;
        f.accounts.withdraw_invite(invite.id, at)?;
    }
    let fourth = new_invite(4, family, host, invitee, 1_010);
    assert!(matches!(
        f.accounts.create_invite_within(&fourth, limits),
        Err(StoreError::TooManyInvites)
    ));
    // Another person, or another family, is not held up.
    let other = register(f, 3)?;
    f.accounts
        .create_invite_within(&new_invite(5, family, host, other, 1_010), limits)?;
    // A day after the first, there is room again.
    let later = new_invite(6, family, host, invitee, 1_001 + day);
    f.accounts.create_invite_within(&later, limits)?;
    Ok(())
}

pub(crate) fn the_invite_list_is_mine_then_each_familys_once(f: &Fixture) -> TestResult {
    let family1 = family_with_host(f, 1, 1)?;
    let family2 = family_with_host(f, 2, 2)?;
    let [host1, host2] = [new_user(1).0.id, new_user(2).0.id];
    let me = register(f, 3)?;
    let [four, five, six] = [register(f, 4)?, register(f, 5)?, register(f, 6)?];
    let [family3, family4] = [family_id(3), family_id(4)];
    for family in [family3, family4] {
        f.accounts.create_family(family, six, 10, usize::MAX)?;
    }
    // Family 2 joined first, then family 1.
    join(f, 20, family2, host2, me, 12)?;
    join(f, 21, family1, host1, me, 14)?;
    for (n, family, inviter, invitee, at) in [
        (1, family1, host1, four, 30),
        (2, family1, host1, five, 20), // expired by 125
        (3, family2, host2, four, 40),
        (4, family3, six, me, 50),
        (6, family4, six, me, 45),
        (8, family2, host2, five, 35), // withdrawn
        (9, family3, six, four, 55),   // not a family of mine
    ] {
        f.accounts
            .create_invite(&new_invite(n, family, inviter, invitee, at))?;
    }
    f.accounts.withdraw_invite(InviteId([8; 16]), 36)?;
    let ids = |list: Vec<InviteInfo>| list.iter().map(|i| i.invite.0[0]).collect::<Vec<_>>();
    // Mine oldest first, then family 2's, then family 1's.
    assert_eq!(ids(f.accounts.invites_seen_by(me, 125)?), vec![6, 4, 3, 1]);
    assert_eq!(ids(f.accounts.invites_seen_by(four, 125)?), vec![1, 3, 9]);
    assert_eq!(ids(f.accounts.invites_seen_by(host1, 125)?), vec![1]);
    assert_eq!(ids(f.accounts.invites_seen_by(host1, 50)?), vec![2, 1]);
    // The same as its definition, invites whole.
    for (user, now) in [(me, 125), (me, 31), (four, 125), (host2, 125), (six, 125)] {
        let mut expected = f.accounts.invites_for(user, now)?;
        for family in f.accounts.families_of(user)? {
            expected.extend(f.accounts.invites_of_family(family.id, now)?);
        }
        let mut seen = std::collections::HashSet::new();
        expected.retain(|i| seen.insert(i.invite));
        assert_eq!(f.accounts.invites_seen_by(user, now)?, expected);
    }
    // A deleted family's invites are not listed; nor is anything for a stranger.
    f.accounts.delete_family(family1, 126)?;
    assert_eq!(ids(f.accounts.invites_seen_by(me, 127)?), vec![6, 4, 3]);
    assert!(
        f.accounts
            .invites_seen_by(new_user(9).0.id, 127)?
            .is_empty()
    );
    Ok(())
}

/// The same invite list asked again, with each kind of change between the asks:
/// every answer is what was written before it (a store may keep answers; none may
/// outlive a change).
pub(crate) fn the_invite_list_follows_every_change(f: &Fixture) -> TestResult {
    let family = family_with_host(f, 1, 1)?;
    let host = new_user(1).0.id;
    let [kid, aunt] = [register(f, 2)?, register(f, 3)?];
    let ids = |list: Vec<InviteInfo>| list.iter().map(|i| i.invite.0[0]).collect::<Vec<_>>();
    let list = |user, now| f.accounts.invites_seen_by(user, now).map(ids);
    assert_eq!(list(kid, 5)?, Vec::<u8>::new());
    assert_eq!(list(kid, 6)?, Vec::<u8>::new());

    // Sent (expiring at 110): the invitee and the family see it.
    f.accounts
        .create_invite(&new_invite(1, family, host, kid, 10))?;
    assert_eq!(list(kid, 11)?, vec![1]);
    assert_eq!(list(host, 11)?, vec![1]);
    // The family's document written meanwhile changes nothing here.
    let doc = doran_protocol::DocId::from(family);
    f.logs.append_batch(&[super::new_chunk(doc, b"a change")])?;
    assert_eq!(list(kid, 12)?, vec![1]);
    // A new nickname shows in the list at once.
    f.accounts.set_profile(kid, "막내", None)?;
    let seen = f.accounts.invites_seen_by(host, 13)?;
    assert_eq!(seen[0].invitee_nickname, "막내");
    // Expired: gone, and back for a `now` before the expiry.
    assert_eq!(list(kid, 110)?, Vec::<u8>::new());
    assert_eq!(list(kid, 109)?, vec![1]);

    // Rejected, withdrawn, accepted: gone for everyone who saw it.
    for (n, at, answer) in [(2, 120, Some(false)), (3, 130, None), (4, 140, Some(true))] {
        f.accounts
            .create_invite(&new_invite(n, family, host, aunt, at))?;
        assert_eq!(list(aunt, at + 1)?, vec![n]);
        assert_eq!(list(host, at + 1)?, vec![n]);
        match answer {
            Some(accept) => {
                f.accounts
                    .answer_invite(InviteId([n; 16]), accept, at + 2, usize::MAX)?;
            }
            None => {
                f.accounts.withdraw_invite(InviteId([n; 16]), at + 2)?;
            }
        }
        assert_eq!(list(aunt, at + 3)?, Vec::<u8>::new());
        assert_eq!(list(host, at + 3)?, Vec::<u8>::new());
    }
    // The aunt joined: the family's invites are hers to see now; once she leaves,
    // no more.
    f.accounts
        .create_invite(&new_invite(5, family, host, kid, 150))?;
    assert_eq!(list(aunt, 151)?, vec![5]);
    f.accounts.remove_member(family, aunt)?;
    assert_eq!(list(aunt, 152)?, Vec::<u8>::new());
    // The family deleted: its invites are gone.
    assert_eq!(list(kid, 153)?, vec![5]);
    f.accounts.delete_family(family, 154)?;
    assert_eq!(list(kid, 155)?, Vec::<u8>::new());
    Ok(())
}
