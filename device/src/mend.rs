//! Membership changes that stopped half-way, finished.
//!
//! Creating a family and accepting an invite each ask the relay first (it decides who
//! may read and write) and then write the family document. An app killed, or an
//! answer lost on a train, between the two leaves a family the relay lists but whose
//! document lacks the user: no first change at all for a family created here, no
//! member entry for an invite accepted — and every edit there is refused as "not a
//! member". Leaving goes the other way (the entry first, then the relay), and must
//! not be undone by the mending.
//!
//! So the device writes down what it is about to do (`creating`, `leaving`) before it
//! asks, and after each sign-in, once caught up, [`mend`] finishes what the relay's
//! list says was done: the first change of a family this device was creating (only
//! this device can write it — a second first change is refused by every device, see
//! `client-core/src/rules.rs`), and the user's own member entry for any family that
//! lacks it, under the 호칭 noted when the invite was accepted (`joining`; the relay
//! holds none since protocol 7) or, on another of the user's devices, the user's
//! nickname (any of the user's devices may write it: the document keeps one).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use doran_client_core::{group::KnownDevices, model::Role, store::LocalStore, sync::StoreHost};
use doran_protocol::{FamilyId, FamilySummary, Request, Response, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    device::{Session, Shared, lock},
    events::{DeviceEvent, Part},
};

/// What this device started and has not finished, kept in the store's meta table.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Unfinished {
    /// Families asked of the relay and not written yet, by family hex.
    #[serde(default)]
    creating: BTreeMap<String, Creating>,
    /// Families whose member entry this device removed before telling the relay.
    #[serde(default)]
    leaving: BTreeSet<String>,
    /// Families whose invite this device accepted and whose member entry it has not
    /// written yet: the relay holds no 호칭 to take it from (protocol 7).
    #[serde(default)]
    joining: BTreeMap<String, Joining>,
}

/// An invite being accepted: what the member entry will be written from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Joining {
    /// The 호칭 chosen, or the one the card proposed as this device opened it.
    pub(crate) name: Option<String>,
    /// The invite, with its card: one this device could not open before accepting
    /// (no key package of it was sealed to) opens once it is in the family, with the
    /// epochs' keys a member's device passes on.
    pub(crate) invite: Option<doran_protocol::InviteInfo>,
}

/// A family being created: what its first change will say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Creating {
    pub(crate) title: String,
    pub(crate) my_name: String,
    /// Its documents are sealed end to end (its key group starts with it).
    #[serde(default)]
    pub(crate) sealed: bool,
}

/// How long a device of the user's that did not accept an invite leaves writing the
/// member entry to the one that did (ms).
const JOIN_GRACE_MS: u64 = 10 * 60 * 1000;

/// Serialises the read-modify-write of the record (the facade's calls run at once).
static RECORD: Mutex<()> = Mutex::new(());

fn key(user: UserId) -> String {
    format!("families/unfinished/{}", user.to_hex())
}

fn read(store: &dyn LocalStore, user: UserId) -> Unfinished {
    match store.get_meta(&key(user)) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the record of unfinished family changes is unreadable");
            Unfinished::default()
        }),
        Ok(None) => Unfinished::default(),
        Err(e) => {
            tracing::warn!(error = %e, "the record of unfinished family changes cannot be read");
            Unfinished::default()
        }
    }
}

/// Changes the record; durable when this returns `Ok`.
fn update<T>(
    store: &dyn LocalStore,
    user: UserId,
    change: impl FnOnce(&mut Unfinished) -> T,
) -> doran_client_core::store::Result<T> {
    let _held = lock(&RECORD);
    let mut record = read(store, user);
    let out = change(&mut record);
    if record.creating.is_empty() && record.leaving.is_empty() && record.joining.is_empty() {
        store.delete_meta(&key(user))?;
    } else {
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        store.set_meta(&key(user), &bytes)?;
    }
    Ok(out)
}

