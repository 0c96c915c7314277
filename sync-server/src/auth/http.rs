//! Signed HTTP requests (blob upload and download).
//!
//! The protocol has no bearer tokens: a blob request is signed by the device key,
//! like everything else. Each request carries three headers:
//!
//! | header | value |
//! |---|---|
//! | `x-doran-device` | the device id, 32 lowercase hex digits |
//! | `x-doran-time` | the request time, unix milliseconds, decimal |
//! | `x-doran-signature` | 128 hex digits: ed25519 by the device key over [`http_message`] |
//!
//! The signed message is, in the encoding of [`doran_protocol::signing`]:
//! `b"dorandoran/http/v2\0" ‖ server_id ‖ method ‖ path_and_query ‖ time`, where
//! `server_id` (this relay's, as in its challenges and at `GET /server-id`), `method`
//! (e.g. `GET`) and `path_and_query` (e.g. `/blobs/ab…?family=cd…`, exactly as sent)
//! are strings (8-byte big-endian length, then the bytes) and `time` is 8 bytes
//! big-endian. The relay accepts a time within ±[`Limits::http_clock_skew_secs`]
//! (5 minutes by default) of its clock, and each signature **once** within that
//! window: a client sending the same request twice in one millisecond bumps the time.
//! Remembering them is bounded: past [`Limits::http_replay_cache_max`] signatures in
//! the window, new requests get `busy` (with when to retry) instead of more memory;
//! and one account's devices hold at most [`Limits::http_replay_per_user`] of them, so
//! an account flooding signed requests is told `busy` itself rather than filling the
//! memory for every family. The device must not be revoked. The body is not signed: an
//! upload is verified against the blake3 hash in its path instead.
//!
//! [`Limits::http_clock_skew_secs`]: crate::config::Limits::http_clock_skew_secs
//! [`Limits::http_replay_cache_max`]: crate::config::Limits::http_replay_cache_max
//! [`Limits::http_replay_per_user`]: crate::config::Limits::http_replay_per_user

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use doran_protocol::{DeviceId, PublicKey, Signature, UnixMillis};

use super::{AuthError, verify};

pub use doran_protocol::signing::{HTTP_DOMAIN, http_message};

/// Header naming the device.
pub const DEVICE_HEADER: &str = "x-doran-device";
/// Header with the request time (unix ms).
pub const TIME_HEADER: &str = "x-doran-time";
/// Header with the signature (hex).
pub const SIGNATURE_HEADER: &str = "x-doran-signature";

/// The three authentication headers, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCredentials {
    /// The signing device.
    pub device: DeviceId,
    /// The request time.
    pub time: UnixMillis,
    /// The signature over [`http_message`].
    pub signature: Signature,
}

impl HttpCredentials {
    /// Parses the header values; [`AuthError::MissingCredentials`] if any is absent
    /// or malformed.
    pub fn parse(
        device: Option<&str>,
        time: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Self, AuthError> {
        let bad = |_| AuthError::MissingCredentials;
        let (Some(device), Some(time), Some(signature)) = (device, time, signature) else {
            return Err(AuthError::MissingCredentials);
        };
        Ok(HttpCredentials {
            device: device.trim().parse().map_err(bad)?,
            time: time
                .trim()
                .parse()
                .map_err(|_| AuthError::MissingCredentials)?,
            signature: signature.trim().parse().map_err(bad)?,
        })
    }
}

/// Checks signed HTTP requests and remembers the signatures it accepted.
#[derive(Debug)]
pub struct HttpAuth {
    server_id: String,
    skew_ms: u64,
    max_remembered: usize,
    max_per_owner: usize,
    seen: Mutex<Seen>,
}

/// Whose share of the remembered signatures a request counts against (the account's
/// user id).
pub type Owner = [u8; 16];

/// Accepted signatures (their first 32 bytes) until they may be forgotten: a set to
/// ask, and a min-heap by forget time to drop the stale ones from. Each check costs
/// O(log n) however many requests are in the window (a scan of the whole set per
/// request, as before, made a busy relay quadratic and was easy to provoke).
#[derive(Debug, Default)]
struct Seen {
    keys: HashSet<[u8; 32]>,
    expiry: BinaryHeap<Reverse<(UnixMillis, [u8; 32], Owner)>>,
    /// How many of `keys` each owner holds (owners holding none are not kept).
    per_owner: HashMap<Owner, usize>,
}

impl Seen {
    /// Forgets every signature whose time is up at `now`.
    fn prune(&mut self, now: UnixMillis) {
        while let Some(Reverse((forget_at, key, owner))) = self.expiry.peek().copied() {
            if forget_at > now {
                break;
            }
            self.expiry.pop();
            self.keys.remove(&key);
            if let Some(n) = self.per_owner.get_mut(&owner) {
                *n -= 1;
                if *n == 0 {
                    self.per_owner.remove(&owner);
                }
            }
        }
    }

