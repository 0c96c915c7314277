//! The family itself and its members: title, 호칭, roles.
//!
//! The relay's membership decides who may read and write; these entries mirror it
//! with what the apps show. A member who joins writes their own entry (the host may
//! write it too); a member edits their own 호칭 and leaves; the host renames anyone
//! and removes members. Roles never change: the host is the family's creator.

use std::collections::BTreeMap;

use automerge::{ObjType, ROOT, ReadDoc, ScalarValue, Value, transaction::Transactable};
use doran_protocol::{DocId, UserId};

use super::{Edit, FamilyDoc, delete_entity, entity, map_at, put_entity, put_field};
use crate::{
    error::{DocError, Result},
    model::{INVITES_PREFIX, Member, Role},
    replica::Touched,
    validate::{self, Field},
};

/// The map in a member's entry where they publish their profile keys: the id of
/// their personal document (`doc`, 16 bytes) and the secrets of its key group
/// (`{epoch}` = 32 bytes) — the keys their personal document is sealed with, for
/// exactly the family's members to read, the family document itself being sealed to
/// them (`docs/security.md`, personal documents). Only the member writes it
/// (`crate::rules`), so the document id a member's keys are for is theirs to say, not
/// the relay's.
pub const PROFILE_KEYS: &str = "keys";

/// The key of the personal document's id in [`PROFILE_KEYS`].
pub const PROFILE_DOC: &str = "doc";

/// The first key after every invite key ('/' + 1 = '0').
const INVITES_END: &str = "i0";

/// A day, in milliseconds.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The root key of `inviter`'s invite of `invitee`.
fn invite_key(invitee: UserId, inviter: UserId) -> String {
    format!("{INVITES_PREFIX}{}/{}", invitee.to_hex(), inviter.to_hex())
}

/// At most this many profile key secrets are read from one member's entry (the
/// latest epochs).
const MAX_PROFILE_KEYS: usize = 4096;

/// Secrets of a profile key group: (epoch, secret).
pub type ProfileKeys = Vec<(u64, [u8; 32])>;

/// What a member published: their personal document and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKeys {
    /// The member's personal document.
    pub doc: DocId,
    /// The secrets of its key group, oldest epoch first.
    pub secrets: ProfileKeys,
}

impl FamilyDoc {
    /// Publishes, in this user's own member entry, their personal document's id and
    /// the secrets of its key group the entry lacks. Returns how many secrets it wrote
    /// (none and the same document: no change). A member not in the family (yet)
    /// publishes nothing.
    pub fn publish_profile_keys(
        &mut self,
        doc: DocId,
        secrets: &[(u64, [u8; 32])],
        now_ms: i64,
    ) -> Result<Edit<usize>> {
        let key = self.me.to_hex();
        if !self.view.members.contains_key(&key) {
            return Ok(Edit::unchanged(0));
        }
        let published = self.profile_keys().remove(&self.me);
        let same_doc = published.as_ref().is_some_and(|p| p.doc == doc);
        let missing: Vec<(u64, [u8; 32])> = secrets
            .iter()
            .filter(|(e, s)| {
                !published
                    .as_ref()
                    .is_some_and(|p| p.secrets.iter().any(|(pe, ps)| pe == e && ps == s))
            })
            .copied()
            .collect();
        if missing.is_empty() && same_doc {
            return Ok(Edit::unchanged(0));
        }
        self.edit("member.keys", now_ms, &[], |doc_mut| {
            let member = map_at(doc_mut, &["members", &key])?;
            let keys = match doc_mut.get(&member, PROFILE_KEYS)? {
                Some((Value::Object(ObjType::Map), id)) => id,
                _ => doc_mut.put_object(&member, PROFILE_KEYS, ObjType::Map)?,
            };
            if !same_doc {
                doc_mut.put(&keys, PROFILE_DOC, ScalarValue::Bytes(doc.0.to_vec()))?;
            }
            for (epoch, secret) in &missing {
                doc_mut.put(
                    &keys,
                    epoch.to_string(),
                    ScalarValue::Bytes(secret.to_vec()),
                )?;
            }
            Ok(missing.len())
        })
    }

