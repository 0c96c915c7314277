//! The product's input limits (from the original service, FEATURES.md), in one place.
//!
//! Lengths count characters (Unicode scalar values) after trimming surrounding
//! whitespace, which is what a person counts when the UI says "≤ 10 characters".

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
    Mood,
    Language,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Family title: 1–10 characters.
pub const FAMILY_TITLE: (usize, usize) = (1, 10);
/// 호칭 (a member's name in the family, e.g. 엄마): 1–8 characters.
pub const MEMBER_NAME: (usize, usize) = (1, 8);
/// Profile nickname: 2–15 characters of Hangul, letters, digits and `._ -`.
pub const NICKNAME: (usize, usize) = (2, 15);
/// Mission title: 1–17 characters.
pub const MISSION_TITLE: (usize, usize) = (1, 17);
/// Calendar event title: 1–14 characters.
pub const EVENT_TITLE: (usize, usize) = (1, 14);
/// Calendar event notes (ours): up to 500 characters.
pub const EVENT_NOTES: (usize, usize) = (0, 500);
/// Photo album name (the original had no limit; ours): 1–20 characters.
pub const ALBUM_NAME: (usize, usize) = (1, 20);
/// Photo caption (ours): up to 200 characters.
pub const PHOTO_CAPTION: (usize, usize) = (0, 200);
/// Comment on a photo (ours): 1–300 characters.
pub const COMMENT: (usize, usize) = (1, 300);
/// Voice message title: 1–10 characters.
pub const VOICE_TITLE: (usize, usize) = (1, 10);
/// Voice album name (ours): 1–20 characters.
pub const VOICE_ALBUM_NAME: (usize, usize) = (1, 20);
/// Longest voice message: recording auto-stops at 3 minutes.
pub const VOICE_MAX_MS: u64 = 3 * 60 * 1000;
/// The number of built-in voice album covers.
pub const VOICE_COVERS: u8 = 4;

/// The calendar palette; the first is the default.
pub const PALETTE: [&str; 10] = [
    "#CE5F5F", "#EA7B46", "#F4CC4D", "#5FCE89", "#5FB3CE", "#6371F7", "#C588F6", "#F688EB",
    "#C2C2C2", "#424242",
];

/// Trims `value` and checks its length; returns the trimmed text.
pub fn text(field: Field, value: &str, (min, max): (usize, usize)) -> Result<String> {
    let trimmed = value.trim();
    let got = trimmed.chars().count();
    if got < min || got > max {
        return Err(DocError::Length {
            field,
            min,
            max,
            got,
        });
    }
    if let Some(ch) = trimmed.chars().find(|c| c.is_control()) {
        return Err(DocError::Charset { field, ch });
    }
    Ok(trimmed.to_owned())
}

/// A nickname: 2–15 characters of Hangul, letters, digits and `._ -`.
pub fn nickname(value: &str) -> Result<String> {
    let v = text(Field::Nickname, value, NICKNAME)?;
    if let Some(ch) = v
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-')))
    {
        return Err(DocError::Charset {
            field: Field::Nickname,
            ch,
        });
    }
    Ok(v)
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
