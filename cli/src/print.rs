//! Output: plain lines for people, one JSON value with `--json` — the facade's own
//! serialised views, so scripts see exactly what the apps see.

use serde::Serialize;
use serde_json::json;

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
                println!("{l}");
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