    /// The profile keys each member published in their entry, with the personal
    /// document they are for (an entry without one, or malformed values, are
    /// skipped: only a member writes their own, and a wrong one makes only their own
    /// profile unreadable).
    pub fn profile_keys(&self) -> BTreeMap<UserId, PublishedKeys> {
        let doc = self.replica.doc();
        let mut out = BTreeMap::new();
        let Ok(Some((Value::Object(ObjType::Map), members))) = doc.get(ROOT, "members") else {
            return out;
        };
        let bytes = |obj: &automerge::ObjId, key: &str| -> Option<Vec<u8>> {
            match doc.get(obj, key) {
                Ok(Some((Value::Scalar(v), _))) => match v.as_ref() {
                    ScalarValue::Bytes(b) => Some(b.clone()),
                    _ => None,
                },
                _ => None,
            }
        };
        for user in doc.keys(&members) {
            let Ok(id) = user.parse::<UserId>() else {
                continue;
            };
            let Ok(Some((Value::Object(ObjType::Map), member))) = doc.get(&members, &user) else {
                continue;
            };
            let Ok(Some((Value::Object(ObjType::Map), keys))) = doc.get(&member, PROFILE_KEYS)
            else {
                continue;
            };
            let Some(personal) = bytes(&keys, PROFILE_DOC)
                .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                .map(DocId)
            else {
                continue;
            };
            let mut secrets: ProfileKeys = doc
                .keys(&keys)
                .filter_map(|epoch| {
                    let e = epoch.parse::<u64>().ok()?;
                    let secret = <[u8; 32]>::try_from(bytes(&keys, &epoch)?.as_slice()).ok()?;
                    Some((e, secret))
                })
                .collect();
            // Keys sort as text ("10" before "2"): the latest epochs are kept.
            secrets.sort_unstable_by_key(|(e, _)| *e);
            if secrets.len() > MAX_PROFILE_KEYS {
                secrets.drain(..secrets.len() - MAX_PROFILE_KEYS);
            }
            if !secrets.is_empty() {
                out.insert(
                    id,
                    PublishedKeys {
                        doc: personal,
                        secrets,
                    },
                );
            }
        }
        out
    }

    /// Renames the family (host only). Title 1–10 characters.
    pub fn rename(&mut self, title: &str, now_ms: i64) -> Result<Edit> {
        self.require_host()?;
        let title = validate::text(Field::FamilyTitle, title, validate::FAMILY_TITLE)?;
        if title == self.view.name {
            return Ok(Edit::unchanged(()));
        }
        self.edit(
            "family.rename",
            now_ms,
            &[Touched::Root("name".into())],
            |doc| {
                doc.put(ROOT, "name", title)?;
                Ok(())
            },
        )
    }

    /// Notes when the host sealed a family that was created clear (`sealed_at`, an
    /// instant at the root; only the host writes it). Made right after the device
    /// starts sealing, so this is the family document's first envelope on the relay:
    /// every other device turns to sealing when it arrives.
    pub fn mark_sealed(&mut self, now_ms: i64) -> Result<Edit> {
        self.require_host()?;
        self.edit(
            "family.seal",
            now_ms,
            &[Touched::Root("sealed_at".into())],
            |doc| {
                doc.put(ROOT, "sealed_at", now_ms)?;
                Ok(())
            },
        )
    }

    /// When the host sealed this family (it was created clear), if it did.
    pub fn sealed_at(&mut self) -> Option<i64> {
        match self.replica_mut().doc().get(ROOT, "sealed_at") {
            Ok(Some((Value::Scalar(v), _))) => match v.as_ref() {
                ScalarValue::Int(at) => Some(*at),
                _ => None,
            },
            _ => None,
        }
    }

    /// Adds a member who accepted an invite, with the 호칭 they were invited as. The
    /// joiner writes their own entry (their first change); only the host may write
    /// someone else's — every device refuses it from anyone else (`crate::rules`).
    pub fn add_member(&mut self, user: UserId, name: &str, now_ms: i64) -> Result<Edit> {
        let key = user.to_hex();
        let me_joining = user == self.me;
        if !me_joining {
            self.require_host()?;
        }
        let name = self.check_name_free(&key, name)?;
        if let Some(existing) = self.view.members.get(&key) {
            // Never overwrite a member: that would reset their role (demote a host),
            // color and joining time. Renaming is `set_member_name`.
            if existing.name == name {
                return Ok(Edit::unchanged(()));
            }
            return Err(DocError::AlreadyMember(key));
        }
        let color = self.next_member_color();
        let member = Member {
            name,
            role: Role::Member,
            color,
            joined_at: now_ms,
        };
        self.edit("member.add", now_ms, &[entity("members", &key)], |doc| {
            put_entity(doc, "members", &key, &member)
        })
    }

    /// Changes a member's 호칭 (their own, or anyone's for the host). Unique in the family.
    pub fn set_member_name(&mut self, user: UserId, name: &str, now_ms: i64) -> Result<Edit> {
        if user != self.me {
            self.require_host()?;
        }
        let key = user.to_hex();
        if !self.view.members.contains_key(&key) {
            return Err(DocError::NotMember(key));
        }
        let name = self.check_name_free(&key, name)?;
        self.edit("member.rename", now_ms, &[entity("members", &key)], |doc| {
            put_field(doc, "members", &key, "name", &name)
        })
    }

    /// Removes a member (host only; the host cannot remove themself — they delete the
    /// family instead). Their photos, comments and voices stay: they are the family's.
    pub fn remove_member(&mut self, user: UserId, now_ms: i64) -> Result<Edit> {
        self.require_host()?;
        if user == self.me {
            return Err(DocError::Forbidden("the host cannot remove themself"));
        }
        let key = user.to_hex();
        if !self.view.members.contains_key(&key) {
            return Err(DocError::NotMember(key));
        }
        // The invites of them go too: no device lets a removed member's devices in
        // again on the strength of an old invite.
        let invites = self.invite_keys_of(user);
        self.edit("member.remove", now_ms, &[entity("members", &key)], |doc| {
            for invite in &invites {
                doc.delete(ROOT, invite.as_str())?;
            }
            delete_entity(doc, "members", &key)
        })
    }

