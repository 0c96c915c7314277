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
//! Remembering them is bounded. One account's devices hold at most
//! [`Limits::http_replay_per_user`] of them: past that, the account is told `busy`
//! (with when to retry). The relay holds at most [`Limits::http_replay_cache_max`]:
//! when that is full, a request from an account holding fewer than the heaviest holder
//! makes the relay forget the heaviest holder's oldest signature instead, and only the
//! heaviest holders themselves are told `busy`. So a dozen free accounts filling the
//! memory evict their own first, and a family browsing its gallery is not refused
//! because heavier accounts filled it (the relay's memory is per relay: in a cluster
//! the shared table still refuses a replay of one forgotten here). Forgetting a signature early only means that one request
//! could be replayed within its window, which gains a captor nothing: a `GET`/`HEAD`
//! re-reads bytes it already saw, a `PUT` stores content-addressed bytes again (and
//! devices speak TLS). The device must not be revoked. The body is not signed: an
//! upload is verified against the blake3 hash in its path instead.
//!
//! Once a device has a session key (given with the answer to a signed request), it
//! sends `x-doran-mac` in place of `x-doran-signature`: a keyed blake3 of the same
//! fields, checked in about a microsecond instead of an ed25519 verification's forty.
//! Everything above holds for it alike: the window, once per request (the MAC is
//! what is remembered), the device not revoked. See [`super::session_keys`].
//!
//! [`Limits::http_clock_skew_secs`]: crate::config::Limits::http_clock_skew_secs
//! [`Limits::http_replay_cache_max`]: crate::config::Limits::http_replay_cache_max
//! [`Limits::http_replay_per_user`]: crate::config::Limits::http_replay_per_user

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use doran_protocol::{DeviceId, PublicKey, Signature, UnixMillis};

use super::{
    AuthError,
    session_keys::{Issued, Mac, SessionKeys},
    verify,
};

pub use doran_protocol::signing::{HTTP_DOMAIN, http_message};

/// Header naming the device.
pub const DEVICE_HEADER: &str = "x-doran-device";
/// Header with the request time (unix ms).
pub const TIME_HEADER: &str = "x-doran-time";
/// Header with the signature (hex).
pub const SIGNATURE_HEADER: &str = "x-doran-signature";

/// What proves a request: the device key's signature, or a MAC under a session key
/// the relay gave the device (see [`super::session_keys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// `x-doran-signature`: ed25519 over [`http_message`].
    Signature(Signature),
    /// `x-doran-mac`: the session key's expiry and the MAC.
    Mac(Mac),
}

/// The authentication headers, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCredentials {
    /// The signing device.
    pub device: DeviceId,
    /// The request time.
    pub time: UnixMillis,
    /// The signature or the MAC.
    pub proof: Proof,
}

impl HttpCredentials {
    /// Parses the header values (`signature` and `mac`: exactly one of them);
    /// [`AuthError::MissingCredentials`] if anything is absent or malformed.
    pub fn parse(
        device: Option<&str>,
        time: Option<&str>,
        (signature, mac): (Option<&str>, Option<&str>),
    ) -> Result<Self, AuthError> {
        let bad = |_| AuthError::MissingCredentials;
        let (Some(device), Some(time)) = (device, time) else {
            return Err(AuthError::MissingCredentials);
        };
        let proof = match (signature, mac) {
            (Some(signature), None) => Proof::Signature(signature.trim().parse().map_err(bad)?),
            (None, Some(mac)) => Proof::Mac(mac.parse()?),
            _ => return Err(AuthError::MissingCredentials),
        };
        Ok(HttpCredentials {
            device: device.trim().parse().map_err(bad)?,
            time: time
                .trim()
                .parse()
                .map_err(|_| AuthError::MissingCredentials)?,
            proof,
        })
    }

    /// What identifies the request against replay: the signature's first 32 bytes,
    /// or the MAC.
    fn replay_id(&self) -> [u8; 32] {
        match &self.proof {
            Proof::Signature(signature) => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&signature.as_bytes()[..32]);
                key
            }
            Proof::Mac(mac) => mac.mac,
        }
    }
}

