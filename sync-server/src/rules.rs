//! Product rules for names, on top of the protocol's byte limits (FEATURES.md):
//! nickname 2–15 characters of Hangul, letters, digits and `._ -`; family title
//! 1–10 characters; 호칭 1–8 characters; email/handle trimmed, lowercased, and of
//! the form `local@domain` or a handle of letters, digits and `._-`.
//!
//! Lengths count characters (Unicode scalar values) after trimming.

/// Why a name was refused; the message is sent back as an `InvalidInput` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub &'static str);

fn chars_between(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

/// A nickname, trimmed: 2–15 characters of Hangul, letters, digits, `.`, `_`, ` `, `-`.
pub fn nickname(s: &str) -> Result<String, RuleError> {
    let s = s.trim();
    if !chars_between(s, 2, 15) {
        return Err(RuleError("a nickname has 2 to 15 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-'))
    {
        return Err(RuleError(
            "a nickname has only letters, digits, Hangul and . _ - or spaces",
        ));
    }
    Ok(s.to_owned())
}

/// A family title, trimmed: 1–10 characters.
pub fn family_title(s: &str) -> Result<String, RuleError> {
    let s = s.trim();
    if !chars_between(s, 1, 10) {
        return Err(RuleError("a family title has 1 to 10 characters"));
    }
    Ok(s.to_owned())
}

/// A member name (호칭), trimmed: 1–8 characters.
pub fn member_name(s: &str) -> Result<String, RuleError> {
    let s = s.trim();
    if !chars_between(s, 1, 8) {
        return Err(RuleError("a member name (호칭) has 1 to 8 characters"));
    }
    Ok(s.to_owned())
}

/// An email or handle, normalised (trimmed, lowercase) and checked: either
/// `local@domain.tld` without spaces, or a handle of 3–32 letters, digits, `._-`.
pub fn email(s: &str) -> Result<String, RuleError> {
    let s = s.trim().to_lowercase();
    if s.chars().any(char::is_whitespace) {
        return Err(RuleError("an email has no spaces"));
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            let domain_ok = !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..");
            if local.is_empty() || !domain_ok {
                return Err(RuleError("not a valid email address"));
            }
        }
        None => {
            let handle_ok = chars_between(&s, 3, 32)
                && s.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !handle_ok {
                return Err(RuleError("a handle has 3 to 32 letters, digits and . _ -"));
            }
        }
    }
    Ok(s)
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
    fn titles_and_member_names() {
        assert!(family_title("우리 가족").is_ok());
        assert!(family_title("  ").is_err());
        assert!(family_title("12345678901").is_err());
        assert!(member_name("엄마").is_ok());
        assert!(member_name("123456789").is_err());
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
