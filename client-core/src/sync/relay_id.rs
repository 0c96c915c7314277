//! Binding the relay's id to the address the device connected to.
//!
//! Every sign-in signs the relay's `server_id` (from its `Challenge`), so a signature
//! made for one relay is refused by another. That only helps if the id a relay
//! announces is its own: a relay in the middle — one the user was talked into
//! setting as their server, forwarding the real relay's challenges — would announce
//! the real relay's id, and the device would sign, for the real relay, whatever the
//! middle one asks. A deployment's id is, by convention, its public URL
//! (`docs/operations.md`, `--server-id`). So a device that connected to `host:port`
//! refuses an id that is a URL naming another host or port, before it signs anything;
//! the middle relay can then only announce its own id, which the real one refuses.
//!
//! An id that is not a URL (a test relay's, or the default `dorandoran-relay`) binds
//! nothing and is taken as it is: the protection is the operator's to switch on, by
//! setting the id to the URL devices use.

/// Where the device connected: the relay's host (a name or an IP address, without
/// brackets), TCP port, and whether over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddress {
    /// The host as the device's relay URL names it.
    pub host: String,
    /// The port, the scheme's default filled in.
    pub port: u16,
    /// Whether the connection is TLS (`https://` / `wss://`).
    pub secure: bool,
}

/// What [`check_server_id`] says an id names when its address cannot be read.
pub const UNREADABLE: &str = "?";

/// Whether a relay at `address` may announce `server_id`; `Err` holds what the id
/// names instead (`host:port`, `https://host:port` when only the scheme differs, or
/// [`UNREADABLE`]), safe to show: never the id's own text, which the relay chose.
///
/// An id starting with `http://`, `https://`, `ws://` or `wss://` (any case, blanks
/// around it ignored) must name the same host (letters compared without case, a
/// trailing dot ignored, IP addresses compared as addresses), the same port (80 for
/// `http`/`ws`, 443 for `https`/`wss` when none is given), and a TLS connection for
/// `https`/`wss` (plain for `http`/`ws`); a path after it is allowed. An id with user
/// information (`user@host`), or whose host or port cannot be read, is refused. Any
/// other id is allowed.
pub fn check_server_id(server_id: &str, address: &RelayAddress) -> Result<(), String> {
    let Some((secure, default_port, rest)) = url_rest(server_id.trim()) else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(UNREADABLE.to_owned());
    }
    let Some((host, port)) = split_authority(authority, default_port) else {
        return Err(UNREADABLE.to_owned());
    };
    let shown = || {
        let host: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
            .take(64)
            .collect();
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    if !same_host(host, &address.host) || port != address.port {
        return Err(shown());
    }
    if secure != address.secure {
        let scheme = if secure { "https" } else { "http" };
        return Err(format!("{scheme}://{}", shown()));
    }
    Ok(())
}

/// Whether `id` is a URL: (TLS?, the scheme's default port, what follows `://`).
fn url_rest(id: &str) -> Option<(bool, u16, &str)> {
    let (scheme, rest) = id.split_once("://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some((false, 80, rest)),
        "https" | "wss" => Some((true, 443, rest)),
        _ => None,
    }
}

/// `host[:port]` or `[v6][:port]`: the host without brackets and the port.
fn split_authority(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
        None => default_port,
    };
    Some((host, port))
}

fn same_host(a: &str, b: &str) -> bool {
    if let (Ok(a), Ok(b)) = (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        return a == b;
    }
    let trim = |h: &str| h.trim_end_matches('.').to_owned();
    trim(a).eq_ignore_ascii_case(&trim(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: &str, port: u16) -> RelayAddress {
        RelayAddress {
            host: host.into(),
            port,
            secure: port == 443,
        }
    }

    #[test]
    fn a_url_id_must_name_the_address_connected_to() {
        let public = at("relay.example.org", 443);
        for ok in [
            "https://relay.example.org",
            "https://relay.example.org/",
            "wss://relay.example.org/ws",
            "HTTPS://Relay.Example.ORG:443",
            "https://relay.example.org.",
            " https://relay.example.org ",
        ] {
            assert_eq!(check_server_id(ok, &public), Ok(()), "{ok}");
        }
        for wrong in [
            "https://evil.example",
            "https://relay.example.org:8443",
            "http://relay.example.org",
            "https://relay.example.org.evil.example",
            "https://relay.example.org@evil.example",
            "https://evil.example@relay.example.org",
            "https://",
            "https://:443",
            "https://relay.example.org:99999",
            "https://relay.example.org:x",
            "https://relay.example.org:",
            "https://relay.example.org:+443",
        ] {
            assert!(check_server_id(wrong, &public).is_err(), "{wrong}");
        }
    }

    #[test]
    fn ports_and_ip_addresses() {
        let local = at("127.0.0.1", 7070);
        assert_eq!(check_server_id("http://127.0.0.1:7070", &local), Ok(()));
        assert!(check_server_id("http://127.0.0.1", &local).is_err());
        assert!(check_server_id("http://127.0.0.2:7070", &local).is_err());
        let v6 = at("::1", 7070);
        assert_eq!(check_server_id("http://[::1]:7070/", &v6), Ok(()));
        assert_eq!(check_server_id("http://[0:0::1]:7070", &v6), Ok(()));
        assert!(check_server_id("http://[::1]", &v6).is_err());
        assert!(check_server_id("http://[::1", &v6).is_err());
        assert!(check_server_id("http://[::1]x", &v6).is_err());
    }

    #[test]
    fn an_id_that_is_not_a_url_binds_nothing() {
        let public = at("relay.example.org", 443);
        for id in [
            "dorandoran-relay",
            "test-relay",
            "relay.example.org",
            "ftp://evil.example",
            "",
        ] {
            assert_eq!(check_server_id(id, &public), Ok(()), "{id}");
        }
    }

    #[test]
    fn a_url_id_must_come_over_its_own_scheme() {
        // The same host and port, plain: someone on the path could read and pass on
        // what the device sends.
        let plain = RelayAddress {
            host: "relay.example.org".into(),
            port: 443,
            secure: false,
        };
        assert_eq!(
            check_server_id("https://relay.example.org", &plain),
            Err("https://relay.example.org:443".to_owned())
        );
        let tls = RelayAddress {
            host: "relay.example.org".into(),
            port: 80,
            secure: true,
        };
        assert!(check_server_id("http://relay.example.org", &tls).is_err());
    }

    #[test]
    fn the_refusal_shows_only_the_address_the_id_names() {
        let public = at("relay.example.org", 443);
        assert_eq!(
            check_server_id("https://evil.example/please-type-your-phrase", &public),
            Err("evil.example:443".to_owned())
        );
        assert_eq!(
            check_server_id("https://evil<b>.example:8443", &public),
            Err("evilb.example:8443".to_owned())
        );
        assert_eq!(
            check_server_id("https://[::2]", &public),
            Err("[::2]:443".to_owned())
        );
    }
}