/// Notes that `family` is about to be created, before the relay is asked. A family
/// already being created with the same title and 호칭 (the answer to the first try
/// was lost) is returned instead, so trying again does not make a second family.
pub(crate) fn start_creating(
    store: &dyn LocalStore,
    user: UserId,
    family: FamilyId,
    creating: Creating,
) -> doran_client_core::store::Result<FamilyId> {
    update(store, user, |r| {
        if let Some(earlier) = r
            .creating
            .iter()
            .find(|(_, c)| **c == creating)
            .and_then(|(hex, _)| hex.parse().ok())
        {
            return earlier;
        }
        r.creating.insert(family.to_hex(), creating);
        family
    })
}

/// The family is written (or the relay refused it for good): nothing left to do.
pub(crate) fn done_creating(
    store: &dyn LocalStore,
    user: UserId,
    family: FamilyId,
) -> doran_client_core::store::Result<()> {
    update(store, user, |r| {
        r.creating.remove(&family.to_hex());
    })
}

/// Notes that this device is leaving `family`, before it removes its entry.
pub(crate) fn start_leaving(
    store: &dyn LocalStore,
    user: UserId,
    family: FamilyId,
) -> doran_client_core::store::Result<()> {
    update(store, user, |r| {
        r.leaving.insert(family.to_hex());
    })
}

/// The family is left (or forgotten): nothing left to do.
pub(crate) fn done_leaving(
    store: &dyn LocalStore,
    user: UserId,
    family: FamilyId,
) -> doran_client_core::store::Result<()> {
    update(store, user, |r| {
        r.leaving.remove(&family.to_hex());
    })
}

/// Notes how the user joins `family`, before the invite is accepted.
pub(crate) fn start_joining(
    store: &dyn LocalStore,
    user: UserId,
    family: FamilyId,
    joining: Joining,
) -> doran_client_core::store::Result<()> {
    update(store, user, |r| {
        r.joining.insert(family.to_hex(), joining);
    })
}

/// The user's member entry in `family` is written (or the invite was refused).
pub(crate) fn done_joining(
    store: &dyn LocalStore,
    user: UserId,
    family: FamilyId,
) -> doran_client_core::store::Result<()> {
    update(store, user, |r| {
        r.joining.remove(&family.to_hex());
    })
}

/// What was noted for joining `family`, if anything.
pub(crate) fn joining(store: &dyn LocalStore, user: UserId, family: FamilyId) -> Option<Joining> {
    read(store, user).joining.remove(&family.to_hex())
}

/// What a member entry's 호칭 may come from, besides what was noted.
pub(crate) struct JoinFrom<'a> {
    /// The 호칭 the user chose as they accepted (first of all).
    pub(crate) chosen: Option<String>,
    /// The invite as the relay answered the acceptance.
    pub(crate) answered: Option<&'a doran_protocol::InviteInfo>,
    /// The inviters' devices, to check a card's signature against.
    pub(crate) known: &'a KnownDevices,
}

/// The 호칭 the user's entry in `family` gets: the one chosen, else the one noted
/// when the invite was accepted, else the one the invite's card proposes (noted, or
/// as answered), opened now that this device is in the family — else the user's
/// nickname; made free in the family (a number added if another member has it: every
/// device refuses an entry with another member's 호칭, and the member can change it
/// after).
pub(crate) fn joining_as(
    host: &StoreHost,
    store: &dyn LocalStore,
    me: UserId,
    family: FamilyId,
    from: JoinFrom<'_>,
) -> Result<String, doran_client_core::sync::HostError> {
    let noted = joining(store, me, family);
    let from_card = |invite: &doran_protocol::InviteInfo| {
        crate::device::invites::open_card(host, invite, from.known).map(|c| c.proposed_name)
    };
    let wanted = from
        .chosen
        .or_else(|| noted.as_ref().and_then(|n| n.name.clone()))
        .or_else(|| {
            noted
                .as_ref()
                .and_then(|n| n.invite.as_ref())
                .and_then(from_card)
        })
        .or_else(|| from.answered.and_then(from_card))
        .or_else(|| host.profile(me).ok().flatten().map(|p| p.nickname))
        .unwrap_or_default();
    let mine = me.to_hex();
    let taken: BTreeSet<String> = host.read_family(family, |fd| {
        fd.view()
            .members
            .iter()
            .filter(|(user, _)| **user != mine)
            .map(|(_, m)| m.name.clone())
            .collect()
    })?;
    Ok(doran_client_core::validate::free_member_name(
        &wanted, &taken,
    ))
}