    /// When the first remembered signature may be forgotten.
    fn first_forget(&self) -> Option<UnixMillis> {
        self.expiry.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Remembers `key` for `owner` until `forget_at`; false if it is remembered
    /// already.
    fn insert(&mut self, key: [u8; 32], owner: Owner, forget_at: UnixMillis) -> bool {
        if !self.keys.insert(key) {
            return false;
        }
        self.expiry.push(Reverse((forget_at, key, owner)));
        *self.per_owner.entry(owner).or_default() += 1;
        true
    }
}

impl HttpAuth {
    /// Accepts requests signed for `server_id` with a time within `skew` of the
    /// relay's clock, remembering at most `max_remembered` signatures at once, and at
    /// most `max_per_owner` of one owner's.
    pub fn new(
        server_id: impl Into<String>,
        skew: Duration,
        max_remembered: usize,
        max_per_owner: usize,
    ) -> Self {
        HttpAuth {
            server_id: server_id.into(),
            skew_ms: u64::try_from(skew.as_millis()).unwrap_or(u64::MAX),
            max_remembered: max_remembered.max(1),
            max_per_owner: max_per_owner.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Checks that `creds` sign `method path_and_query` with `device_key`, that the
    /// time is within the window around `now`, and that the signature is new; it then
    /// counts against `owner`'s share (the device's account).
    pub fn check(
        &self,
        device_key: &PublicKey,
        (method, path_and_query): (&str, &str),
        creds: &HttpCredentials,
        owner: Owner,
        now: UnixMillis,
    ) -> Result<(), AuthError> {
        if creds.time.abs_diff(now) > self.skew_ms {
            return Err(AuthError::ClockSkew);
        }
        verify(
            device_key,
            &http_message(&self.server_id, method, path_and_query, creds.time),
            &creds.signature,
        )?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&creds.signature.as_bytes()[..32]);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.prune(now);
        if seen.keys.contains(&key) {
            return Err(AuthError::RequestReplayed);
        }
        // One account's share first: a flood of its own signed requests makes it wait,
        // not the others. Its oldest may be remembered for up to two windows (a time
        // up to `skew` ahead, then `skew`): one window is the hint.
        if seen.per_owner.get(&owner).copied().unwrap_or(0) >= self.max_per_owner {
            return Err(AuthError::Busy {
                retry_after_ms: self.skew_ms.saturating_add(1),
            });
        }
        // Bounded whatever the request rate: past the cap, wait for the oldest to
        // leave the window instead of growing (each costs ~100 bytes).
        if seen.keys.len() >= self.max_remembered {
            let retry_after_ms = seen.first_forget().map_or(1, |at| at.saturating_sub(now));
            return Err(AuthError::Busy { retry_after_ms });
        }
        // Past creds.time + skew the time check refuses it anyway.
        let forget_at = creds.time.saturating_add(self.skew_ms).saturating_add(1);
        if !seen.insert(key, owner, forget_at) {
            return Err(AuthError::RequestReplayed);
        }
        Ok(())
    }

    /// What identifies an accepted request against replay, and until when: the
    /// signature's first 32 bytes, and the end of its time window.
    pub fn replay_key(&self, creds: &HttpCredentials) -> ([u8; 32], UnixMillis) {
        let mut key = [0u8; 32];
        key.copy_from_slice(&creds.signature.as_bytes()[..32]);
        (
            key,
            creds.time.saturating_add(self.skew_ms).saturating_add(1),
        )
    }

    /// How many accepted signatures are remembered now.
    pub fn remembered(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::{key, sign};

    const OWNER: Owner = [1; 16];

    fn creds(sk: &ed25519_dalek::SigningKey, method: &str, pq: &str, time: u64) -> HttpCredentials {
        HttpCredentials {
            device: DeviceId([3; 16]),
            time,
            signature: sign(sk, &http_message("relay", method, pq, time)),
        }
    }

    #[test]
    fn a_signed_request_is_accepted_once() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 100_000, 100_000);
        let c = creds(&sk, "GET", "/blobs/ab", 1_000_000);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/ab"), &c, OWNER, 1_000_500),
            Ok(())
        );
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/ab"), &c, OWNER, 1_000_600),
            Err(AuthError::RequestReplayed)
        );
    }

