//! The product's input limits (from the original service, FEATURES.md), in one place.
//!
//! The text rules themselves (lengths in characters after trimming and NFC, no
//! invisible characters) live in [`doran_protocol::text`], shared with the relay; this
//! module names the field a refusal is about, for the UI.

use std::fmt;

use crate::error::{DocError, Result};

/// Which input a validation error is about; shown by UIs next to the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    FamilyTitle,
    MemberName,
    Nickname,
    MissionTitle,
    EventTitle,
    EventNotes,
    EventColor,
    AlbumName,
    PhotoCaption,
    Comment,
    VoiceTitle,
    VoiceAlbumName,
    VoiceCover,
    VoiceDuration,
    PhotoMeta,
    Mood,
    Language,
    Email,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

pub use doran_protocol::text::{
    ALBUM_NAME, COMMENT, EVENT_NOTES, EVENT_TITLE, FAMILY_TITLE, MEMBER_NAME, MISSION_TITLE,
    NICKNAME, PHOTO_CAPTION, TextRule, VOICE_ALBUM_NAME, VOICE_TITLE,
};
/// Longest voice message: recording auto-stops at 3 minutes. The encoder may pad the
/// last frame, so a quarter second of slack is allowed.
pub const VOICE_MAX_MS: u64 = 3 * 60 * 1000 + 250;
/// Photo types a family can share (display copies are made on the device).
pub const PHOTO_MIME: [&str; 5] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "image/gif",
];
/// Largest photo side in pixels we accept in metadata (display copies are ≤ 1920).
pub const PHOTO_MAX_SIDE: u32 = 20_000;
/// The number of built-in voice album covers.
pub const VOICE_COVERS: u8 = 4;

/// The calendar palette; the first is the default.
pub const PALETTE: [&str; 10] = [
    "#CE5F5F", "#EA7B46", "#F4CC4D", "#5FCE89", "#5FB3CE", "#6371F7", "#C588F6", "#F688EB",
    "#C2C2C2", "#424242",
];

/// A text under `rule` ([`doran_protocol::text::normalize`]: trimmed, NFC-normalised,
/// length-checked, control and invisible formatting characters refused — the same
/// rules the relay applies). Returns the normalised text.
pub fn text(field: Field, value: &str, rule: TextRule) -> Result<String> {
    doran_protocol::text::normalize(value, rule).map_err(|e| DocError::text(field, e))
}

/// `wanted` in the app's form for a 호칭 (cut to its length) if no member in `taken`
/// has it, else with the smallest number from 2 that makes it free (막내 → 막내2),
/// still a 호칭's length at most. Something unusable becomes 가족.
pub fn free_member_name(wanted: &str, taken: &std::collections::BTreeSet<String>) -> String {
    let cut = |s: &str, max: usize| -> String { s.chars().take(max).collect() };
    let base = text(
        Field::MemberName,
        &cut(wanted, MEMBER_NAME.max),
        MEMBER_NAME,
    )
    .unwrap_or_else(|_| "가족".to_owned());
    if !taken.contains(&base) {
        return base;
    }
    for n in 2u32.. {
        let suffix = n.to_string();
        let room = MEMBER_NAME.max.saturating_sub(suffix.chars().count());
        let candidate = format!("{}{suffix}", cut(&base, room).trim_end());
        if !taken.contains(&candidate) {
            return candidate;
        }
    }
    base
}

/// A nickname: 2–15 characters of Hangul, letters, digits and `._ -`.
pub fn nickname(value: &str) -> Result<String> {
    doran_protocol::text::nickname(value).map_err(|e| DocError::text(Field::Nickname, e))
}

/// A palette color (case-insensitive); `None` means the default.
pub fn color(value: Option<&str>) -> Result<String> {
    match value {
        None => Ok(PALETTE[0].to_owned()),
        Some(v) => PALETTE
            .iter()
            .find(|p| p.eq_ignore_ascii_case(v.trim()))
            .map(|p| (*p).to_owned())
            .ok_or_else(|| DocError::NotAllowed {
                field: Field::EventColor,
                value: v.to_owned(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_the_smallest_free_number_and_stays_a_name() {
        let taken = |names: &[&str]| -> std::collections::BTreeSet<String> {
            names.iter().map(|n| (*n).to_owned()).collect()
        };
        assert_eq!(free_member_name("막내", &taken(&["엄마"])), "막내");
        assert_eq!(free_member_name("막내", &taken(&["막내"])), "막내2");
        assert_eq!(
            free_member_name("막내", &taken(&["막내", "막내2"])),
            "막내3"
        );
        // Eight characters at most, the number included.
        assert_eq!(
            free_member_name("할머니할아버지께서", &taken(&[])),
            "할머니할아버지께"
        );
        assert_eq!(
            free_member_name("할머니할아버지께", &taken(&["할머니할아버지께"])),
            "할머니할아버지2"
        );
        // Nothing usable (a nickname of spaces): a plain name, made free too.
        assert_eq!(free_member_name("  ", &taken(&["가족"])), "가족2");
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(
            text(Field::FamilyTitle, " 우리 가족 ", FAMILY_TITLE).unwrap(),
            "우리 가족"
        );
        assert!(text(Field::FamilyTitle, "열한글자가족이름입니다", FAMILY_TITLE).is_err());
        assert!(text(Field::FamilyTitle, "   ", FAMILY_TITLE).is_err());
        assert_eq!(
            text(Field::MissionTitle, "가족 사진 찍기", MISSION_TITLE).unwrap(),
            "가족 사진 찍기"
        );
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(matches!(
            text(Field::Comment, "hi\u{0}there", COMMENT),
            Err(DocError::Charset { .. })
        ));
        assert!(text(Field::MissionTitle, "two\nlines", MISSION_TITLE).is_err());
        assert_eq!(
            text(Field::Comment, "준비물:\n우산", COMMENT).unwrap(),
            "준비물:\n우산"
        );
        assert!(text(Field::Comment, "bell\u{7}", COMMENT).is_err());
    }

    #[test]
    fn invisible_characters_are_refused_and_text_is_normalised() {
        assert!(matches!(
            text(Field::MemberName, "엄마\u{200B}", MEMBER_NAME),
            Err(DocError::Charset { .. })
        ));
        assert!(text(Field::MemberName, "\u{202E}빠아", MEMBER_NAME).is_err());
        // 엄마 as decomposed jamo (4 code points) is the same 2-character name.
        let decomposed = "\u{110B}\u{1165}\u{11B7}\u{1106}\u{1161}";
        assert_eq!(
            text(Field::MemberName, decomposed, MEMBER_NAME).unwrap(),
            "엄마"
        );
    }

    #[test]
    fn nickname_rules() {
        assert!(nickname("도란이").is_ok());
        assert!(nickname("kim_j.h-1").is_ok());
        assert!(nickname("a").is_err());
        assert!(nickname("no!pe").is_err());
        assert!(nickname("abcdefghijklmnop").is_err());
    }

    #[test]
    fn palette_colors() {
        assert_eq!(color(None).unwrap(), "#CE5F5F");
        assert_eq!(color(Some("#5fce89")).unwrap(), "#5FCE89");
        assert!(color(Some("#123456")).is_err());
    }
}