/// What one family needs, as this device's copy shows it.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// No first change here: write it, if this device was creating the family.
    FirstChange(Creating),
    /// A first change without the user's entry: write it.
    /// (Whether this device noted the join: another device of the user's leaves
    /// the entry to the one that accepted, for [`JOIN_GRACE_MS`].)
    MyEntry { noted: bool },
    /// The user hosts it: the other members its document lists, to drop those the
    /// relay no longer does (a removal whose document edit was cut short).
    Hosted(Vec<UserId>),
}

/// Finishes what the relay's list says was done and the family documents do not show
/// yet. Run by the pump once caught up after each sign-in; failures are logged and
/// tried again at the next one.
pub(crate) async fn mend(shared: &Arc<Shared>, session: &Arc<Session>) {
    let me = session.account.user;
    let store = Arc::clone(&shared.store);
    let host = Arc::clone(&session.host);
    // Read before the relay is asked: an entry is only ever written after the relay
    // made its member one, so a member listed here and missing from the relay's later
    // list has left or been removed — never joined since.
    let needs = crate::task::spawn_blocking(move || needs(&*store, &host, me))
        .await
        .unwrap_or_default();
    if needs.is_empty() {
        return;
    }
    let relay = if needs
        .iter()
        .any(|(_, n)| !matches!(n, Need::FirstChange(_)))
    {
        relay_families(session).await
    } else {
        None
    };
    for (family, need) in needs {
        let summary = relay.as_ref().and_then(|r| r.get(&family));
        let written = match need {
            Need::FirstChange(c) => first_change(shared, session, family, c).await,
            Need::MyEntry { noted } => match summary.and_then(|f| f.member(&me)) {
                // The device that accepted knows the 호칭 (from the card, or chosen);
                // another of the user's devices, which never saw the card, writes
                // the entry only if that one did not in time.
                Some(entry)
                    if entry.role == doran_protocol::Role::Member
                        && (noted
                            || entry.joined_at.saturating_add(JOIN_GRACE_MS)
                                <= u64::try_from(crate::device::now_ms()).unwrap_or(0)) =>
                {
                    my_entry(shared, session, family).await
                }
                // The relay no longer lists the user there (or as the host, whose
                // entry only the first change writes): nothing to add.
                _ => false,
            },
            Need::Hosted(listed) => match summary {
                Some(f) => {
                    let gone: Vec<UserId> = listed
                        .into_iter()
                        .filter(|u| f.member(u).is_none())
                        .collect();
                    drop_entries(shared, session, family, gone).await
                }
                None => false,
            },
        };
        if written {
            let pending = shared.store.pending_count().unwrap_or(0);
            session.driver.note_pending(pending);
            session.driver.local_change();
            shared.emit(DeviceEvent::FamilyChanged {
                family: family.to_hex(),
                parts: vec![Part::Family, Part::Members],
                local: true,
            });
        }
    }
}

