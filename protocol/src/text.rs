//! The product's rules for names and titles (FEATURES.md), written once for both sides
//! of the wire: the apps check them before an edit, the relay checks the names it
//! stores (nickname, family title, 호칭, email), and both agree on what a name is.
//!
//! A text is **trimmed and NFC-normalised first**, then counted in characters (Unicode
//! scalar values) — what a person counts when the UI says "≤ 10 characters" — so "엄마"
//! typed as decomposed jamo is the same two-character name as "엄마". Control
//! characters are refused (line breaks only where a rule allows them), and so are
//! invisible formatting characters: they would let "엄마\u{200B}" pass as a different
//! 호칭 than "엄마", or reverse how a name reads.

use unicode_normalization::UnicodeNormalization;

/// Limits of one kind of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// Fewest characters (after trimming).
    pub min: usize,
    /// Most characters.
    pub max: usize,
    /// Whether line breaks and tabs are allowed (notes, comments, captions).
    pub multiline: bool,
}

const fn line(min: usize, max: usize) -> TextRule {
    TextRule {
        min,
        max,
        multiline: false,
    }
}

const fn lines(min: usize, max: usize) -> TextRule {
    TextRule {
        min,
        max,
        multiline: true,
    }
}

/// Family title: 1–10 characters.
pub const FAMILY_TITLE: TextRule = line(1, 10);
/// 호칭 (a member's name in the family, e.g. 엄마): 1–8 characters.
pub const MEMBER_NAME: TextRule = line(1, 8);
/// Profile nickname: 2–15 characters of Hangul, letters, digits and `._ -`
/// (see [`nickname`]).
pub const NICKNAME: TextRule = line(2, 15);
/// Mission title: 1–17 characters.
pub const MISSION_TITLE: TextRule = line(1, 17);
/// Calendar event title: 1–14 characters.
pub const EVENT_TITLE: TextRule = line(1, 14);
/// Calendar event notes (ours): up to 500 characters.
pub const EVENT_NOTES: TextRule = lines(0, 500);
/// Photo album name (the original had no limit; ours): 1–20 characters.
pub const ALBUM_NAME: TextRule = line(1, 20);
/// Photo caption (ours): up to 200 characters.
pub const PHOTO_CAPTION: TextRule = lines(0, 200);
/// Comment on a photo (ours): 1–300 characters.
pub const COMMENT: TextRule = lines(1, 300);
/// Voice message title: 1–10 characters.
pub const VOICE_TITLE: TextRule = line(1, 10);
/// Voice album name (ours): 1–20 characters.
pub const VOICE_ALBUM_NAME: TextRule = line(1, 20);
/// A device's name as its owner sees it in the device list (ours): 1–40 characters.
pub const DEVICE_NAME: TextRule = line(1, 40);

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty after trimming, or longer than the rule allows.
    #[error("must be {min}–{max} characters, got {got}")]
    Length {
        /// Fewest characters allowed.
        min: usize,
        /// Most characters allowed.
        max: usize,
        /// How many were given (after trimming and normalising).
        got: usize,
    },
    /// A character the rule does not allow (control, invisible formatting, or outside
    /// a nickname's alphabet).
    #[error("contains a character that is not allowed: {ch:?}")]
    Charset {
        /// The first offending character.
        ch: char,
    },
    /// Not an email address or a handle.
    #[error("{0}")]
    Email(&'static str),
}

/// A text under `rule`: trimmed, NFC-normalised, length-checked, control and invisible
/// formatting characters refused. Returns the normalised text.
pub fn normalize(value: &str, rule: TextRule) -> Result<String, TextError> {
    let normal: String = value.trim().nfc().collect();
    let got = normal.chars().count();
    if got < rule.min || got > rule.max {
        return Err(TextError::Length {
            min: rule.min,
            max: rule.max,
            got,
        });
    }
    let allowed = |c: char| rule.multiline && matches!(c, '\n' | '\t');
    if let Some(ch) = normal
        .chars()
        .find(|&c| (c.is_control() && !allowed(c)) || is_invisible_format(c))
    {
        return Err(TextError::Charset { ch });
    }
    Ok(normal)
}

