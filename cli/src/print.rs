//! Output: plain lines for people, one JSON value with `--json`.

use serde_json::{Value, json};

/// Where command results go.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints a created thing's id (plain) or `{"id": …}` plus `extra` (JSON).
    pub fn id(&self, id: &str, extra: Value) {
        if self.json {
            let mut v = json!({ "id": id });
            if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
                obj.extend(more);
            }
            println!("{v}");
        } else {
            println!("{id}");
        }
    }

    /// Prints `value` as JSON, or `lines` for people.
    pub fn show(&self, value: Value, lines: impl FnOnce() -> Vec<String>) {
        if self.json {
            println!("{value}");
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
}
