//! Output: plain lines for people, one JSON value with `--json` — the facade's own
//! serialised views, so scripts see exactly what the apps see.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::json;

/// `text` as a terminal shows it safely: what family members wrote (captions,
/// comments, titles, names) reaches the lines printed for people, and an escape
/// sequence in it would otherwise reach the terminal — recolouring, rewriting what
/// was printed before, or an OSC sequence setting the window title or writing the
/// clipboard. Control characters (but tab) and direction overrides are shown as
/// `\u{…}` instead. JSON output needs none of this: serde escapes control characters.
pub fn plain(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Where command results go.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints `value` as JSON, or `lines` for people.
    pub fn view<T: Serialize + ?Sized>(&self, value: &T, lines: impl FnOnce() -> Vec<String>) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("doran: cannot print JSON: {e}"),
            }
        } else {
            for l in lines() {
                println!("{}", plain(&l));
            }
        }
    }

    /// Prints the id an edit made and confirms it is saved on this device, with how
    /// many changes wait for sync (one JSON object with `--json`).
    pub fn created(&self, id: &str, pending: u64) {
        if self.json {
            println!("{}", json!({ "id": id, "saved": true, "pending": pending }));
        } else {
            println!("{id}");
            eprintln!("saved on this device; {pending} change(s) queued for `doran sync`");
        }
    }

    /// Confirms an edit saved on this device; tells how many changes wait for sync.
    pub fn saved(&self, pending: u64) {
        if self.json {
            println!("{}", json!({ "saved": true, "pending": pending }));
        } else {
            eprintln!("saved on this device; {pending} change(s) queued for `doran sync`");
        }
    }

    /// Confirms something the relay did (`what`: a short past-tense phrase).
    pub fn done(&self, what: &str, id: &str) {
        if self.json {
            println!("{}", json!({ "done": what, "id": id }));
        } else {
            println!("{what} {id}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn escape_sequences_from_the_family_never_reach_the_terminal() {
        assert_eq!(plain("바다 여행 🏖"), "바다 여행 🏖");
        assert_eq!(plain("a\tb"), "a\tb");
        assert_eq!(
            plain("\u{1b}[2J\u{1b}]0;owned\u{7}사진"),
            "\\u{1b}[2J\\u{1b}]0;owned\\u{7}사진"
        );
        assert_eq!(plain("엄마\u{202e}가"), "엄마\\u{202e}가");
        assert_eq!(plain("줄\n바꿈\r"), "줄\\u{a}바꿈\\u{d}");
    }
}