/// What each of the user's families needs, from this device's copies.
fn needs(store: &dyn LocalStore, host: &StoreHost, me: UserId) -> Vec<(FamilyId, Need)> {
    let record = read(store, me);
    let families = host.families().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the families cannot be listed for mending");
        Vec::new()
    });
    // A join noted for an invite that expired before it was accepted (the answer was
    // lost, and the relay never made the user a member): nothing will finish it.
    let now = u64::try_from(crate::device::now_ms()).unwrap_or(0);
    for (hex, noted) in &record.joining {
        let expired = noted.invite.as_ref().is_some_and(|i| i.expires_at < now);
        if expired
            && !families.iter().any(|f| f.to_hex() == *hex)
            && let Ok(family) = hex.parse()
            && let Err(e) = done_joining(store, me, family)
        {
            tracing::warn!(%family, error = %e, "an expired join stays noted");
        }
    }
    let mine = me.to_hex();
    let mut needs = Vec::new();
    for family in families {
        let hex = family.to_hex();
        // The view (open, or cached) answers for nearly every family without loading
        // its history; only one that lacks the user is opened.
        let view = match host.open_view(family) {
            Ok(Some(v)) => Some(v),
            _ => doran_client_core::family_store::cached_family(store, family.into())
                .ok()
                .flatten(),
        };
        let shape = match view {
            Some(v) if v.members.contains_key(&mine) => Ok((true, Some(v))),
            _ => host.read_family(family, |fd| {
                let root = doran_client_core::rules::host_of(fd.replica_mut().doc()).is_some();
                let view = fd.view();
                (root, view.members.contains_key(&mine).then(|| view.clone()))
            }),
        };
        let need = match shape {
            Err(e) => {
                tracing::warn!(%family, error = %e, "a family cannot be read for mending");
                continue;
            }
            Ok((true, Some(view))) => {
                if record.creating.contains_key(&hex) {
                    // Written, and the app stopped before it said so.
                    if let Err(e) = done_creating(store, me, family) {
                        tracing::warn!(%family, error = %e, "a finished creation stays noted");
                    }
                }
                if record.joining.contains_key(&hex) {
                    // Written (here before the app stopped, or by another device of
                    // the user's).
                    if let Err(e) = done_joining(store, me, family) {
                        tracing::warn!(%family, error = %e, "a finished join stays noted");
                    }
                }
                if view
                    .members
                    .get(&mine)
                    .is_some_and(|m| m.role == Role::Host)
                {
                    let others = view
                        .members
                        .keys()
                        .filter(|u| **u != mine)
                        .filter_map(|u| u.parse().ok())
                        .collect::<Vec<UserId>>();
                    if others.is_empty() {
                        continue;
                    }
                    Need::Hosted(others)
                } else {
                    continue;
                }
            }
            Ok((false, _)) => match record.creating.get(&hex) {
                Some(c) => Need::FirstChange(c.clone()),
                // Created elsewhere: its first change comes from there.
                None => continue,
            },
            Ok((true, None)) if record.leaving.contains(&hex) => continue,
            Ok((true, None)) => Need::MyEntry {
                noted: record.joining.contains_key(&hex),
            },
        };
        needs.push((family, need));
    }
    needs
}

/// Removes the entries of members the relay no longer lists (the user hosts the family).
async fn drop_entries(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    family: FamilyId,
    gone: Vec<UserId>,
) -> bool {
    let mut written = false;
    for user in gone {
        let host = Arc::clone(&session.host);
        let now = shared.now();
        written |= write(family, "a removal that stopped half-way", move || {
            host.edit_family(family, |fd| fd.remove_member(user, now))?;
            Ok(())
        })
        .await;
    }
    written
}

/// Writes the first change of a family this device asked the relay to create.
async fn first_change(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    family: FamilyId,
    c: Creating,
) -> bool {
    let me = session.account.user;
    let store = Arc::clone(&shared.store);
    let host = Arc::clone(&session.host);
    let now = shared.now();
    write(
        family,
        "a family created before an interruption",
        move || {
            host.create_family_as(family, (&c.title, &c.my_name), c.sealed, now)?;
            done_creating(&*store, me, family)?;
            Ok(())
        },
    )
    .await
}

/// Adds the user's own member entry to a family the relay says they joined, under
/// the 호칭 noted when the invite was accepted (see [`joining_as`]).
async fn my_entry(shared: &Arc<Shared>, session: &Arc<Session>, family: FamilyId) -> bool {
    let me = session.account.user;
    let inviter = {
        let store = Arc::clone(&shared.store);
        crate::task::spawn_blocking(move || {
            // Only a card that opens once in the family needs its inviter's devices.
            joining(&*store, me, family)
                .filter(|n| n.name.is_none())
                .and_then(|n| n.invite.map(|i| i.inviter))
        })
        .await
        .ok()
        .flatten()
    };
    let known =
        crate::device::invites::inviters_known(&shared.store, &session.driver, inviter).await;
    let host = Arc::clone(&session.host);
    let store = Arc::clone(&shared.store);
    let now = shared.now();
    write(family, "a join that stopped half-way", move || {
        let from = JoinFrom {
            chosen: None,
            answered: None,
            known: &known,
        };
        let name = joining_as(&host, &*store, me, family, from)?;
        host.edit_family(family, |fd| fd.add_member(me, &name, now))?;
        done_joining(&*store, me, family)?;
        Ok(())
    })
    .await
}

