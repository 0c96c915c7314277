//! [`PersonalDoc`]: a user's own document — nickname, avatar, today's mood, settings,
//! and the families they belong to. Only its owner writes it; their families read it.

use std::collections::BTreeMap;

use doran_protocol::FamilyId;

use crate::seal::BlobRef;

use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, Value, transaction::Transactable};

use crate::{
    error::{DocError, Result},
    family_doc::Edit,
    model::{Mood, Personal, SCHEMA_VERSION, Settings},
    replica::{Actor, ChunkFate, Replica},
    validate,
};

/// A user's personal document on this device.
#[derive(Debug)]
pub struct PersonalDoc {
    replica: Replica,
    view: Personal,
}

impl PersonalDoc {
    /// Creates the personal document at sign-up, in one change. `default_avatar` is
    /// 1–8; `email` is the label the user registered with, kept so a device added
    /// later knows it.
    pub fn create(
        actor: &Actor,
        nickname: &str,
        email: Option<&str>,
        default_avatar: u8,
        now_ms: i64,
    ) -> Result<(Self, Vec<u8>)> {
        let email = email
            .map(doran_protocol::text::email)
            .transpose()
            .map_err(|e| DocError::text(validate::Field::Email, e))?;
        let view = Personal {
            schema: SCHEMA_VERSION,
            user: actor.user.to_hex(),
            nickname: validate::nickname(nickname)?,
            avatar: None,
            avatar_key: None,
            default_avatar: default_avatar.clamp(1, crate::model::DEFAULT_AVATARS),
            mood: None,
            mood_at: None,
            settings: Settings::default(),
            families: BTreeMap::new(),
            email,
        };
        let mut replica = Replica::new(actor);
        autosurgeon::reconcile(replica.doc_mut(), &view)?;
        let change = replica
            .commit("profile.create", now_ms)
            .ok_or_else(|| DocError::Schema("creating a profile wrote nothing".into()))?;
        Ok((PersonalDoc { replica, view }, change))
    }

    /// Opens a personal document (the user's own, or a family member's to read).
    pub fn load<'a>(
        snapshot: Option<&[u8]>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        actor: &Actor,
    ) -> Result<Self> {
        let replica = Replica::load(snapshot, chunks, actor)?;
        let view = crate::read::personal(replica.doc());
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
    /// Given with its author, every new change in it must be written under that
    /// author's actor id; the others are set aside, and the bytes to store instead of
    /// the chunk are returned (`None`: store it as it came). A chunk that is not
    /// Automerge, or over a cost limit, is refused whole.
    pub fn apply_remote<'a>(
        &mut self,
        chunk: impl Into<crate::replica::Incoming<'a>>,
    ) -> Result<Option<Vec<u8>>> {
        let (touched, fates) = self.replica.apply_remote([chunk.into()]);
        if !touched.is_empty() {
            self.view = crate::read::personal(self.replica.doc());
        }
        match fates.into_iter().next() {
            Some(ChunkFate::Refuse(why)) => Err(why.into()),
            Some(ChunkFate::Trim(bytes, why)) => {
                tracing::warn!(error = %why, "setting aside changes of an incoming chunk");
                Ok(Some(bytes))
            }
            _ => Ok(None),
        }
    }

    /// Sets the nickname (2–15 characters).
    pub fn set_nickname(&mut self, nickname: &str, now_ms: i64) -> Result<Edit> {
        let nickname = validate::nickname(nickname)?;
        self.write("profile.nickname", now_ms, |doc| {
            doc.put(ROOT, "nickname", nickname)?;
            Ok(())
        })
    }

    /// Sets or clears the profile photo.
    pub fn set_avatar(&mut self, avatar: Option<BlobRef>, now_ms: i64) -> Result<Edit> {
        let key = avatar.and_then(|a| a.key);
        let avatar = avatar.map(|a| a.hash.to_hex());
        self.write("profile.avatar", now_ms, |doc| {
            autosurgeon::reconcile_prop(doc, ROOT, "avatar", &avatar)?;
            autosurgeon::reconcile_prop(doc, ROOT, "avatar_key", key)?;
            Ok(())
        })
    }

    /// Sets today's mood.
    pub fn set_mood(&mut self, mood: Mood, now_ms: i64) -> Result<Edit> {
        self.write("profile.mood", now_ms, |doc| {
            autosurgeon::reconcile_prop(doc, ROOT, "mood", Some(mood))?;
            doc.put(ROOT, "mood_at", now_ms)?;
            Ok(())
        })
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
        self.write("profile.settings", now_ms, |doc| {
            autosurgeon::reconcile_prop(doc, ROOT, "settings", &settings)?;
            Ok(())
        })
    }

    /// Records joining (`true`) or leaving a family. Only that family's entry is
    /// written, so families joined on another device are never dropped.
    pub fn set_family(&mut self, family: FamilyId, member: bool, now_ms: i64) -> Result<Edit> {
        let key = family.to_hex();
        if self.view.families.contains_key(&key) == member {
            return Ok(Edit {
                value: (),
                change: None,
                view: None,
                volume: None,
                listed: None,
            });
        }
        self.write("profile.families", now_ms, |doc| {
            let families = match doc.get(ROOT, "families")? {
                Some((Value::Object(ObjType::Map), id)) => id,
                _ => doc.put_object(ROOT, "families", ObjType::Map)?,
            };
            if member {
                doc.put(&families, key.as_str(), now_ms)?;
            } else {
                doc.delete(&families, key.as_str())?;
            }
            Ok(())
        })
    }

    /// Writes only the fields an edit is about (never the whole profile from a view
    /// that might be stale), commits, and re-reads the view.
    fn write(
        &mut self,
        what: &str,
        now_ms: i64,
        f: impl FnOnce(&mut AutoCommit) -> Result<()>,
    ) -> Result<Edit> {
        if let Err(e) = f(self.replica.doc_mut()) {
            self.replica.rollback();
            return Err(e);
        }
        let change = self.replica.commit(what, now_ms);
        self.view = crate::read::personal(self.replica.doc());
        Ok(Edit {
            value: (),
            change,
            view: None,
            volume: None,
            listed: None,
        })
    }
}