    /// Records in the family's (sealed) document that this member invited `invitee`
    /// now: every member's device — not only the inviter's — then lets the invitee's
    /// devices into the family's key group once they accept (`invited_since`), so an
    /// invitee whose devices had published no key package when the invite went out
    /// is let in by whichever member's device is online. The relay's word that
    /// someone is invited names nobody by itself: it cannot write this document.
    pub fn record_invite(&mut self, invitee: UserId, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let key = invite_key(invitee, self.me);
        self.edit(
            "member.invite",
            now_ms,
            &[Touched::Root(key.clone())],
            |doc| {
                doc.put(ROOT, key.as_str(), now_ms)?;
                Ok(())
            },
        )
    }

    /// The users a member recorded an invite of between `since_ms` and a day after
    /// `now_ms` (a time further ahead is no honest clock's, and would keep the record
    /// for ever), by an inviter who is still a member (see
    /// [`record_invite`](Self::record_invite)).
    pub fn invited_since(&self, since_ms: i64, now_ms: i64) -> std::collections::BTreeSet<UserId> {
        let until = now_ms.saturating_add(DAY_MS);
        let doc = self.replica.doc();
        doc.map_range(ROOT, INVITES_PREFIX.to_owned()..INVITES_END.to_owned())
            .filter(|item| {
                matches!(item.value, automerge::ValueRef::Scalar(automerge::ScalarValueRef::Int(at))
                    if (since_ms..=until).contains(&at))
            })
            .filter_map(|item| {
                let (invitee, inviter) = item.key.strip_prefix(INVITES_PREFIX)?.split_once('/')?;
                self.view.members.contains_key(inviter).then_some(())?;
                invitee.parse().ok()
            })
            .collect()
    }

    /// Forgets the invites of `invitee` this member may remove — their own, or every
    /// one on the host's device — once the invite was turned down or withdrawn: a
    /// record that stayed would let any member's device add that user's devices for
    /// its remaining days if the relay listed them as a member anyway. Nothing to
    /// forget is no change. Returns how many records went.
    pub fn forget_invites_of(&mut self, invitee: UserId, now_ms: i64) -> Result<Edit<usize>> {
        self.require_member()?;
        let mine = format!("/{}", self.me.to_hex());
        let host = self.is_host();
        let gone: Vec<String> = self
            .invite_keys_of(invitee)
            .into_iter()
            .filter(|key| host || key.ends_with(&mine))
            .collect();
        if gone.is_empty() {
            return Ok(Edit::unchanged(0));
        }
        let touched: Vec<Touched> = gone.iter().cloned().map(Touched::Root).collect();
        self.edit("member.invite_closed", now_ms, &touched, |doc| {
            for key in &gone {
                doc.delete(ROOT, key.as_str())?;
            }
            Ok(gone.len())
        })
    }

    /// The root keys of the invites of `user`, by any member.
    fn invite_keys_of(&self, user: UserId) -> Vec<String> {
        let from = format!("{INVITES_PREFIX}{}/", user.to_hex());
        let to = format!("{INVITES_PREFIX}{}0", user.to_hex());
        self.replica
            .doc()
            .map_range(ROOT, from..to)
            .map(|item| item.key.to_string())
            .collect()
    }

    /// Leaves the family (any member but the host).
    pub fn leave(&mut self, now_ms: i64) -> Result<Edit> {
        if self.my_membership()?.role == Role::Host {
            return Err(DocError::Forbidden(
                "the host cannot leave; delete the family instead",
            ));
        }
        let key = self.me.to_hex();
        // The invites of this member go too, as when the host removes them.
        let invites = self.invite_keys_of(self.me);
        self.edit("member.leave", now_ms, &[entity("members", &key)], |doc| {
            for invite in &invites {
                doc.delete(ROOT, invite.as_str())?;
            }
            delete_entity(doc, "members", &key)
        })
    }

    /// Validates a 호칭 and checks no other member uses it.
    fn check_name_free(&self, own_key: &str, name: &str) -> Result<String> {
        let name = validate::text(Field::MemberName, name, validate::MEMBER_NAME)?;
        let taken = self
            .view
            .members
            .iter()
            .any(|(k, m)| k != own_key && m.name == name);
        if taken {
            return Err(DocError::NameTaken(name));
        }
        Ok(name)
    }

    /// The first palette color no member has yet (cycling when all are used).
    fn next_member_color(&self) -> String {
        let used: Vec<&str> = self
            .view
            .members
            .values()
            .map(|m| m.color.as_str())
            .collect();
        validate::PALETTE
            .iter()
            .find(|c| !used.contains(c))
            .unwrap_or(&validate::PALETTE[self.view.members.len() % validate::PALETTE.len()])
            .to_string()
    }
}