/// Runs one mending write off the runtime's threads; whether it was written (a failure
/// is logged, and tried again after the next sign-in).
async fn write(
    family: FamilyId,
    what: &'static str,
    f: impl FnOnce() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
) -> bool {
    match crate::task::spawn_blocking(f).await {
        Ok(Ok(())) => {
            tracing::info!(%family, "{what}: finished");
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(%family, error = %e, "{what}: cannot be finished");
            false
        }
        Err(e) => {
            tracing::warn!(%family, error = %e, "{what}: the write failed");
            false
        }
    }
}

/// The user's families as the relay lists them, with their members.
async fn relay_families(session: &Arc<Session>) -> Option<BTreeMap<FamilyId, FamilySummary>> {
    match session.driver.request(Request::ListFamilies).await {
        Ok(Response::Families(list)) => Some(list.into_iter().map(|f| (f.family, f)).collect()),
        Ok(other) => {
            tracing::warn!(?other, "an unexpected answer to the list of families");
            None
        }
        Err(e) => {
            tracing::info!(error = %e, "the families cannot be listed; mending waits");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use doran_client_core::store::{LocalStore, MemoryStore};
    use doran_protocol::{FamilyId, UserId};

    use super::{
        Creating, Joining, done_creating, done_joining, done_leaving, joining, key, read,
        start_creating, start_joining, start_leaving,
    };

    fn creating(title: &str) -> Creating {
        Creating {
            title: title.into(),
            my_name: "엄마".into(),
            sealed: false,
        }
    }

    #[test]
    fn trying_again_reuses_the_family_and_finishing_forgets_it() {
        let store = MemoryStore::new();
        let me = UserId([1; 16]);
        let (first, second) = (FamilyId([2; 16]), FamilyId([3; 16]));
        assert_eq!(
            start_creating(&store, me, first, creating("기차 가족")).expect("noted"),
            first
        );
        // The same family again (its answer was lost): the same id.
        assert_eq!(
            start_creating(&store, me, second, creating("기차 가족")).expect("noted"),
            first
        );
        // Another family: its own.
        assert_eq!(
            start_creating(&store, me, second, creating("바다 가족")).expect("noted"),
            second
        );
        start_leaving(&store, me, FamilyId([4; 16])).expect("noted");
        let record = read(&store, me);
        assert_eq!(record.creating.len(), 2);
        assert_eq!(record.leaving.len(), 1);
        // Another user of the same store sees none of it.
        assert!(read(&store, UserId([9; 16])).creating.is_empty());

        done_creating(&store, me, first).expect("done");
        done_creating(&store, me, second).expect("done");
        done_leaving(&store, me, FamilyId([4; 16])).expect("done");
        assert_eq!(
            store.get_meta(&key(me)).expect("meta"),
            None,
            "nothing left behind"
        );
    }

    #[test]
    fn an_unreadable_record_is_started_afresh() {
        let store = MemoryStore::new();
        let me = UserId([1; 16]);
        store.set_meta(&key(me), b"{not json").expect("meta");
        let family = FamilyId([2; 16]);
        assert_eq!(
            start_creating(&store, me, family, creating("기차 가족")).expect("noted"),
            family
        );
        assert_eq!(read(&store, me).creating.len(), 1);
    }

    #[test]
    fn a_join_is_noted_until_its_entry_is_written() {
        let store = MemoryStore::new();
        let me = UserId([1; 16]);
        let family = FamilyId([2; 16]);
        let noted = Joining {
            name: Some("막내".into()),
            invite: None,
        };
        start_joining(&store, me, family, noted.clone()).expect("noted");
        assert_eq!(joining(&store, me, family), Some(noted));
        assert_eq!(read(&store, me).joining.len(), 1);
        done_joining(&store, me, family).expect("done");
        assert_eq!(joining(&store, me, family), None);
        assert_eq!(
            store.get_meta(&key(me)).expect("meta"),
            None,
            "nothing left"
        );
    }
}
