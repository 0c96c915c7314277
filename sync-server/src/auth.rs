//! Proofs of identity: sign-in challenges and ed25519 signatures.
//!
//! Pure logic, no I/O: the session and the HTTP layer look keys up in the store and
//! call these checks, then map [`AuthError`] to an error frame or a status code.
//!
//! - [`Challenges`] issues a random challenge per connection (nonce, server id,
//!   expiry) and accepts each nonce **once**: the first answer consumes it, whether
//!   it succeeds or not, so a second answer is [`AuthError::ChallengeReplayed`] and a
//!   late one [`AuthError::ChallengeExpired`]. A device that failed sends `Hello`
//!   again for a fresh challenge.
//! - [`verify`] checks an ed25519 signature (strict verification: no malleable or
//!   small-order keys) over one of the canonical messages of
//!   [`doran_protocol::signing`].
//! - [`HttpAuth`] checks the signed headers of blob requests (see [`http`]), or a MAC
//!   under a session key the relay gave the device (see [`session_keys`]).

pub mod http;
pub mod session_keys;

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::Mutex,
};

use doran_protocol::{Challenge, ErrorCode, PROTOCOL_VERSION, PublicKey, Signature, UnixMillis};
use ed25519_dalek::VerifyingKey;

pub use http::{HttpAuth, HttpCredentials, http_message};

/// Why a proof of identity was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The signature does not verify (or the key is not a valid ed25519 key).
    #[error("the signature does not verify")]
    BadSignature,
    /// The challenge expired before it was answered.
    #[error("the challenge has expired")]
    ChallengeExpired,
    /// The challenge was already answered (or never issued by this relay).
    #[error("the challenge was already used")]
    ChallengeReplayed,
    /// A signed HTTP request's time is too far from the relay's clock.
    #[error("the request time is too far from the server clock")]
    ClockSkew,
    /// A request's session key has expired: the device signs it instead.
    #[error("the session key has expired")]
    SessionKeyExpired,
    /// A signed HTTP request was already seen.
    #[error("the request was already used")]
    RequestReplayed,
    /// The HTTP authentication headers are missing or malformed.
    #[error("missing or malformed authentication headers")]
    MissingCredentials,
    /// The relay remembers as many signed requests as it may; retry after this many
    /// milliseconds, when the oldest leave their window.
    #[error("too many signed requests right now")]
    Busy {
        /// When to retry.
        retry_after_ms: u64,
    },
}

impl AuthError {
    /// The protocol error code for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            AuthError::BadSignature => ErrorCode::BadSignature,
            AuthError::ChallengeExpired | AuthError::ClockSkew | AuthError::SessionKeyExpired => {
                ErrorCode::ChallengeExpired
            }
            AuthError::ChallengeReplayed | AuthError::RequestReplayed => {
                ErrorCode::ChallengeReplayed
            }
            AuthError::MissingCredentials => ErrorCode::NotSignedIn,
            AuthError::Busy { .. } => ErrorCode::Busy,
        }
    }
}

/// Verifies an ed25519 signature by `key` over `message` (strictly).
pub fn verify(key: &PublicKey, message: &[u8], signature: &Signature) -> Result<(), AuthError> {
    let key = VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| AuthError::BadSignature)?;
    let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
    key.verify_strict(message, &signature)
        .map_err(|_| AuthError::BadSignature)
}

/// Issues sign-in challenges and accepts each one once, before it expires.
#[derive(Debug)]
pub struct Challenges {
    server_id: String,
    ttl_ms: u64,
    open: Mutex<Open>,
}

/// Issued, unanswered nonces and when they expire: a map to ask, and a min-heap by
/// expiry to drop the expired ones from, so a `Hello` costs O(log n) however many
/// challenges are open (a scan of all of them per `Hello` once there were 1 024, as
/// before, was easy to provoke and held this lock).
///
/// An answered or forgotten nonce leaves the map at once and the heap when it comes
/// up (or when the heap is rebuilt: see [`Open::compact`]). Each connection holds one
/// open challenge at most, so the map is bounded by the connections.
#[derive(Debug, Default)]
struct Open {
    expiry: HashMap<[u8; 32], UnixMillis>,
    heap: BinaryHeap<Reverse<(UnixMillis, [u8; 32])>>,
}

