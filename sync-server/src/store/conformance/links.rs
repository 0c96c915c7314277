//! Link requests: a new device claims a link code and waits until a signed-in device
//! of the same user confirms or rejects it.

use doran_protocol::LinkId;

use super::{Fixture, TestResult, new_device, register};
use crate::store::{LinkState, NewDevice, StoreError};

fn code(n: u8) -> [u8; 32] {
    *blake3::hash(&[n; 8]).as_bytes()
}

fn link_id(n: u8) -> LinkId {
    LinkId([n; 16])
}

/// A device not registered anywhere, claiming at `at`.
fn newcomer(k: u8, at: u64) -> NewDevice {
    NewDevice {
        added_at: at,
        ..new_device(200, k)
    }
}

pub(crate) fn a_claim_waits_and_adds_no_device(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let first = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    let new = newcomer(1, 100);
    let claimed = f
        .accounts
        .claim_link_code(code(1), link_id(1), &new, 100)?
        .ok_or("claimed")?;
    assert_eq!(claimed.id, link_id(1));
    assert_eq!(claimed.user, user);
    assert_eq!(claimed.device, new);
    assert_eq!(
        claimed.expires_at, 1_000,
        "the request expires with its code"
    );
    assert_eq!(claimed.state, LinkState::Pending);
    assert_eq!(
        f.accounts.device(new.id)?,
        None,
        "not a device until confirmed"
    );
    assert_eq!(f.accounts.devices(user)?.len(), 1);
    assert_eq!(f.accounts.pending_links(user, 100)?, vec![claimed.clone()]);
    assert_eq!(f.accounts.link(link_id(1))?, Some(claimed.clone()));
    // The same device asking again gets the same request, whatever id it proposes.
    let again = f
        .accounts
        .claim_link_code(code(1), link_id(9), &new, 200)?
        .ok_or("again")?;
    assert_eq!(again, claimed);
    assert_eq!(f.accounts.link(link_id(9))?, None);
    Ok(())
}

pub(crate) fn a_second_claimant_is_refused(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    f.accounts
        .put_link_code(code(1), user, new_device(1, 0).id, 1_000)?;
    let new = newcomer(1, 100);
    f.accounts.claim_link_code(code(1), link_id(1), &new, 100)?;
    let thief = newcomer(2, 110);
    assert!(matches!(
        f.accounts.claim_link_code(code(1), link_id(2), &thief, 110),
        Err(StoreError::LinkClaimed)
    ));
    // Same id with another key, or the same key under another id: still refused.
    let same_id = NewDevice {
        key: thief.key,
        ..new.clone()
    };
    assert!(matches!(
        f.accounts
            .claim_link_code(code(1), link_id(2), &same_id, 110),
        Err(StoreError::LinkClaimed)
    ));
    let same_key = NewDevice {
        id: thief.id,
        ..new
    };
    assert!(matches!(
        f.accounts
            .claim_link_code(code(1), link_id(2), &same_key, 110),
        Err(StoreError::LinkClaimed)
    ));
    assert_eq!(f.accounts.link(link_id(2))?, None);
    assert_eq!(f.accounts.pending_links(user, 110)?.len(), 1);
    Ok(())
}