/// The shortest wait a `busy` answer asks for.
const MIN_RETRY_MS: u64 = 1_000;

/// Checks signed HTTP requests and remembers the signatures it accepted.
#[derive(Debug)]
pub struct HttpAuth {
    server_id: String,
    skew_ms: u64,
    max_remembered: usize,
    max_per_owner: usize,
    seen: Mutex<Seen>,
    /// `None`: no session keys are given, and MACs are refused.
    sessions: Option<SessionKeys>,
    /// A valid key no device has: a request naming an unknown device has its
    /// signature checked against it, so that it takes as long as any other.
    nobody: PublicKey,
}

/// Whose share of the remembered signatures a request counts against (the account's
/// user id).
pub type Owner = [u8; 16];

/// Accepted signatures (their first 32 bytes) until they may be forgotten: a set to
/// ask, the same ordered by forget time to drop the stale ones from, each owner's share
/// in that order, and the owners ordered by how many they hold, to forget the heaviest
/// holder's oldest when full. Each check costs O(log n) however many requests are in
/// the window (a scan of the whole set per request, as before, made a busy relay
/// quadratic and was easy to provoke).
///
/// The forget order is a set rather than a heap with lazy deletion: a signature
/// forgotten early leaves it at once, so a stream of evictions cannot grow it past the
/// cap for the rest of the window. Invariant: `(at, key, owner)` is in `expiry` exactly
/// when `key` is in `keys` and `(at, key)` in `per_owner[owner]`.
#[derive(Debug, Default)]
struct Seen {
    keys: HashSet<[u8; 32]>,
    expiry: BTreeSet<(UnixMillis, [u8; 32], Owner)>,
    /// Each owner's share of `keys`, oldest first (owners holding none are not kept).
    per_owner: HashMap<Owner, BTreeSet<(UnixMillis, [u8; 32])>>,
    /// `(how many, owner)` for each owner in `per_owner`: the last holds the most.
    by_count: BTreeSet<(usize, Owner)>,
}

impl Seen {
    /// Forgets every signature whose time is up at `now`.
    fn prune(&mut self, now: UnixMillis) {
        while let Some(&(forget_at, key, owner)) = self.expiry.first() {
            if forget_at > now {
                break;
            }
            self.forget(forget_at, key, owner);
        }
    }

    /// When the first remembered signature may be forgotten.
    fn first_forget(&self) -> Option<UnixMillis> {
        self.expiry.first().map(|(at, _, _)| *at)
    }

    /// How many remembered signatures `owner` holds.
    fn held_by(&self, owner: &Owner) -> usize {
        self.per_owner.get(owner).map_or(0, BTreeSet::len)
    }

    /// Remembers `key` for `owner` until `forget_at`; false if it is remembered
    /// already.
    fn insert(&mut self, key: [u8; 32], owner: Owner, forget_at: UnixMillis) -> bool {
        if !self.keys.insert(key) {
            return false;
        }
        self.expiry.insert((forget_at, key, owner));
        let mine = self.per_owner.entry(owner).or_default();
        let held = mine.len();
        mine.insert((forget_at, key));
        self.by_count.remove(&(held, owner));
        self.by_count.insert((held + 1, owner));
        true
    }

    /// Forgets `owner`'s `key`, remembered until `forget_at`, from every index.
    fn forget(&mut self, forget_at: UnixMillis, key: [u8; 32], owner: Owner) {
        self.expiry.remove(&(forget_at, key, owner));
        self.keys.remove(&key);
        let Some(mine) = self.per_owner.get_mut(&owner) else {
            return;
        };
        let held = mine.len();
        if !mine.remove(&(forget_at, key)) {
            return;
        }
        self.by_count.remove(&(held, owner));
        if held == 1 {
            self.per_owner.remove(&owner);
        } else {
            self.by_count.insert((held - 1, owner));
        }
    }

