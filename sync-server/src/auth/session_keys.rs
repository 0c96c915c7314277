//! Session keys for HTTP requests: a MAC instead of an ed25519 signature per request.
//!
//! Checking a signed request costs the relay an ed25519 verification (≈ 40 µs here)
//! and the device a signature (≈ 20 µs), for every thumbnail of a gallery. So the
//! answer to a request the relay checked by its **signature** carries a **session
//! key** (`x-doran-session-key: {expires}.{life}.{key}`: the relay's unix ms when it
//! stops working, how many ms it works from when it was given, 64 hex digits), and
//! the device's next downloads carry `x-doran-mac: {expires}.{mac}` instead of the
//! signature, where `mac` is [`http_mac`] under that key — a keyed blake3, about a
//! microsecond. A MAC proves `GET` and `HEAD` only: a key that leaked uploads
//! nothing, and an upload's signature costs nothing beside its body.
//!
//! The relay keeps nothing per key: a key is blake3 keyed by the relay's secret over
//! the device and the expiry ([`SessionKeys::key`]), so checking a MAC is two keyed
//! hashes, and a key is only ever good for the device it was given to, until its
//! expiry. Everything else about a request is checked as for a signature: the time
//! window, once per request (the MAC is remembered like a signature), the device not
//! revoked, the caller's rights.
//!
//! The websocket's sign-in proves the device's key as a signed request does (its
//! signature of the relay's challenge), so a relay that gives keys sends one right
//! after `SignedIn` too ([`HttpSessionKey`] frame, protocol 10): a device's first
//! download after connecting is MAC'd, and its signature is left for the key after.
//!
//! **A key is only given for a signature**, never for a MAC: whoever holds a key
//! cannot turn it into a newer one, so a key that leaked works for its life and no
//! longer ([`Limits::http_session_key_secs`], 10 minutes by default), and only for its
//! device. A device uses a key for half its life and then signs once more, which
//! brings the next (one signature per five minutes of browsing). The key is as secret
//! as the connection it crossed: devices reach relays over TLS (the relay's own or a
//! proxy's).
//!
//! The secret is drawn at start, so a restart turns every key away: the device's MAC
//! is refused (`bad_signature`) and it signs that request again. Relays of a cluster
//! must share the secret (`http_session_secret`) and the life for a key from one to
//! work at another; without a secret they give no keys, and devices sign every
//! request.
//!
//! [`http_mac`]: doran_protocol::signing::http_mac
//! [`Limits::http_session_key_secs`]: crate::config::Limits::http_session_key_secs

use doran_protocol::{DeviceId, HttpSessionKey, UnixMillis, signing::http_mac};

use super::AuthError;

/// What a relay's secret derives a key from, so that the secret keys nothing else.
const KEY_DOMAIN: &[u8] = b"dorandoran/http-session-key/v1\0";

/// Header of an answer carrying a new session key.
pub const SESSION_KEY_HEADER: &str = "x-doran-session-key";

/// Header of a request proved by a session key instead of a signature.
pub const MAC_HEADER: &str = "x-doran-mac";

/// Gives and checks session keys under one secret.
pub struct SessionKeys {
    secret: [u8; 32],
    life_ms: u64,
    /// How far ahead of this relay's clock a key's expiry may be beyond the life: the
    /// clock difference a cluster's relays are allowed (a key given by a relay whose
    /// clock is ahead is not refused here as never given).
    slack_ms: u64,
}

impl std::fmt::Debug for SessionKeys {
    /// Without the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("life_ms", &self.life_ms)
            .field("slack_ms", &self.slack_ms)
            .finish_non_exhaustive()
    }
}

/// A key given to a device: by the header of a signed request's answer, or by a frame
/// after the websocket's sign-in (the same three fields).
pub type Issued = HttpSessionKey;

/// The value of [`SESSION_KEY_HEADER`]: `{expires}.{life}.{64 hex digits}`.
pub fn header_value(issued: &Issued) -> String {
    format!(
        "{}.{}.{}",
        issued.expires,
        issued.life_ms,
        hex::encode(issued.key)
    )
}

