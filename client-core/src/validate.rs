//! The product's input limits (from the original service, FEATURES.md), in one place.
//!
//! Lengths count characters (Unicode scalar values) after trimming surrounding
//! whitespace, which is what a person counts when the UI says "≤ 10 characters".

use std::fmt;

use unicode_normalization::UnicodeNormalization;

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

/// A one-line text (titles, names): trimmed, NFC-normalised, length-checked; control
/// and invisible formatting characters are refused. Returns the normalised text.
pub fn text(field: Field, value: &str, limits: (usize, usize)) -> Result<String> {
    checked(field, value, limits, false)
}

/// A text that may span lines (notes, comments, captions): like [`text`], but line
/// breaks and tabs are allowed.
pub fn multiline(field: Field, value: &str, limits: (usize, usize)) -> Result<String> {
    checked(field, value, limits, true)
}

fn checked(field: Field, value: &str, (min, max): (usize, usize), lines: bool) -> Result<String> {
    // NFC first, so "엄마" typed as decomposed jamo counts and compares as two syllables.
    let normal: String = value.trim().nfc().collect();
    let got = normal.chars().count();
    if got < min || got > max {
        return Err(DocError::Length {
            field,
            min,
            max,
            got,
        });
    }
    let allowed = |c: char| lines && matches!(c, '\n' | '\t');
    if let Some(ch) = normal
        .chars()
        .find(|&c| (c.is_control() && !allowed(c)) || is_invisible_format(c))
    {
        return Err(DocError::Charset { field, ch });
    }
    Ok(normal)
}

/// Zero-width and bidirectional formatting characters: invisible, so they would let
/// "엄마\u{200B}" pass as a different 호칭 than "엄마", or reverse how a name reads.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
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
        assert!(text(Field::Comment, "two\nlines", COMMENT).is_err());
        assert_eq!(
            multiline(Field::Comment, "준비물:\n우산", COMMENT).unwrap(),
            "준비물:\n우산"
        );
        assert!(multiline(Field::Comment, "bell\u{7}", COMMENT).is_err());
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