    /// Makes room for one more of `owner`'s by forgetting the oldest signature of the
    /// owner holding the most, if that holds more than `owner` would with it; false,
    /// forgetting nothing, if `owner` is among the heaviest holders. The margin of one
    /// keeps the holder the heavier after the swap, so two owners never take the same
    /// place from each other back and forth.
    fn evict_for(&mut self, owner: &Owner) -> bool {
        let Some(&(most, holder)) = self.by_count.last() else {
            return false;
        };
        if most <= self.held_by(owner) + 1 {
            return false;
        }
        let Some(&(forget_at, key)) = self.per_owner.get(&holder).and_then(BTreeSet::first) else {
            return false;
        };
        self.forget(forget_at, key, holder);
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
            sessions: None,
            nobody: PublicKey(
                ed25519_dalek::SigningKey::from_bytes(&[0x6e; 32])
                    .verifying_key()
                    .to_bytes(),
            ),
        }
    }

    /// The refusal of a request naming a device the relay does not know, after the
    /// same work as for one it knows: a signature is checked (against a key no device
    /// has), so the answer's timing does not tell whether the device exists either.
    pub fn unknown_device(
        &self,
        (method, path_and_query): (&str, &str),
        creds: &HttpCredentials,
    ) -> AuthError {
        if let Proof::Signature(signature) = &creds.proof {
            let message = http_message(&self.server_id, method, path_and_query, creds.time);
            let _ = verify(&self.nobody, &message, signature);
        }
        AuthError::BadSignature
    }

    /// Gives session keys from `sessions` and accepts MACs under them.
    pub fn with_sessions(self, sessions: SessionKeys) -> Self {
        HttpAuth {
            sessions: Some(sessions),
            ..self
        }
    }

    /// The session key to answer an accepted request with: a new one after a
    /// signature; `None` after a MAC (a key never makes another, so one that leaked
    /// ends with its life), or when this relay gives none.
    pub fn session_key(&self, creds: &HttpCredentials, now: UnixMillis) -> Option<Issued> {
        match &creds.proof {
            Proof::Signature(_) => Some(self.sessions.as_ref()?.issue(creds.device, now)),
            Proof::Mac(_) => None,
        }
    }

    /// The session key to give with a websocket sign-in, which proved the device's
    /// key by its signature of the relay's challenge; `None` when this relay gives
    /// none.
    pub fn sign_in_key(&self, device: DeviceId, now: UnixMillis) -> Option<Issued> {
        Some(self.sessions.as_ref()?.issue(device, now))
    }

    /// What can be checked of `creds` without the device's record: the time window,
    /// and a MAC in full (it needs the device id and the relay's secret only). Run
    /// before the record is looked up, so that nothing in the answer depends on
    /// whether the device exists until the request is proved.
    pub fn check_unkeyed(
        &self,
        (method, path_and_query): (&str, &str),
        creds: &HttpCredentials,
        now: UnixMillis,
    ) -> Result<(), AuthError> {
        if creds.time.abs_diff(now) > self.skew_ms {
            return Err(AuthError::ClockSkew);
        }
        match &creds.proof {
            Proof::Signature(_) => Ok(()),
            Proof::Mac(mac) => self.check_mac(mac, (method, path_and_query), creds, now),
        }
    }

    /// A MAC under this relay's session key of `creds.device`, on a download: keys
    /// prove `GET` and `HEAD` only, so a key that leaked uploads nothing.
    fn check_mac(
        &self,
        mac: &Mac,
        (method, path_and_query): (&str, &str),
        creds: &HttpCredentials,
        now: UnixMillis,
    ) -> Result<(), AuthError> {
        if !matches!(method, "GET" | "HEAD") {
            return Err(AuthError::BadSignature);
        }
        self.sessions
            .as_ref()
            .ok_or(AuthError::BadSignature)?
            .check(
                creds.device,
                mac,
                (&self.server_id, method, path_and_query, creds.time),
                now,
            )
    }

    /// Checks that `creds` sign `method path_and_query` with `device_key` (or MAC it
    /// under a session key of this relay's for their device), that the time is within
    /// the window around `now`, and that the proof is new; it then counts against
    /// `owner`'s share (the device's account).
    pub fn check(
        &self,
        device_key: &PublicKey,
        (method, path_and_query): (&str, &str),
        creds: &HttpCredentials,
        owner: Owner,
        now: UnixMillis,
    ) -> Result<(), AuthError> {
        let request = (method, path_and_query);
        self.check_unkeyed(request, creds, now)?;
        self.check_keyed(device_key, request, creds, owner, now)
    }

    /// The rest of [`check`](Self::check) once [`check_unkeyed`](Self::check_unkeyed)
    /// passed: a signature against the device's key (a MAC was checked in full
    /// there), then the memory of accepted requests.
    pub fn check_keyed(
        &self,
        device_key: &PublicKey,
        (method, path_and_query): (&str, &str),
        creds: &HttpCredentials,
        owner: Owner,
        now: UnixMillis,
    ) -> Result<(), AuthError> {
        if let Proof::Signature(signature) = &creds.proof {
            verify(
                device_key,
                &http_message(&self.server_id, method, path_and_query, creds.time),
                signature,
            )?;
        }
        let key = creds.replay_id();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.prune(now);
        if seen.keys.contains(&key) {
            return Err(AuthError::RequestReplayed);
        }
        // One account's share first: a flood of its own signed requests makes it wait,
        // not the others. Its oldest may be remembered for up to two windows (a time
        // up to `skew` ahead, then `skew`): one window is the hint.
        if seen.held_by(&owner) >= self.max_per_owner {
            return Err(AuthError::Busy {
                retry_after_ms: self.skew_ms.saturating_add(1),
            });
        }
        // Bounded whatever the request rate (each costs ~200 bytes): at the cap, take
        // the place of the heaviest holder's oldest, so a flood of accounts evicts its
        // own and a light account is not refused because others filled the memory.
        // Forgetting one early only lets that request be replayed, which is harmless
        // for blobs (see the module doc). The heaviest holders themselves wait for the
        // oldest to leave the window.
        if seen.keys.len() >= self.max_remembered && !seen.evict_for(&owner) {
            // At least a second: requests signed a window ago leave within
            // milliseconds, and a hint that short would have everyone refused retry
            // in a storm (each retry a signature check and a device lookup).
            let retry_after_ms = seen
                .first_forget()
                .map_or(MIN_RETRY_MS, |at| at.saturating_sub(now))
                .max(MIN_RETRY_MS);
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
    /// signature's first 32 bytes or the MAC, and the end of its time window.
    pub fn replay_key(&self, creds: &HttpCredentials) -> ([u8; 32], UnixMillis) {
        (
            creds.replay_id(),
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
    use ed25519_dalek::VerifyingKey;

    const OWNER: Owner = [1; 16];

    fn creds(sk: &ed25519_dalek::SigningKey, method: &str, pq: &str, time: u64) -> HttpCredentials {
        HttpCredentials {
            device: DeviceId([3; 16]),
            time,
            proof: Proof::Signature(sign(sk, &http_message("relay", method, pq, time))),
        }
    }

    /// Signs `GET pq` at `time` with `sk` and checks it for `owner` at `time`.
    fn get(
        auth: &HttpAuth,
        (sk, pk): &(ed25519_dalek::SigningKey, PublicKey),
        pq: &str,
        owner: Owner,
        time: u64,
    ) -> Result<(), AuthError> {
        auth.check(pk, ("GET", pq), &creds(sk, "GET", pq, time), owner, time)
    }

    /// Whether `GET pq` signed with `sk` at `time` is remembered.
    fn remembers(auth: &HttpAuth, sk: &ed25519_dalek::SigningKey, pq: &str, time: u64) -> bool {
        let (key, _) = auth.replay_key(&creds(sk, "GET", pq, time));
        auth.seen.lock().unwrap().keys.contains(&key)
    }

    /// How many remembered signatures `owner` holds.
    fn held_by(auth: &HttpAuth, owner: Owner) -> usize {
        auth.seen.lock().unwrap().held_by(&owner)
    }

    /// Every index counts each remembered signature once, and no owner is kept
    /// holding none.
    fn assert_consistent(auth: &HttpAuth) {
        let seen = auth.seen.lock().unwrap();
        assert_eq!(seen.expiry.len(), seen.keys.len());
        assert_eq!(
            seen.per_owner.values().map(BTreeSet::len).sum::<usize>(),
            seen.keys.len()
        );
        assert_eq!(seen.by_count.len(), seen.per_owner.len());
        for (owner, mine) in &seen.per_owner {
            assert!(!mine.is_empty());
            assert!(seen.by_count.contains(&(mine.len(), *owner)));
            for (at, key) in mine {
                assert!(seen.keys.contains(key));
                assert!(seen.expiry.contains(&(*at, *key, *owner)));
            }
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

    /// The memory stays at its cap whoever asks: the one holder asking for more waits;
    /// another account takes the place of its oldest.
    #[test]
    fn a_busy_answer_asks_for_at_least_a_second() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 1, 100_000);
        let now = 1_000_000;
        // Signed a whole window ago: remembered for one more millisecond only.
        let old = creds(&sk, "GET", "/blobs/0", now - 300_000);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/0"), &old, OWNER, now),
            Ok(())
        );
        let c = creds(&sk, "GET", "/blobs/1", now);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/1"), &c, OWNER, now),
            Err(AuthError::Busy {
                retry_after_ms: MIN_RETRY_MS
            })
        );
    }

    #[test]
    fn the_memory_of_signatures_is_bounded() {
        let (sk, pk) = key(4);
        let other = key(5);
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
        // Another account is not refused: it takes the place of OWNER's oldest.
        assert_eq!(get(&auth, &other, "/other/0", [2; 16], start + 3), Ok(()));
        assert_eq!(auth.remembered(), 3);
        assert!(!remembers(&auth, &sk, "/blobs/0", start));
        // A replay is still a replay, full or not.
        let again = creds(&sk, "GET", "/blobs/2", start + 2);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/2"), &again, OWNER, start + 4),
            Err(AuthError::RequestReplayed)
        );
        // OWNER, still the heaviest holder, waits until its oldest left the window.
        let c = creds(&sk, "GET", "/blobs/4", start + 4);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/4"), &c, OWNER, start + 4),
            Err(AuthError::Busy {
                retry_after_ms: 300_001 + 1 - 4
            })
        );
        let later = start + 300_002;
        let c = creds(&sk, "GET", "/blobs/4", later);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/4"), &c, OWNER, later),
            Ok(())
        );
        assert_eq!(auth.remembered(), 3);
        assert_consistent(&auth);
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

    /// A dozen free accounts, each at its own share, fill the relay's whole memory of
    /// signatures. A family's requests still go through: each takes the place of the
    /// oldest signature of a heaviest holder, and the memory stays at its cap. The
    /// family gets as many as the heaviest holder has less one, then waits like them.
    #[test]
    fn a_dozen_accounts_filling_the_memory_do_not_stop_a_light_one() {
        let flooders: Vec<_> = (0..12u8).map(|h| (key(10 + h), [10 + h; 16])).collect();
        let family = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 96, 8);
        let start = 1_000_000;
        let time = |h: u64, i: u64| start + h * 100 + i;
        for (h, (k, owner)) in (0u64..).zip(&flooders) {
            for i in 0..8 {
                let pq = format!("/blobs/{i}");
                assert_eq!(get(&auth, k, &pq, *owner, time(h, i)), Ok(()));
            }
        }
        assert_eq!(auth.remembered(), 96, "the memory is full");
        let now = time(12, 0);
        for i in 0..7 {
            let pq = format!("/gallery/{i}");
            assert_eq!(
                get(&auth, &family, &pq, OWNER, now + i),
                Ok(()),
                "the family's request {i} is not refused"
            );
            assert_eq!(auth.remembered(), 96, "and the memory stays at its cap");
        }
        // Seven flooders lost their oldest, nothing else.
        let mut evicted = 0;
        for (h, ((sk, _), owner)) in (0u64..).zip(&flooders) {
            let held = held_by(&auth, *owner);
            assert!(held == 7 || held == 8, "{held}");
            evicted += 8 - held;
            assert_eq!(remembers(&auth, sk, "/blobs/0", time(h, 0)), held == 8);
            for i in 1..8 {
                let pq = format!("/blobs/{i}");
                assert!(remembers(&auth, sk, &pq, time(h, i)));
            }
        }
        assert_eq!((evicted, held_by(&auth, OWNER)), (7, 7));
        // With 7, one more would make the family a heaviest holder: it waits now.
        assert!(matches!(
            get(&auth, &family, "/gallery/7", OWNER, now + 7),
            Err(AuthError::Busy { .. })
        ));
        assert_consistent(&auth);
    }

    /// When the memory is full and the one asking is itself a heaviest holder (or one
    /// short of it), it is told to wait and nothing is forgotten: taking another's
    /// place would only make the two swap back and forth.
    #[test]
    fn a_heaviest_holder_waits_when_the_memory_is_full() {
        let keys: Vec<_> = (0..4u8).map(|h| (key(10 + h), [10 + h; 16])).collect();
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 12, 100);
        let start = 1_000_000;
        for (h, (k, owner)) in (0u64..).zip(&keys[..3]) {
            for i in 0..4 {
                let pq = format!("/blobs/{i}");
                assert_eq!(get(&auth, k, &pq, *owner, start + h * 10 + i), Ok(()));
            }
        }
        // Equal shares: each holder is a heaviest one.
        for (h, (k, owner)) in (0u64..).zip(&keys[..3]) {
            assert_eq!(
                get(&auth, k, "/blobs/new", *owner, start + 100 + h),
                Err(AuthError::Busy {
                    retry_after_ms: 300_001 - 100 - h
                })
            );
        }
        assert_eq!(auth.remembered(), 12);
        for (_, owner) in &keys[..3] {
            assert_eq!(held_by(&auth, *owner), 4, "nothing was forgotten");
        }
        // A fourth account takes one place; then its victim, one short of the
        // heaviest, waits too rather than taking it back.
        let (newcomer, newcomer_owner) = &keys[3];
        assert_eq!(
            get(&auth, newcomer, "/blobs/0", *newcomer_owner, start + 110),
            Ok(())
        );
        let victim = keys[..3]
            .iter()
            .find(|(_, owner)| held_by(&auth, *owner) == 3)
            .expect("one holder lost one");
        assert!(matches!(
            get(&auth, &victim.0, "/blobs/new", victim.1, start + 111),
            Err(AuthError::Busy { .. })
        ));
        assert_eq!(auth.remembered(), 12);
        assert_eq!(held_by(&auth, victim.1), 3);
        assert_consistent(&auth);
    }

    /// Evictions take from the heaviest holders only: a light account's signatures
    /// stay remembered, and so do the heavy one's newest, so replaying any of them is
    /// still refused. A replay of a forgotten one is not let in either while its owner
    /// is the heaviest holder.
    #[test]
    fn evictions_spare_light_accounts_and_remembered_signatures() {
        let (light, medium, heavy) = ((key(4), [1; 16]), (key(5), [2; 16]), (key(6), [3; 16]));
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 10, 100);
        let start = 1_000_000;
        for (n, (base, (k, owner))) in [
            (2u64, (0u64, &light)),
            (3, (10, &medium)),
            (5, (20, &heavy)),
        ] {
            for i in 0..n {
                let pq = format!("/blobs/{i}");
                assert_eq!(get(&auth, k, &pq, *owner, start + base + i), Ok(()));
            }
        }
        assert_eq!(auth.remembered(), 10);
        // Four newcomers, one request each: heavy loses two, then the heaviest of
        // medium and heavy one each, down to the light account's two.
        for n in 0..4u8 {
            let newcomer = key(20 + n);
            assert_eq!(
                get(&auth, &newcomer, "/blobs/x", [20 + n; 16], start + 30),
                Ok(())
            );
        }
        assert_eq!(
            [light.1, medium.1, heavy.1].map(|o| held_by(&auth, o)),
            [2, 2, 2]
        );
        for i in 0..2 {
            let pq = format!("/blobs/{i}");
            assert_eq!(
                get(&auth, &light.0, &pq, light.1, start + i),
                Err(AuthError::RequestReplayed),
                "the light account's {i} was not forgotten"
            );
        }
        assert_eq!(
            get(&auth, &heavy.0, "/blobs/4", heavy.1, start + 24),
            Err(AuthError::RequestReplayed)
        );
        // Heavy's oldest was forgotten; now a heaviest holder, it may not come back.
        assert!(!remembers(&auth, &heavy.0.0, "/blobs/0", start + 20));
        assert!(matches!(
            get(&auth, &heavy.0, "/blobs/0", heavy.1, start + 20),
            Err(AuthError::Busy { .. })
        ));
        assert_eq!(auth.remembered(), 10);
        assert_consistent(&auth);
    }

    /// Signatures forgotten early are not forgotten again when their window ends:
    /// each owner's count comes back to zero, and owners holding none are dropped.
    #[test]
    fn signatures_forgotten_early_leave_their_window_once() {
        let heavy = (key(5), [2; 16]);
        let light = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 10, 100);
        let start = 1_000_000;
        for i in 0..10u64 {
            let pq = format!("/blobs/{i}");
            assert_eq!(get(&auth, &heavy.0, &pq, heavy.1, start + i), Ok(()));
        }
        for i in 0..3u64 {
            let pq = format!("/gallery/{i}");
            assert_eq!(get(&auth, &light, &pq, OWNER, start + 20 + i), Ok(()));
        }
        assert_eq!((held_by(&auth, heavy.1), held_by(&auth, OWNER)), (7, 3));
        assert_consistent(&auth);
        // Past the heavy account's window: its seven left, the evicted three are not
        // counted again, and it is no longer kept.
        let later = start + 300_001 + 9;
        assert_eq!(get(&auth, &light, "/gallery/late", OWNER, later), Ok(()));
        assert_eq!(auth.remembered(), 4);
        assert_eq!((held_by(&auth, heavy.1), held_by(&auth, OWNER)), (0, 4));
        assert!(!auth.seen.lock().unwrap().per_owner.contains_key(&heavy.1));
        assert_consistent(&auth);
        // Past the light account's window too: nothing is left, nobody is kept.
        auth.seen.lock().unwrap().prune(later + 300_001);
        assert_eq!(auth.remembered(), 0);
        {
            let seen = auth.seen.lock().unwrap();
            assert!(seen.per_owner.is_empty() && seen.by_count.is_empty());
            assert!(seen.expiry.is_empty());
        }
        // The heavy account has its whole share again.
        for i in 0..10u64 {
            let pq = format!("/again/{i}");
            let t = later + 300_001 + i;
            assert_eq!(get(&auth, &heavy.0, &pq, heavy.1, t), Ok(()));
        }
        assert_consistent(&auth);
    }

    #[test]
    fn a_request_signed_for_another_relay_does_not_verify() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 10, 100_000);
        let other = HttpCredentials {
            device: DeviceId([3; 16]),
            time: 1_000_000,
            proof: Proof::Signature(sign(
                &sk,
                &http_message("other-relay", "GET", "/blobs/ab", 1_000_000),
            )),
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
        let mac = format!("99.{}", "cd".repeat(32));
        let dev = "01".repeat(16);
        let ok = HttpCredentials::parse(Some(&dev), Some("12"), (Some(&sig), None));
        assert_eq!(ok.map(|c| c.time), Ok(12));
        let ok = HttpCredentials::parse(Some(&dev), Some("12"), (None, Some(&mac)));
        assert!(matches!(ok.map(|c| c.proof), Ok(Proof::Mac(m)) if m.expires == 99));
        for (d, t, proof) in [
            (None, Some("1"), (Some(sig.as_str()), None)),
            (Some(dev.as_str()), Some("x"), (Some(sig.as_str()), None)),
            (Some(dev.as_str()), Some("1"), (Some("abcd"), None)),
            (Some("zz"), Some("1"), (Some(sig.as_str()), None)),
            (Some(dev.as_str()), Some("1"), (None, Some("99.abcd"))),
            // Neither, or both: which one is meant is not guessed.
            (Some(dev.as_str()), Some("1"), (None, None)),
            (
                Some(dev.as_str()),
                Some("1"),
                (Some(sig.as_str()), Some(mac.as_str())),
            ),
        ] {
            assert_eq!(
                HttpCredentials::parse(d, t, proof),
                Err(AuthError::MissingCredentials)
            );
        }
    }

    /// A MAC'd request, as the device makes it after a signed one.
    fn maced(issued: &Issued, method: &str, pq: &str, time: u64) -> HttpCredentials {
        HttpCredentials {
            device: DeviceId([3; 16]),
            time,
            proof: Proof::Mac(Mac {
                expires: issued.expires,
                mac: doran_protocol::signing::http_mac(&issued.key, "relay", method, pq, time),
            }),
        }
    }

    #[test]
    fn a_signed_request_gets_a_session_key_and_its_macs_are_accepted_once() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 100, 100)
            .with_sessions(SessionKeys::new([9; 32], 600_000, 300_000));
        let now = 1_000_000;
        let signed = creds(&sk, "GET", "/blobs/ab", now);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/ab"), &signed, OWNER, now),
            Ok(())
        );
        let issued = auth
            .session_key(&signed, now)
            .expect("a key after a signature");
        let c = maced(&issued, "GET", "/blobs/cd", now + 1);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/cd"), &c, OWNER, now + 1),
            Ok(())
        );
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/cd"), &c, OWNER, now + 2),
            Err(AuthError::RequestReplayed)
        );
        assert_eq!(auth.remembered(), 2);
        // A MAC never brings a key, however old its own: a key that leaked ends.
        for at in [now + 1, now + 300_001, now + 599_999] {
            assert_eq!(auth.session_key(&c, at), None);
        }
        // A key proves downloads only: a MAC'd upload is refused.
        let put = maced(&issued, "PUT", "/blobs/cd?owner=me", now + 3);
        assert_eq!(
            auth.check(&pk, ("PUT", "/blobs/cd?owner=me"), &put, OWNER, now + 3),
            Err(AuthError::BadSignature)
        );
        // The MAC's time is in the window like a signature's.
        let old = maced(&issued, "GET", "/blobs/ef", now - 300_001);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/ef"), &old, OWNER, now),
            Err(AuthError::ClockSkew)
        );
    }

    /// A request naming an unknown device is refused as a bad signature after its
    /// signature was checked, like any other: against a valid key, so that the check
    /// runs in full (a key that does not parse would fail at once).
    #[test]
    fn an_unknown_device_is_refused_after_the_same_check() {
        let (sk, _) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 100, 100);
        assert!(VerifyingKey::from_bytes(auth.nobody.as_bytes()).is_ok());
        let c = creds(&sk, "GET", "/blobs/ab", 1_000_000);
        assert_eq!(
            auth.unknown_device(("GET", "/blobs/ab"), &c),
            AuthError::BadSignature
        );
        assert_eq!(auth.remembered(), 0, "nothing is remembered of it");
    }

    #[test]
    fn a_relay_without_session_keys_gives_none_and_refuses_macs() {
        let (sk, pk) = key(4);
        let auth = HttpAuth::new("relay", Duration::from_secs(300), 100, 100);
        let now = 1_000_000;
        let signed = creds(&sk, "GET", "/blobs/ab", now);
        assert_eq!(auth.session_key(&signed, now), None);
        let elsewhere = SessionKeys::new([9; 32], 600_000, 0).issue(DeviceId([3; 16]), now);
        let c = maced(&elsewhere, "GET", "/blobs/ab", now);
        assert_eq!(
            auth.check(&pk, ("GET", "/blobs/ab"), &c, OWNER, now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(auth.remembered(), 0);
    }
}