/// Whether `value` is already in the form [`normalize`] gives it (what the relay
/// stores as sent: a client normalises before it sends).
pub fn is_normal(value: &str, rule: TextRule) -> bool {
    normalize(value, rule).is_ok_and(|n| n == value)
}

/// Zero-width and bidirectional formatting characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A nickname: [`NICKNAME`] of Hangul, letters, digits and `._ -`.
pub fn nickname(value: &str) -> Result<String, TextError> {
    let v = normalize(value, NICKNAME)?;
    if let Some(ch) = v
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-')))
    {
        return Err(TextError::Charset { ch });
    }
    Ok(v)
}

/// An email or handle, normalised (trimmed, NFC, lowercase) and checked: either
/// `local@domain.tld` without spaces, or a handle of 3–32 letters, digits, `._-`.
pub fn email(value: &str) -> Result<String, TextError> {
    let s: String = value.trim().nfc().collect::<String>().to_lowercase();
    if s.chars().any(char::is_whitespace) {
        return Err(TextError::Email("an email has no spaces"));
    }
    if let Some(ch) = s
        .chars()
        .find(|&c| c.is_control() || is_invisible_format(c))
    {
        return Err(TextError::Charset { ch });
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            let domain_ok = !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..");
            if local.is_empty() || !domain_ok {
                return Err(TextError::Email("not a valid email address"));
            }
        }
        None => {
            let n = s.chars().count();
            let handle_ok = (3..=32).contains(&n)
                && s.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !handle_ok {
                return Err(TextError::Email(
                    "a handle has 3 to 32 letters, digits and . _ -",
                ));
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(normalize(" 우리 가족 ", FAMILY_TITLE).unwrap(), "우리 가족");
        assert!(normalize("열한글자가족이름입니다", FAMILY_TITLE).is_err());
        assert!(normalize("   ", FAMILY_TITLE).is_err());
        assert_eq!(
            normalize("가족 사진 찍기", MISSION_TITLE).unwrap(),
            "가족 사진 찍기"
        );
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(matches!(
            normalize("hi\u{0}there", COMMENT),
            Err(TextError::Charset { .. })
        ));
        assert!(normalize("two\nlines", MISSION_TITLE).is_err());
        assert_eq!(
            normalize("준비물:\n우산", COMMENT).unwrap(),
            "준비물:\n우산"
        );
        assert!(normalize("bell\u{7}", COMMENT).is_err());
    }

    #[test]
    fn invisible_characters_are_refused_and_text_is_normalised() {
        assert!(matches!(
            normalize("엄마\u{200B}", MEMBER_NAME),
            Err(TextError::Charset { .. })
        ));
        assert!(normalize("\u{202E}빠아", MEMBER_NAME).is_err());
        // 엄마 as decomposed jamo (5 code points) is the same 2-character name.
        let decomposed = "\u{110B}\u{1165}\u{11B7}\u{1106}\u{1161}";
        assert_eq!(normalize(decomposed, MEMBER_NAME).unwrap(), "엄마");
        assert!(!is_normal(decomposed, MEMBER_NAME));
        assert!(is_normal("엄마", MEMBER_NAME));
        assert!(!is_normal(" 엄마", MEMBER_NAME));
    }

    #[test]
    fn nickname_rules() {
        assert!(nickname("도란이").is_ok());
        assert!(nickname("kim_j.h-1").is_ok());
        assert!(nickname("a").is_err());
        assert!(nickname("no!pe").is_err());
        assert!(nickname("abcdefghijklmnop").is_err());
        assert!(nickname("도란\u{200B}이").is_err());
    }

    #[test]
    fn emails_and_handles() {
        assert_eq!(email(" Mom@Example.COM ").unwrap(), "mom@example.com");
        assert_eq!(email("dorani").unwrap(), "dorani");
        assert!(email("a b@example.com").is_err());
        assert!(email("@example.com").is_err());
        assert!(email("mom@example").is_err());
        assert!(email("mom@@example.com").is_err());
        assert!(email("ab").is_err());
        assert!(email("mom\u{200B}@example.com").is_err());
    }
}