/// Heap entries of answered nonces kept at most, beyond twice the open ones, before
/// the heap is rebuilt.
const STALE_SLACK: usize = 1024;

impl Open {
    /// Forgets the challenges expired at `now`; returns how many heap entries it took
    /// off (each O(log n)).
    fn prune(&mut self, now: UnixMillis) -> usize {
        let mut popped = 0;
        while let Some(Reverse((exp, nonce))) = self.heap.peek().copied() {
            if exp > now {
                break;
            }
            self.heap.pop();
            popped += 1;
            self.expiry.remove(&nonce);
        }
        popped
    }

    /// Rebuilds the heap from the open nonces once answered ones make up most of it:
    /// challenges answered in seconds would otherwise stay in it for the whole ttl.
    /// O(n), after at least n answers since the last rebuild, so O(1) per answer.
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.expiry.len() + STALE_SLACK {
            self.heap = self
                .expiry
                .iter()
                .map(|(nonce, exp)| Reverse((*exp, *nonce)))
                .collect();
        }
    }
}

impl Challenges {
    /// Challenges naming `server_id`, answerable for `ttl_ms`.
    pub fn new(server_id: impl Into<String>, ttl_ms: u64) -> Self {
        Challenges {
            server_id: server_id.into(),
            ttl_ms,
            open: Mutex::new(Open::default()),
        }
    }

    /// The server id signed into every challenge.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// A fresh challenge with a random nonce, expiring `ttl` after `now`.
    pub fn issue(&self, now: UnixMillis) -> Challenge {
        let nonce: [u8; 32] = rand::random();
        let expires_at = now.saturating_add(self.ttl_ms);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.prune(now);
        open.expiry.insert(nonce, expires_at);
        open.heap.push(Reverse((expires_at, nonce)));
        Challenge {
            protocol_version: PROTOCOL_VERSION,
            nonce,
            server_id: self.server_id.clone(),
            expires_at,
        }
    }

    /// Consumes `challenge`: Ok the first time, if it was issued here, is unchanged
    /// and has not expired at `now`; an error otherwise. Call it once per answer,
    /// before checking the answer's signatures, so a failed answer uses it up too.
    pub fn redeem(&self, challenge: &Challenge, now: UnixMillis) -> Result<(), AuthError> {
        match self.take(&challenge.nonce) {
            None => Err(AuthError::ChallengeReplayed),
            Some(exp) if exp != challenge.expires_at || challenge.server_id != self.server_id => {
                Err(AuthError::ChallengeReplayed)
            }
            Some(_) if challenge.is_expired(now) => Err(AuthError::ChallengeExpired),
            Some(_) => Ok(()),
        }
    }

    /// Forgets an unanswered challenge (its connection closed).
    pub fn forget(&self, challenge: &Challenge) {
        self.take(&challenge.nonce);
    }

    /// Removes `nonce` from the open challenges; its expiry if it was open.
    fn take(&self, nonce: &[u8; 32]) -> Option<UnixMillis> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let exp = open.expiry.remove(nonce);
        open.compact();
        exp
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use doran_protocol::{DeviceId, UserId, signing};
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    pub(crate) fn key(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let pk = PublicKey(sk.verifying_key().to_bytes());
        (sk, pk)
    }

    pub(crate) fn sign(sk: &SigningKey, msg: &[u8]) -> Signature {
        Signature(sk.sign(msg).to_bytes())
    }