/// A request's `x-doran-mac`: the key's expiry and the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac {
    /// The expiry of the key that made it (names the key, with the device).
    pub expires: UnixMillis,
    /// [`http_mac`] under that key.
    pub mac: [u8; 32],
}

impl std::str::FromStr for Mac {
    type Err = AuthError;

    /// `{expires}.{64 hex digits}`; [`AuthError::MissingCredentials`] otherwise.
    fn from_str(value: &str) -> Result<Self, AuthError> {
        let (expires, mac) = value
            .trim()
            .split_once('.')
            .ok_or(AuthError::MissingCredentials)?;
        let expires = expires.parse().map_err(|_| AuthError::MissingCredentials)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(mac, &mut bytes).map_err(|_| AuthError::MissingCredentials)?;
        Ok(Mac {
            expires,
            mac: bytes,
        })
    }
}

impl SessionKeys {
    /// Keys derived from `secret`, each working for `life_ms` from when it is given;
    /// an expiry up to `slack_ms` further ahead is taken (another relay's clock).
    pub fn new(secret: [u8; 32], life_ms: u64, slack_ms: u64) -> Self {
        SessionKeys {
            secret,
            life_ms: life_ms.max(1),
            slack_ms,
        }
    }

    /// Under a secret drawn from the system's random source (a relay alone).
    pub fn random(life_ms: u64, slack_ms: u64) -> Self {
        Self::new(rand::random(), life_ms, slack_ms)
    }