    #[test]
    fn signatures_are_remembered_for_their_window_only_however_many() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 100_000, 100_000);
        let start = 1_000_000;
        // Far more than fit any fixed pruning threshold, all within one window.
        for i in 0..6_000u64 {
            let pq = format!("/blobs/{i}");
            let c = creds(&sk, "GET", &pq, start + i);
            assert_eq!(auth.check(&pk, ("GET", &pq), &c, OWNER, start + i), Ok(()));
        }
        assert_eq!(auth.remembered(), 6_000);
        let again = creds(&sk, "GET", "/blobs/5999", start + 5_999);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/5999"), &again, OWNER, start + 6_000),
            Err(AuthError::RequestReplayed)
        );
        // Once a window has passed for the first 3000, they are forgotten.
        let later = start + 300_000 + 3_000;
        let c = creds(&sk, "GET", "/blobs/late", later);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/late"), &c, OWNER, later),
            Ok(())
        );
        assert_eq!(auth.remembered(), 6_000 - 3_000 + 1);
    }

    #[test]
    fn the_memory_of_signatures_is_bounded() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 3, 100_000);
        let start = 1_000_000;
        for i in 0..3u64 {
            let pq = format!("/blobs/{i}");
            assert_eq!(
                auth.check(
                    &pk,
                    ("GET", &pq),
                    &creds(&sk, "GET", &pq, start + i),
                    OWNER,
                    start + i
                ),
                Ok(())
            );
        }
        let c = creds(&sk, "GET", "/blobs/3", start + 3);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/3"), &c, OWNER, start + 3),
            Err(AuthError::Busy {
                retry_after_ms: 300_001 - 3
            })
        );
        assert_eq!(auth.remembered(), 3);
        // A replay is still a replay, full or not.
        let again = creds(&sk, "GET", "/blobs/0", start);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/0"), &again, OWNER, start + 4),
            Err(AuthError::RequestReplayed)
        );
        // Once the first leaves its window there is room again.
        let later = start + 300_001;
        let c = creds(&sk, "GET", "/blobs/4", later);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/4"), &c, OWNER, later),
            Ok(())
        );
    }

    /// One account flooding signed requests fills its own share and is told to wait;
    /// another account's requests still go through, and the flood's share comes back
    /// as its signatures leave their window.
    #[test]
    fn one_account_cannot_fill_everyone_s_memory_of_signatures() {
        let (sk, pk) = key(4);
        let (other_sk, other_pk) = key(5);
        let (flooder, other): (Owner, Owner) = ([1; 16], [2; 16]);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 10, 4);
        let start = 1_000_000;
        for i in 0..4u64 {
            let pq = format!("/blobs/{i}");
            let c = creds(&sk, "GET", &pq, start + i);
            assert_eq!(
                auth.check(&pk, ("GET", &pq), &c, flooder, start + i),
                Ok(())
            );
        }
        let c = creds(&sk, "GET", "/blobs/4", start + 4);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/4"), &c, flooder, start + 4),
            Err(AuthError::Busy {
                retry_after_ms: 300_001
            })
        );
        assert_eq!(auth.remembered(), 4, "a refused request is not remembered");
        for i in 0..4u64 {
            let pq = format!("/other/{i}");
            let c = creds(&other_sk, "GET", &pq, start + 10 + i);
            assert_eq!(
                auth.check(&other_pk, ("GET", &pq), &c, other, start + 10 + i),
                Ok(()),
                "another account is not held up"
            );
        }
        // Once its first signatures leave the window, the flooder has room again.
        let later = start + 300_002;
        let c = creds(&sk, "GET", "/blobs/5", later);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/5"), &c, flooder, later),
            Ok(())
        );
    }

    #[test]
    fn a_request_signed_for_another_relay_does_not_verify() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 10, 100_000);
        let other = HttpCredentials {
            device: DeviceId([3; 16]),
            time: 1_000_000,
            signature: sign(
                &sk,
                &http_message("other-relay", "GET", "/blobs/ab", 1_000_000),
            ),
        };
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/ab"), &other, OWNER, 1_000_000),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn another_method_path_or_key_does_not_verify() {
        let (sk, pk) = key(4);
        let (_, other) = key(5);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 100_000, 100_000);
        let c = creds(&sk, "GET", "/blobs/ab", 1_000_000);
        for (k, m, p) in [
            (&pk, "PUT", "/blobs/ab"),
            (&pk, "GET", "/blobs/ab?family=x"),
            (&other, "GET", "/blobs/ab"),
        ] {
            assert_eq!(
                auth.check(k, (m, p), &c, OWNER, 1_000_000),
                Err(AuthError::BadSignature)
            );
        }
    }

    #[test]
    fn stale_or_future_requests_are_refused() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 100_000, 100_000);
        let c = creds(&sk, "GET", "/x", 1_000_000);
        assert_eq!(
            auth.check(&pk, ("GET", "/x"), &c, OWNER, 1_000_000 + 300_001),
            Err(AuthError::ClockSkew)
        );
        assert_eq!(
            auth.check(&pk, ("GET", "/x"), &c, OWNER, 1_000_000 - 300_001),
            Err(AuthError::ClockSkew)
        );
    }

    #[test]
    fn headers_parse_or_are_refused() {
        let sig = "ab".repeat(64);
        let dev = "01".repeat(16);
        let ok = HttpCredentials::parse(Some(&dev), Some("12"), Some(&sig));
        assert_eq!(ok.map(|c| c.time), Ok(12));
        for (d, t, s) in [
            (None, Some("1"), Some(sig.as_str())),
            (Some(dev.as_str()), Some("x"), Some(sig.as_str())),
            (Some(dev.as_str()), Some("1"), Some("abcd")),
            (Some("zz"), Some("1"), Some(sig.as_str())),
        ] {
            assert_eq!(
                HttpCredentials::parse(d, t, s),
                Err(AuthError::MissingCredentials)
            );
        }
    }
}
