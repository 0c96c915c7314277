//! The personal document, read leniently (see [`crate::read`]): a profile is written
//! by its owner alone, but families trust what it shows (a mood's time, an avatar's
//! number), and a newer app may write what this one does not know.

use automerge::{AutoCommit, ROOT, ReadDoc, hydrate};

use super::{Fields, cut, family::clamp_u8};
use crate::{
    model::{DEFAULT_AVATARS, Mood, Personal, Settings},
    time_util::parse_hhmm,
    validate,
};

/// Reads the profile field by field: a field that does not read (a mood added by a
/// newer app, say) takes its default instead of hiding the whole profile.
pub(crate) fn personal(doc: &AutoCommit) -> Personal {
    let empty = hydrate::Map::default();
    let root = doc.hydrate(&ROOT, None).ok();
    read(root.as_ref().and_then(Fields::of).unwrap_or(Fields(&empty)))
}

fn read(f: Fields<'_>) -> Personal {
    Personal {
        schema: f.uint("schema").unwrap_or_default(),
        user: f.id("user"),
        nickname: f.text("nickname", validate::NICKNAME),
        avatar: f.string("avatar"),
        avatar_key: f.key("avatar_key"),
        default_avatar: clamp_u8(f.uint("default_avatar"), DEFAULT_AVATARS),
        mood: f
            .string("mood")
            .and_then(|m| Mood::ALL.into_iter().find(|x| format!("{x:?}") == m)),
        mood_at: f.instant("mood_at"),
        settings: f.map("settings").map(settings).unwrap_or_default(),
        families: f.instants("families"),
        email: f
            .string("email")
            .map(|e| cut(e, doran_protocol::limits::MAX_EMAIL_BYTES)),
    }
}

fn settings(f: Fields<'_>) -> Settings {
    let hhmm = |key| f.string(key).filter(|t| parse_hhmm(t).is_ok());
    let d = Settings::default();
    Settings {
        language: f
            .string("language")
            .filter(|l| matches!(l.as_str(), "ko" | "en"))
            .unwrap_or(d.language),
        notify_family: f.bool("notify_family").unwrap_or(d.notify_family),
        notify_reactions: f.bool("notify_reactions").unwrap_or(d.notify_reactions),
        quiet_start: hhmm("quiet_start"),
        quiet_end: hhmm("quiet_end"),
    }
}