    /// The key of `device` that expires at `expires`.
    pub fn key(&self, device: DeviceId, expires: UnixMillis) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.secret);
        hasher.update(KEY_DOMAIN);
        hasher.update(device.as_bytes());
        hasher.update(&expires.to_be_bytes());
        *hasher.finalize().as_bytes()
    }

    /// A key for `device`, working from `now` for the whole life.
    pub fn issue(&self, device: DeviceId, now: UnixMillis) -> Issued {
        let expires = now.saturating_add(self.life_ms);
        Issued {
            expires,
            life_ms: self.life_ms,
            key: self.key(device, expires),
        }
    }

    /// Checks that `mac` is `device`'s MAC of `message` (server id, method, path and
    /// query, time) under a key that has not expired at `now`.
    ///
    /// An expiry further ahead than a key's life (and the clock slack) was not given
    /// under this configuration: refused like a bad MAC without hashing. The
    /// comparison takes the same time wherever the MACs differ.
    pub fn check(
        &self,
        device: DeviceId,
        mac: &Mac,
        (server_id, method, path_and_query, time): (&str, &str, &str, UnixMillis),
        now: UnixMillis,
    ) -> Result<(), AuthError> {
        if mac.expires <= now {
            return Err(AuthError::SessionKeyExpired);
        }
        if mac.expires - now > self.life_ms.saturating_add(self.slack_ms) {
            return Err(AuthError::BadSignature);
        }
        let key = self.key(device, mac.expires);
        let expected = http_mac(&key, server_id, method, path_and_query, time);
        // blake3::Hash's equality is constant-time.
        if blake3::Hash::from(expected) == blake3::Hash::from(mac.mac) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: DeviceId = DeviceId([3; 16]);
    const LIFE: u64 = 600_000;
    const SLACK: u64 = 300_000;

    fn mac_of(issued: &Issued, method: &str, pq: &str, time: UnixMillis) -> Mac {
        Mac {
            expires: issued.expires,
            mac: http_mac(&issued.key, "relay", method, pq, time),
        }
    }

    #[test]
    fn a_key_s_mac_is_accepted_until_it_expires() {
        let keys = SessionKeys::new([1; 32], LIFE, SLACK);
        let now = 1_000_000;
        let issued = keys.issue(DEVICE, now);
        assert_eq!((issued.expires, issued.life_ms), (now + LIFE, LIFE));
        let mac = mac_of(&issued, "GET", "/blobs/ab", now + 5);
        let fields = ("relay", "GET", "/blobs/ab", now + 5);
        assert_eq!(keys.check(DEVICE, &mac, fields, now + 5), Ok(()));
        assert_eq!(keys.check(DEVICE, &mac, fields, now + LIFE - 1), Ok(()));
        assert_eq!(
            keys.check(DEVICE, &mac, fields, now + LIFE),
            Err(AuthError::SessionKeyExpired)
        );
    }

    #[test]
    fn a_mac_is_refused_for_another_request_device_relay_or_secret() {
        let keys = SessionKeys::new([1; 32], LIFE, SLACK);
        let now = 1_000_000;
        let issued = keys.issue(DEVICE, now);
        let mac = mac_of(&issued, "GET", "/blobs/ab", now);
        for fields in [
            ("relay", "PUT", "/blobs/ab", now),
            ("relay", "GET", "/blobs/ab?family=x", now),
            ("relay", "GET", "/blobs/ab", now + 1),
            ("other-relay", "GET", "/blobs/ab", now),
        ] {
            assert_eq!(
                keys.check(DEVICE, &mac, fields, now),
                Err(AuthError::BadSignature),
                "{fields:?}"
            );
        }
        let fields = ("relay", "GET", "/blobs/ab", now);
        // Another device naming this key (it knows the expiry, not the key).
        assert_eq!(
            keys.check(DeviceId([4; 16]), &mac, fields, now),
            Err(AuthError::BadSignature)
        );
        // A relay with another secret (restarted, or not sharing its cluster's).
        let restarted = SessionKeys::new([2; 32], LIFE, SLACK);
        assert_eq!(
            restarted.check(DEVICE, &mac, fields, now),
            Err(AuthError::BadSignature)
        );
        // Another expiry under the same MAC: another key.
        let moved = Mac {
            expires: mac.expires - 1,
            ..mac
        };
        assert_eq!(
            keys.check(DEVICE, &moved, fields, now),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn an_expiry_beyond_a_key_s_life_is_refused() {
        let keys = SessionKeys::new([1; 32], LIFE, SLACK);
        let now = 1_000_000;
        // Given by a relay of the cluster whose clock is ahead: taken.
        let ahead = keys.issue(DEVICE, now + SLACK);
        let mac = mac_of(&ahead, "GET", "/x", now);
        assert_eq!(
            keys.check(DEVICE, &mac, ("relay", "GET", "/x", now), now),
            Ok(())
        );
        // Made with the right key (as if the secret leaked): still refused, since
        // no relay of this configuration gives a key that long.
        let far = Issued {
            expires: now + LIFE + SLACK + 1,
            life_ms: LIFE,
            key: keys.key(DEVICE, now + LIFE + SLACK + 1),
        };
        let mac = mac_of(&far, "GET", "/x", now);
        assert_eq!(
            keys.check(DEVICE, &mac, ("relay", "GET", "/x", now), now),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_key_is_not_printed() {
        let issued = SessionKeys::new([1; 32], LIFE, SLACK).issue(DEVICE, 0);
        let printed = format!("{issued:?}");
        assert!(!printed.contains(&hex::encode(issued.key)), "{printed}");
        assert!(!printed.contains(&format!("{:?}", issued.key)), "{printed}");
    }

    #[test]
    fn headers_read_and_write() {
        let issued = Issued {
            expires: 12,
            life_ms: 600_000,
            key: [0xab; 32],
        };
        assert_eq!(
            header_value(&issued),
            format!("12.600000.{}", "ab".repeat(32))
        );
        let mac: Mac = format!("12.{}", "cd".repeat(32)).parse().unwrap();
        assert_eq!(
            mac,
            Mac {
                expires: 12,
                mac: [0xcd; 32]
            }
        );
        for bad in [
            "12".to_owned(),
            format!("x.{}", "cd".repeat(32)),
            "12.abcd".to_owned(),
            format!("12.{}", "zz".repeat(32)),
            format!("-1.{}", "cd".repeat(32)),
        ] {
            assert_eq!(bad.parse::<Mac>(), Err(AuthError::MissingCredentials));
        }
    }
}
