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
/// brackets) and TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddress {
    /// The host as the device's relay URL names it.
    pub host: String,
    /// The port, the scheme's default filled in.
    pub port: u16,
}

/// Whether a relay at `address` may announce `server_id`: `Err` says why not.
///
/// An id starting with `http://`, `https://`, `ws://` or `wss://` must name the same
/// host (letters compared without case, a trailing dot ignored) and the same port
/// (80 for `http`/`ws`, 443 for `https`/`wss` when none is given); a path after it is
/// allowed. An id with user information (`user@host`), or whose host or port cannot
/// be read, is refused. Any other id is allowed.
pub fn check_server_id(server_id: &str, address: &RelayAddress) -> Result<(), String> {
    let Some((default_port, rest)) = url_rest(server_id) else {
        return Ok(());
    };
    let refuse = |why: &str| {
        let shown: String = server_id.chars().take(128).collect();
        Err(format!(
            "the relay at {}:{} says it is {shown:?}: {why}",
            address.host, address.port
        ))
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("its id carries user information");
    }
    let Some((host, port)) = split_authority(authority, default_port) else {
        return refuse("its id's address cannot be read");
    };
    if !same_host(host, &address.host) {
        return refuse("another host");
    }
    if port != address.port {
        return refuse("another port");
    }
    Ok(())
}

/// The scheme's default port and what follows `scheme://`, if `id` is a URL.
fn url_rest(id: &str) -> Option<(u16, &str)> {
    let (scheme, rest) = id.split_once("://")?;
    let port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return None,
    };
    Some((port, rest))
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
        Some(p) => p.parse::<u16>().ok()?,
        None => default_port,
    };
    Some((host, port))
}

fn same_host(a: &str, b: &str) -> bool {
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
    fn the_refusal_says_what_was_announced_and_where() {
        let why = check_server_id("https://evil.example", &at("relay.example.org", 443))
            .expect_err("another host");
        assert!(why.contains("relay.example.org:443"), "{why}");
        assert!(why.contains("evil.example"), "{why}");
    }
}
