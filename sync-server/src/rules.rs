//! Product rules for the names the relay stores (FEATURES.md), from
//! [`doran_protocol::text`] — the same rules the apps apply before they send:
//! nickname 2–15 characters of Hangul, letters, digits and `._ -`; email/handle
//! trimmed, lowercased, and of the form `local@domain` or a handle of letters, digits
//! and `._-`. Every name is trimmed and NFC-normalised, counted in characters, and
//! refused if it holds control or invisible formatting characters. (Family titles and
//! 호칭 never reach the relay since protocol 7: the apps check them, in the family
//! document.)

use doran_protocol::text::{self, TextError};

/// Why a name was refused; the message is sent back as an `InvalidInput` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}")]
pub struct RuleError {
    /// Which name ("a nickname", "an email or handle").
    pub what: &'static str,
    /// Why.
    pub reason: TextError,
}

fn rule(what: &'static str) -> impl Fn(TextError) -> RuleError {
    move |reason| RuleError { what, reason }
}

/// A nickname, normalised: 2–15 characters of Hangul, letters, digits, `.`, `_`, ` `, `-`.
pub fn nickname(s: &str) -> Result<String, RuleError> {
    text::nickname(s).map_err(rule("a nickname"))
}

/// An email or handle, normalised (trimmed, lowercase) and checked: either
/// `local@domain.tld` without spaces, or a handle of 3–32 letters, digits, `._-`.
pub fn email(s: &str) -> Result<String, RuleError> {
    text::email(s).map_err(rule("an email or handle"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames() {
        assert_eq!(nickname(" 도란 ").as_deref(), Ok("도란"));
        assert!(nickname("kim.j_s-1 x").is_ok());
        assert!(nickname("a").is_err());
        assert!(nickname("abcdefghijklmnop").is_err());
        assert!(nickname("no!").is_err());
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            email("  Mom@Example.COM ").as_deref(),
            Ok("mom@example.com")
        );
        assert_eq!(email("grandpa_kim").as_deref(), Ok("grandpa_kim"));
        for bad in [
            "@x.com",
            "a@b",
            "a@.com",
            "a@b..c",
            "a b@c.com",
            "a@b@c.com",
            "ab",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