    #[test]
    fn a_good_signature_verifies_and_a_bad_one_does_not() {
        let (sk, pk) = key(1);
        let (_, other) = key(2);
        let ch = Challenges::new("relay", 1000).issue(0);
        let (user, device) = (UserId([1; 16]), DeviceId([2; 16]));
        let msg = signing::signin_message(&ch, &user, &device);
        let sig = sign(&sk, &msg);
        assert_eq!(verify(&pk, &msg, &sig), Ok(()));
        assert_eq!(verify(&other, &msg, &sig), Err(AuthError::BadSignature));
        let mut tampered = msg.clone();
        tampered[30] ^= 1;
        assert_eq!(verify(&pk, &tampered, &sig), Err(AuthError::BadSignature));
        assert_eq!(
            verify(&pk, &msg, &Signature([0; 64])),
            Err(AuthError::BadSignature)
        );
        // Not a curve point.
        assert_eq!(
            verify(&PublicKey([0xff; 32]), &msg, &sig),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_challenge_is_accepted_once() {
        let challenges = Challenges::new("relay", 1000);
        let ch = challenges.issue(10);
        assert_eq!(ch.server_id, "relay");
        assert_eq!(ch.expires_at, 1010);
        assert_eq!(challenges.redeem(&ch, 20), Ok(()));
        assert_eq!(
            challenges.redeem(&ch, 21),
            Err(AuthError::ChallengeReplayed)
        );
    }

    #[test]
    fn an_expired_challenge_is_refused_and_consumed() {
        let challenges = Challenges::new("relay", 1000);
        let ch = challenges.issue(0);
        assert_eq!(
            challenges.redeem(&ch, 1000),
            Err(AuthError::ChallengeExpired)
        );
        assert_eq!(challenges.redeem(&ch, 5), Err(AuthError::ChallengeReplayed));
    }

    #[test]
    fn a_forged_or_altered_challenge_is_refused() {
        let challenges = Challenges::new("relay", 1000);
        let forged = Challenge {
            protocol_version: PROTOCOL_VERSION,
            nonce: [9; 32],
            server_id: "relay".into(),
            expires_at: 1000,
        };
        assert_eq!(
            challenges.redeem(&forged, 0),
            Err(AuthError::ChallengeReplayed)
        );
        let mut extended = challenges.issue(0);
        extended.expires_at += 10_000;
        assert_eq!(
            challenges.redeem(&extended, 0),
            Err(AuthError::ChallengeReplayed)
        );
    }

    #[test]
    fn many_unanswered_challenges_are_pruned_once_expired() {
        let challenges = Challenges::new("relay", 10);
        for _ in 0..=STALE_SLACK {
            challenges.issue(0);
        }
        challenges.issue(100);
        challenges.issue(100);
        let open = challenges.open.lock().map(|m| m.expiry.len()).unwrap_or(0);
        assert_eq!(open, 2);
    }

    /// The open challenges, and the heap entries kept for them.
    fn sizes(challenges: &Challenges) -> (usize, usize) {
        let open = challenges.open.lock().unwrap_or_else(|p| p.into_inner());
        (open.expiry.len(), open.heap.len())
    }

    #[test]
    fn a_hello_looks_only_at_the_challenges_that_expired() {
        let challenges = Challenges::new("relay", 60_000);
        const MANY: usize = 16_384;
        for _ in 0..MANY {
            challenges.issue(1_000);
        }
        // Another Hello, and another connection's answered one: none expired, none
        // looked at.
        let popped = |now| {
            let mut open = challenges.open.lock().unwrap_or_else(|p| p.into_inner());
            open.prune(now)
        };
        assert_eq!(popped(2_000), 0);
        let ch = challenges.issue(2_000);
        assert_eq!(challenges.redeem(&ch, 2_001), Ok(()));
        assert_eq!(popped(2_001), 0);
        assert_eq!(sizes(&challenges), (MANY, MANY + 1));
        // Once they expire, each is dropped once.
        assert_eq!(popped(61_000), MANY);
        assert_eq!(sizes(&challenges), (0, 1));
        assert_eq!(popped(62_000), 1);
    }

    #[test]
    fn answered_challenges_do_not_pile_up_in_the_heap() {
        let challenges = Challenges::new("relay", 60_000);
        let held = challenges.issue(0);
        for now in 0..10 * STALE_SLACK as u64 {
            let ch = challenges.issue(now);
            challenges.forget(&ch);
        }
        let (open, heap) = sizes(&challenges);
        assert_eq!(open, 1);
        assert!(heap <= 2 * open + STALE_SLACK + 1, "{heap} heap entries");
        // The one still open is still answerable.
        assert_eq!(challenges.redeem(&held, 1), Ok(()));
    }
}
