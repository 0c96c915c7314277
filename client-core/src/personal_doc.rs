//! [`PersonalDoc`]: a user's own document — nickname, avatar, today's mood, settings,
//! and the families they belong to. Only its owner writes it; their families read it.

use std::collections::BTreeMap;

use doran_protocol::{BlobHash, FamilyId};

use crate::{
    error::{DocError, Result},
    family_doc::Edit,
    model::{Mood, Personal, SCHEMA_VERSION, Settings},
    replica::{Actor, Replica},
    validate,
};

/// A user's personal document on this device.
#[derive(Debug)]
pub struct PersonalDoc {
    replica: Replica,
    view: Personal,
}

impl PersonalDoc {
    /// Creates the personal document at sign-up. `default_avatar` is 1–8.
    pub fn create(
        actor: &Actor,
        nickname: &str,
        default_avatar: u8,
        now_ms: i64,
    ) -> Result<(Self, Vec<u8>)> {
        let view = Personal {
            schema: SCHEMA_VERSION,
            user: actor.user.to_hex(),
            nickname: validate::nickname(nickname)?,
            avatar: None,
            default_avatar: default_avatar.clamp(1, 8),
            mood: None,
            mood_at: None,
            settings: Settings::default(),
            families: BTreeMap::new(),
        };
        let mut replica = Replica::new(actor);
        autosurgeon::reconcile(replica.doc_mut(), &view)?;
        let change = replica
            .commit("profile.create", now_ms)
            .ok_or_else(|| DocError::Schema("creating a profile wrote nothing".into()))?;
        replica.take_touched();
        Ok((PersonalDoc { replica, view }, change))
    }

    /// Opens a personal document (the user's own, or a family member's to read).
    pub fn load<'a>(
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
    ) -> Result<Self> {
        let mut replica = Replica::load(snapshot, chunks, actor)?;
        let view = autosurgeon::hydrate(replica.doc())?;
        replica.take_touched();
        Ok(PersonalDoc { replica, view })
    }

    /// The current state.
    pub fn view(&self) -> &Personal {
        &self.view
    }

    /// Today's mood, or `None` when it was set on an earlier local day.
    pub fn mood_today(&self, now_ms: i64, offset: time::UtcOffset) -> Option<Mood> {
        let at = self.view.mood_at?;
        let same_day = crate::time_util::local_date(at, offset)
            == crate::time_util::local_date(now_ms, offset);
        if same_day { self.view.mood } else { None }
    }

    /// The underlying replica.
    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// Applies a chunk from another device of this user (or, read-only, of a member).
    pub fn apply_remote(&mut self, chunk: &[u8]) -> Result<()> {
        self.replica.apply(chunk)?;
        if !self.replica.take_touched().is_empty() {
            self.view = autosurgeon::hydrate(self.replica.doc())?;
        }
        Ok(())
    }

    /// Sets the nickname (2–15 characters).
    pub fn set_nickname(&mut self, nickname: &str, now_ms: i64) -> Result<Edit> {
        let mut next = self.view.clone();
        next.nickname = validate::nickname(nickname)?;
        self.write(next, "profile.nickname", now_ms)
    }

    /// Sets or clears the profile photo.
    pub fn set_avatar(&mut self, avatar: Option<BlobHash>, now_ms: i64) -> Result<Edit> {
        let mut next = self.view.clone();
        next.avatar = avatar.map(|h| h.to_hex());
        self.write(next, "profile.avatar", now_ms)
    }

    /// Sets today's mood.
    pub fn set_mood(&mut self, mood: Mood, now_ms: i64) -> Result<Edit> {
        let mut next = self.view.clone();
        next.mood = Some(mood);
        next.mood_at = Some(now_ms);
        self.write(next, "profile.mood", now_ms)
    }

    /// Replaces the settings (language `ko` or `en`; quiet hours `HH:MM`).
    pub fn set_settings(&mut self, settings: Settings, now_ms: i64) -> Result<Edit> {
        if !matches!(settings.language.as_str(), "ko" | "en") {
            return Err(DocError::NotAllowed {
                field: validate::Field::Language,
                value: settings.language,
            });
        }
        for t in [&settings.quiet_start, &settings.quiet_end]
            .into_iter()
            .flatten()
        {
            crate::time_util::parse_hhmm(t)?;
        }
        let mut next = self.view.clone();
        next.settings = settings;
        self.write(next, "profile.settings", now_ms)
    }

    /// Records joining (`true`) or leaving a family.
    pub fn set_family(&mut self, family: FamilyId, member: bool, now_ms: i64) -> Result<Edit> {
        let mut next = self.view.clone();
        if member {
            next.families.entry(family.to_hex()).or_insert(now_ms);
        } else {
            next.families.remove(&family.to_hex());
        }
        self.write(next, "profile.families", now_ms)
    }

    fn write(&mut self, next: Personal, what: &str, now_ms: i64) -> Result<Edit> {
        if next == self.view {
            return Ok(Edit {
                value: (),
                change: None,
            });
        }
        if let Err(e) = autosurgeon::reconcile(self.replica.doc_mut(), &next) {
            self.replica.rollback();
            return Err(e.into());
        }
        let change = self.replica.commit(what, now_ms);
        self.replica.take_touched();
        self.view = next;
        Ok(Edit { value: (), change })
    }
}