pub(crate) fn unusable_codes_are_not_claimed(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let first = new_device(1, 0).id;
    let new = newcomer(1, 100);
    assert_eq!(
        f.accounts.claim_link_code(code(1), link_id(1), &new, 100)?,
        None,
        "unknown"
    );
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    assert_eq!(
        f.accounts
            .claim_link_code(code(1), link_id(1), &new, 1_000)?,
        None,
        "expired"
    );
    // A taken device id or key is a conflict, and leaves the code usable.
    let taken = NewDevice {
        id: first,
        ..new.clone()
    };
    assert!(matches!(
        f.accounts.claim_link_code(code(1), link_id(1), &taken, 100),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(f.accounts.link(link_id(1))?, None);
    assert!(
        f.accounts
            .claim_link_code(code(1), link_id(1), &new, 100)?
            .is_some()
    );
    // A code of a revoked device is not claimed.
    f.accounts.put_link_code(code(2), user, first, 1_000)?;
    f.accounts.revoke_device(user, first, first, 150)?;
    assert_eq!(
        f.accounts
            .claim_link_code(code(2), link_id(2), &newcomer(2, 160), 160)?,
        None
    );
    Ok(())
}

pub(crate) fn confirming_adds_the_device(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let first = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    let new = newcomer(1, 100);
    f.accounts.claim_link_code(code(1), link_id(1), &new, 100)?;
    let answered = f.accounts.answer_link(user, link_id(1), first, true, 300)?;
    assert_eq!(answered.state, LinkState::Accepted);
    let device = f.accounts.device(new.id)?.ok_or("added")?;
    assert_eq!((device.user, device.key), (user, new.key));
    assert_eq!(device.added_at, 300, "added when confirmed");
    assert_eq!(device.revoked_at, None);
    assert!(f.accounts.pending_links(user, 300)?.is_empty());
    // The new device asking again now finds it accepted, even past the code's expiry.
    let again = f
        .accounts
        .claim_link_code(code(1), link_id(7), &new, 5_000)?
        .ok_or("again")?;
    assert_eq!(again.state, LinkState::Accepted);
    // Answered once only.
    assert!(matches!(
        f.accounts.answer_link(user, link_id(1), first, false, 310),
        Err(StoreError::LinkClosed)
    ));
    assert_eq!(f.accounts.devices(user)?.len(), 2);
    Ok(())
}

pub(crate) fn rejecting_spends_the_code(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let first = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    let new = newcomer(1, 100);
    f.accounts.claim_link_code(code(1), link_id(1), &new, 100)?;
    let answered = f
        .accounts
        .answer_link(user, link_id(1), first, false, 300)?;
    assert_eq!(answered.state, LinkState::Rejected);
    assert_eq!(f.accounts.device(new.id)?, None);
    assert!(f.accounts.pending_links(user, 300)?.is_empty());
    let again = f
        .accounts
        .claim_link_code(code(1), link_id(1), &new, 310)?
        .ok_or("again")?;
    assert_eq!(again.state, LinkState::Rejected);
    assert!(matches!(
        f.accounts
            .claim_link_code(code(1), link_id(2), &newcomer(2, 320), 320),
        Err(StoreError::LinkClaimed)
    ));
    assert!(matches!(
        f.accounts.answer_link(user, link_id(1), first, true, 330),
        Err(StoreError::LinkClosed)
    ));
    assert_eq!(f.accounts.device(new.id)?, None);
    Ok(())
}

pub(crate) fn expired_requests_cannot_be_answered(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let first = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    let new = newcomer(1, 100);
    f.accounts.claim_link_code(code(1), link_id(1), &new, 100)?;
    assert!(f.accounts.pending_links(user, 1_000)?.is_empty());
    assert!(matches!(
        f.accounts.answer_link(user, link_id(1), first, true, 1_000),
        Err(StoreError::LinkExpired)
    ));
    assert_eq!(f.accounts.device(new.id)?, None);
    let again = f
        .accounts
        .claim_link_code(code(1), link_id(1), &new, 1_000)?
        .ok_or("again")?;
    assert_eq!(
        again.state,
        LinkState::Pending,
        "pending, and past its expiry"
    );
    Ok(())
}

pub(crate) fn only_the_users_live_devices_answer(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let other = register(f, 2)?;
    let first = new_device(1, 0).id;
    let stranger = new_device(2, 0).id;
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    let new = newcomer(1, 100);
    f.accounts.claim_link_code(code(1), link_id(1), &new, 100)?;
    // Another account, with its own device or with this user's device id.
    assert!(matches!(
        f.accounts
            .answer_link(other, link_id(1), stranger, true, 200),
        Err(StoreError::NotFound("link"))
    ));
    assert!(matches!(
        f.accounts.answer_link(other, link_id(1), first, true, 200),
        Err(StoreError::NotFound("device"))
    ));
    assert!(matches!(
        f.accounts
            .answer_link(user, link_id(1), stranger, true, 200),
        Err(StoreError::NotFound("device"))
    ));
    assert!(matches!(
        f.accounts.answer_link(user, link_id(9), first, true, 200),
        Err(StoreError::NotFound("link"))
    ));
    assert!(f.accounts.pending_links(other, 200)?.is_empty());
    // A second device of the user, revoked, cannot answer either.
    let second = new_device(1, 1);
    f.accounts.add_device(user, &second)?;
    f.accounts.revoke_device(user, second.id, first, 150)?;
    assert!(matches!(
        f.accounts
            .answer_link(user, link_id(1), second.id, true, 200),
        Err(StoreError::DeviceRevoked)
    ));
    // Nothing changed.
    assert_eq!(f.accounts.device(new.id)?, None);
    assert_eq!(
        f.accounts.link(link_id(1))?.ok_or("link")?.state,
        LinkState::Pending
    );
    f.accounts.answer_link(user, link_id(1), first, true, 200)?;
    Ok(())
}

pub(crate) fn a_refused_confirmation_changes_nothing(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let first = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    let new = newcomer(1, 100);
    f.accounts.claim_link_code(code(1), link_id(1), &new, 100)?;
    // The key got registered meanwhile (recovery on the same device, say): accepting
    // conflicts, and the request stays pending — one transaction, all or nothing.
    let other = register(f, 2)?;
    f.accounts.add_device(other, &new)?;
    assert!(matches!(
        f.accounts.answer_link(user, link_id(1), first, true, 200),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(f.accounts.device(new.id)?.ok_or("dev")?.user, other);
    let pending = f.accounts.pending_links(user, 200)?;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, LinkState::Pending);
    Ok(())
}

pub(crate) fn pending_links_are_oldest_first(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let first = new_device(1, 0).id;
    let late = newcomer(1, 300);
    let early = newcomer(2, 100);
    let expiring = newcomer(3, 200);
    // One code at a time: each is claimed before the next is issued.
    for (n, device) in [(1, &late), (2, &early), (3, &expiring)] {
        f.accounts.put_link_code(code(n), user, first, 1_000)?;
        f.accounts
            .claim_link_code(code(n), link_id(n), device, 300)?;
    }
    let ids: Vec<LinkId> = f
        .accounts
        .pending_links(user, 400)?
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, vec![link_id(2), link_id(3), link_id(1)]);
    Ok(())
}

pub(crate) fn a_new_code_replaces_the_unclaimed_ones(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let other = register(f, 2)?;
    let first = new_device(1, 0).id;
    f.accounts.put_link_code(code(1), user, first, 1_000)?;
    f.accounts
        .put_link_code(code(9), other, new_device(2, 0).id, 1_000)?;
    // Code 2 is claimed, then codes 3 and 4 are issued.
    f.accounts.put_link_code(code(2), user, first, 1_000)?;
    let waiting = f
        .accounts
        .claim_link_code(code(2), link_id(2), &newcomer(2, 100), 100)?
        .ok_or("claimed")?;
    f.accounts.put_link_code(code(3), user, first, 1_000)?;
    f.accounts.put_link_code(code(4), user, first, 1_000)?;
    // Only the last unclaimed code works; the claimed one keeps its request, and
    // another user's code is untouched.
    for old in [1, 3] {
        assert_eq!(
            f.accounts
                .claim_link_code(code(old), link_id(old), &newcomer(old, 100), 100)?,
            None,
            "code {old}"
        );
    }
    assert!(
        f.accounts
            .claim_link_code(code(4), link_id(4), &newcomer(4, 100), 100)?
            .is_some()
    );
    assert!(
        f.accounts
            .claim_link_code(code(9), link_id(9), &newcomer(9, 100), 100)?
            .is_some()
    );
    assert_eq!(f.accounts.link(link_id(2))?, Some(waiting.clone()));
    let again = f
        .accounts
        .claim_link_code(code(2), link_id(7), &newcomer(2, 100), 200)?;
    assert_eq!(again, Some(waiting));
    Ok(())
}

pub(crate) fn expired_codes_and_requests_are_purged(f: &Fixture) -> TestResult {
    let user = register(f, 1)?;
    let other = register(f, 2)?;
    // User 1: a request claimed from a code expiring at 1 000; user 2: an unclaimed
    // code expiring at 1 000, and a newer one at 5 000.
    f.accounts
        .put_link_code(code(1), user, new_device(1, 0).id, 1_000)?;
    f.accounts
        .claim_link_code(code(1), link_id(1), &newcomer(1, 100), 100)?
        .ok_or("claimed")?;
    f.accounts
        .put_link_code(code(2), other, new_device(2, 0).id, 1_000)?;
    let claimed_late = f
        .accounts
        .claim_link_code(code(2), link_id(2), &newcomer(2, 100), 100)?
        .ok_or("claimed")?;
    f.accounts
        .put_link_code(code(3), other, new_device(2, 0).id, 5_000)?;

    // Nothing has expired before 1 000.
    assert_eq!(f.accounts.purge_finished(1_000, 0)?, 0);
    assert!(f.accounts.link(link_id(1))?.is_some());

    // Past it, both requests and their codes go; the newer code stays and works.
    assert_eq!(f.accounts.purge_finished(1_001, 0)?, 4);
    assert_eq!(f.accounts.link(link_id(1))?, None);
    assert_eq!(f.accounts.link(link_id(2))?, None);
    assert_eq!(f.accounts.pending_links(other, 100)?, vec![]);
    assert_eq!(
        f.accounts
            .claim_link_code(code(2), link_id(5), &claimed_late.device, 100)?,
        None,
        "a purged code is unknown"
    );
    assert!(
        f.accounts
            .claim_link_code(code(3), link_id(3), &newcomer(3, 100), 100)?
            .is_some()
    );
    assert_eq!(f.accounts.purge_finished(1_001, 0)?, 0);
    Ok(())
}
