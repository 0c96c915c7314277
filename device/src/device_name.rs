//! How a device names itself: the name the user's device list and the "a new device
//! wants to join your account" prompt show, so it must tell a laptop from a phone
//! before the user revokes or confirms one. Sent as `Hello.client`; the relay keeps
//! the name of the device's latest sign-in.

use doran_protocol::limits::MAX_CLIENT_NAME_BYTES;

/// `"{app} · {machine} ({platform})"`, e.g. `"Dorandoran · mom-laptop (Linux)"`: the
/// machine's pretty name (its host name when it has none) and its platform, cut to
/// what the relay accepts.
pub fn describe(app: &str) -> String {
    let usable = |name: String| {
        let name = name.trim().to_owned();
        (!name.is_empty() && name != "localhost").then_some(name)
    };
    let machine = whoami::devicename()
        .ok()
        .and_then(usable)
        .or_else(|| whoami::hostname().ok().and_then(usable));
    let platform = whoami::platform();
    clamp(&match machine {
        Some(machine) => format!("{app} · {machine} ({platform})"),
        None => format!("{app} ({platform})"),
    })
}

/// `name` as the relay accepts it: control characters dropped, cut on a character
/// boundary to [`MAX_CLIENT_NAME_BYTES`] (a longer name, e.g. from an app's own
/// setting, would have every sign-in refused).
pub fn clamp(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_CLIENT_NAME_BYTES));
    for c in name.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_CLIENT_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_described_device_names_its_app_and_fits() {
        let name = describe("Dorandoran");
        assert!(name.starts_with("Dorandoran"), "{name}");
        assert!(name.len() <= MAX_CLIENT_NAME_BYTES);
        assert!(!name.chars().any(char::is_control));
        let long = describe(&"가".repeat(100));
        assert!(long.len() <= MAX_CLIENT_NAME_BYTES && long.starts_with("가"));
    }

    #[test]
    fn a_long_or_unprintable_name_is_cut_to_what_the_relay_accepts() {
        assert_eq!(clamp("엄마의 iPhone"), "엄마의 iPhone");
        assert_eq!(clamp("a\u{0}b\nc"), "abc");
        // 43 three-byte characters are 129 bytes: 42 fit.
        let cut = clamp(&"폰".repeat(43));
        assert_eq!(cut, "폰".repeat(42));
        assert_eq!(clamp(""), "");
    }
}
