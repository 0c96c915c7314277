//! Missions: create with participants, edit, delete, and each participant's own tick.

use std::collections::BTreeMap;

use automerge::{ROOT, ReadDoc, transaction::Transactable};
use doran_protocol::UserId;

use super::{
    Edit, FamilyDoc, count, delete_entity, entity, map_at, mark_key, new_id, not_found, put_entity,
    put_field,
};
use crate::{
    error::{DocError, Result},
    model::Mission,
    replica::Touched,
    rules,
    time_util::parse_date,
    validate::{self, Field},
};

/// An edit to a mission; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MissionPatch {
    /// New title.
    pub title: Option<String>,
    /// New participants (replaces the set; ticks of removed participants are dropped).
    pub participants: Option<Vec<UserId>>,
    /// New due date: `Some(None)` clears it.
    pub due: Option<Option<String>>,
}

impl FamilyDoc {
    /// Creates a mission. `participants` empty means every current member. Returns its id.
    pub fn add_mission(
        &mut self,
        title: &str,
        participants: &[UserId],
        due: Option<&str>,
        now_ms: i64,
    ) -> Result<Edit<String>> {
        self.require_member()?;
        let title = validate::text(Field::MissionTitle, title, validate::MISSION_TITLE)?;
        let due = due.map(check_date).transpose()?;
        let participants = self.participant_set(participants, now_ms)?;
        let mission = Mission {
            title,
            created_by: self.me.to_hex(),
            created_at: now_ms,
            due,
            participants,
            completions: BTreeMap::new(),
        };
        let id = new_id();
        let touched = [entity("missions", &id), self.counted("missions")];
        self.edit("mission.add", now_ms, &touched, |doc| {
            put_entity(doc, "missions", &id, &mission)?;
            count(doc, "missions")?;
            Ok(id.clone())
        })
    }

    /// Edits a mission's title, participants or due date (its creator or the host).
    pub fn edit_mission(&mut self, id: &str, patch: MissionPatch, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let mut mission = self
            .view
            .missions
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("mission", id))?;
        if mission.created_by != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its creator or the host may edit a mission",
            ));
        }
        if let Some(t) = &patch.title {
            mission.title = validate::text(Field::MissionTitle, t, validate::MISSION_TITLE)?;
        }
        if let Some(due) = &patch.due {
            mission.due = due.as_deref().map(check_date).transpose()?;
        }
        if let Some(p) = &patch.participants {
            let mut set = self.participant_set(p, now_ms)?;
            // Keep the original "added at" of participants who stay.
            for (user, at) in set.iter_mut() {
                if let Some(old) = mission.participants.get(user) {
                    *at = *old;
                }
            }
            mission.completions.retain(|u, _| set.contains_key(u));
            mission.participants = set;
        }
        let id = id.to_owned();
        // The fields edited, never the creator or the creation time; the ticks of
        // participants removed are dropped, the others' ticks left as they are.
        self.edit("mission.edit", now_ms, &[entity("missions", &id)], |doc| {
            if patch.title.is_some() {
                put_field(doc, "missions", &id, "title", &mission.title)?;
            }
            if patch.due.is_some() {
                put_field(doc, "missions", &id, "due", &mission.due)?;
            }
            if patch.participants.is_some() {
                put_field(doc, "missions", &id, "participants", &mission.participants)?;
                if let Ok(ticks) = map_at(doc, &["missions", &id, "completions"]) {
                    let gone: Vec<String> = doc
                        .keys(&ticks)
                        .filter(|u| !mission.participants.contains_key(u))
                        .collect();
                    for user in gone {
                        doc.delete(&ticks, user.as_str())?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Deletes a mission (its creator or the host).
    pub fn delete_mission(&mut self, id: &str, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let mission = self
            .view
            .missions
            .get(id)
            .ok_or_else(|| not_found("mission", id))?;
        if mission.created_by != self.me.to_hex() && !self.is_host() {
            return Err(DocError::Forbidden(
                "only its creator or the host may delete a mission",
            ));
        }
        let id = id.to_owned();
        self.edit(
            "mission.delete",
            now_ms,
            &[entity("missions", &id)],
            |doc| delete_entity(doc, "missions", &id),
        )
    }

    /// Ticks (`done = true`) or unticks my own completion of a mission. Only
    /// participants may tick, and only for themselves.
    pub fn set_mission_done(&mut self, id: &str, done: bool, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        let me = self.me.to_hex();
        let mission = self
            .view
            .missions
            .get(id)
            .ok_or_else(|| not_found("mission", id))?;
        if !mission.participants.contains_key(&me) {
            return Err(DocError::NotParticipant {
                user: me,
                mission: id.to_owned(),
            });
        }
        if mission.completions.contains_key(&me) == done {
            return Ok(Edit::unchanged(()));
        }
        let id = id.to_owned();
        let what = if done {
            "mission.done"
        } else {
            "mission.undone"
        };
        // Whoever's tick completed it first counted it; counted again by nobody.
        let counted = self.view.marks("completed").any(|(_, m)| m == id);
        let ticked = mark_key("ticks", &me, &id);
        let ticked_before = self.view.counts.contains_key(&ticked);
        let completed = mark_key("completed", &me, &id);
        // Whose ticks a completion waits for, as the devices checking this change
        // will read it: a volume has no member list, so every other participant.
        let among = if self.kept_in_core("missions", &id) {
            rules::Among::Members
        } else {
            rules::Among::AllParticipants
        };
        let touched = [
            entity("missions", &id),
            Touched::Root(ticked.clone()),
            Touched::Root(completed.clone()),
        ];
        self.edit(what, now_ms, &touched, |doc| {
            let completions = map_at(doc, &["missions", &id, "completions"])?;
            if done {
                // Marked once per mission, whatever the untick and tick again: the
                // badges count missions ticked and completed, not clicks. Whether this
                // tick completes the mission is read as every device will check it.
                let mission = map_at(doc, &["missions", &id])?;
                let completes = rules::others_all_ticked(doc, &mission, (&me, among), None);
                doc.put(&completions, me.as_str(), now_ms)?;
                if !ticked_before {
                    doc.put(ROOT, ticked.as_str(), now_ms)?;
                }
                if completes && !counted {
                    doc.put(ROOT, completed.as_str(), now_ms)?;
                }
            } else {
                doc.delete(&completions, me.as_str())?;
            }
            Ok(())
        })
    }

    /// The participant set for `users` (all members when empty); each must be a member.
    fn participant_set(&self, users: &[UserId], now_ms: i64) -> Result<BTreeMap<String, i64>> {
        let set: BTreeMap<String, i64> = if users.is_empty() {
            self.view
                .members
                .keys()
                .map(|k| (k.clone(), now_ms))
                .collect()
        } else {
            users.iter().map(|u| (u.to_hex(), now_ms)).collect()
        };
        if set.is_empty() {
            return Err(DocError::NoParticipants);
        }
        if let Some(stranger) = set.keys().find(|u| !self.view.members.contains_key(*u)) {
            return Err(DocError::NotMember(stranger.clone()));
        }
        Ok(set)
    }
}

fn check_date(s: &str) -> Result<String> {
    parse_date(s).map(|d| d.to_string())
}
