//! Canonical bytes for every signature the protocol carries.
//!
//! Signatures are ed25519 over a message built here and nowhere else, so the device
//! that signs and the relay that verifies always agree byte for byte. Every message
//! starts with a NUL-terminated ASCII **domain** (`dorandoran/<purpose>/v1\0`), so a
//! signature made for one purpose can never be replayed as another; after it come the
//! fields, in the order documented on each function, encoded as:
//!
//! | field type | encoding |
//! |---|---|
//! | id, key, nonce (fixed size) | the raw bytes (16 or 32) |
//! | `u64` (times) | 8 bytes big-endian |
//! | `bool` | 1 byte, `0` or `1` |
//! | string | 8-byte big-endian byte length, then the UTF-8 bytes |
//!
//! Messages answering a [`Challenge`] include its `nonce`, `server_id` and
//! `expires_at` (in that order, right after the domain), so they are good for one
//! connection to one server for a short time. Messages made later in a session
//! (invites and answers) include the `server_id` and the signer's user and device.
//!
//! Who signs what:
//!
//! | frame | signer | message |
//! |---|---|---|
//! | `Register.user_signature` | new user key | [`register_user_message`] |
//! | `Register.device_signature` | new device key | [`register_device_message`] |
//! | `SignIn.signature` | device key | [`signin_message`] |
//! | `Recover.user_signature` | restored user key | [`recover_user_message`] |
//! | `Recover.device_signature` | new device key | [`recover_device_message`] |
//! | `LinkDevice.signature` | new device key | [`link_device_message`] |
//! | `Request::SendInvite.signature` | inviter's device key | [`invite_message`] |
//! | `Request::AnswerInvite.signature` | invitee's device key | [`invite_answer_message`] |
//! | `Request::ConfirmLink.signature` | confirming device key | [`link_confirm_message`] |
//! | [`DeviceCert`](crate::model::DeviceCert) `.signature` | user key, or a certified device key of the user | [`device_cert_message`] |

use crate::{
    Challenge, DeviceId, DocId, FamilyId, InviteId, LinkId, PublicKey, UnixMillis, UserId,
};

/// Domain of [`signin_message`].
pub const SIGNIN_DOMAIN: &[u8] = b"dorandoran/signin/v1\0";
/// Domain of [`register_user_message`].
pub const REGISTER_USER_DOMAIN: &[u8] = b"dorandoran/register/user/v1\0";
/// Domain of [`register_device_message`].
pub const REGISTER_DEVICE_DOMAIN: &[u8] = b"dorandoran/register/device/v1\0";
/// Domain of [`recover_user_message`].
pub const RECOVER_USER_DOMAIN: &[u8] = b"dorandoran/recover/user/v1\0";
/// Domain of [`recover_device_message`].
pub const RECOVER_DEVICE_DOMAIN: &[u8] = b"dorandoran/recover/device/v1\0";
/// Domain of [`link_device_message`].
pub const LINK_DEVICE_DOMAIN: &[u8] = b"dorandoran/link-device/v1\0";
/// Domain of [`invite_message`] (v2: the sealed card in place of the proposed 호칭).
pub const INVITE_DOMAIN: &[u8] = b"dorandoran/invite/v2\0";
/// Domain of [`invite_answer_message`].
pub const INVITE_ANSWER_DOMAIN: &[u8] = b"dorandoran/invite-answer/v1\0";
/// Domain of [`link_confirm_message`].
pub const LINK_CONFIRM_DOMAIN: &[u8] = b"dorandoran/link-confirm/v1\0";

/// Domain of [`device_cert_message`].
pub const DEVICE_CERT_DOMAIN: &[u8] = b"dorandoran/device-cert/v1\0";

/// Domain of [`key_log_commit_message`].
pub const KEY_LOG_COMMIT_DOMAIN: &[u8] = b"dorandoran/key-log-commit/v1\0";

/// Domain of [`http_message`] (v2: the relay's id joined the signed fields).
pub const HTTP_DOMAIN: &[u8] = b"dorandoran/http/v2\0";

/// Domain of [`http_mac`]: the message a session key authenticates (a MAC, not a
/// signature, but its fields must never be read as another message's either).
pub const HTTP_MAC_DOMAIN: &[u8] = b"dorandoran/http-mac/v1\0";

/// Every domain, for tests and for verifiers that want to assert uniqueness.
pub const ALL_DOMAINS: &[&[u8]] = &[
    HTTP_DOMAIN,
    HTTP_MAC_DOMAIN,
    SIGNIN_DOMAIN,
    REGISTER_USER_DOMAIN,
    REGISTER_DEVICE_DOMAIN,
    RECOVER_USER_DOMAIN,
    RECOVER_DEVICE_DOMAIN,
    LINK_DEVICE_DOMAIN,
    INVITE_DOMAIN,
    INVITE_ANSWER_DOMAIN,
    LINK_CONFIRM_DOMAIN,
    DEVICE_CERT_DOMAIN,
    KEY_LOG_COMMIT_DOMAIN,
];

/// Appends fields in the canonical encoding.
struct Message(Vec<u8>);

impl Message {
    fn new(domain: &[u8]) -> Self {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(domain);
        Message(out)
    }

    fn challenge(self, challenge: &Challenge) -> Self {
        self.raw(&challenge.nonce)
            .str(&challenge.server_id)
            .u64(challenge.expires_at)
    }

    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn u64(self, v: u64) -> Self {
        self.raw(&v.to_be_bytes())
    }

    fn bool(self, v: bool) -> Self {
        self.raw(&[u8::from(v)])
    }

    fn str(self, s: &str) -> Self {
        let len = u64::try_from(s.len()).unwrap_or(u64::MAX);
        self.u64(len).raw(s.as_bytes())
    }

    fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Signed by the **device key** to sign in:
/// `SIGNIN_DOMAIN ‖ nonce ‖ server_id ‖ expires_at ‖ user ‖ device`.
pub fn signin_message(challenge: &Challenge, user: &UserId, device: &DeviceId) -> Vec<u8> {
    Message::new(SIGNIN_DOMAIN)
        .challenge(challenge)
        .raw(user.as_bytes())
        .raw(device.as_bytes())
        .finish()
}

fn register_fields(
    message: Message,
    email: &str,
    nickname: &str,
    personal_doc: &DocId,
    user_key: &PublicKey,
    device: &DeviceId,
    device_key: &PublicKey,
) -> Vec<u8> {
    message
        .str(email)
        .str(nickname)
        .raw(personal_doc.as_bytes())
        .raw(user_key.as_bytes())
        .raw(device.as_bytes())
        .raw(device_key.as_bytes())
        .finish()
}

/// Signed by the new **user key** to register (it vouches for the first device key):
/// `REGISTER_USER_DOMAIN ‖ nonce ‖ server_id ‖ expires_at ‖ email ‖ nickname ‖
/// personal_doc ‖ user_key ‖ device ‖ device_key`.
pub fn register_user_message(
    challenge: &Challenge,
    email: &str,
    nickname: &str,
    personal_doc: &DocId,
    user_key: &PublicKey,
    device: &DeviceId,
    device_key: &PublicKey,
) -> Vec<u8> {
    register_fields(
        Message::new(REGISTER_USER_DOMAIN).challenge(challenge),
        email,
        nickname,
        personal_doc,
        user_key,
        device,
        device_key,
    )
}

/// Signed by the new **device key** to register (proves the device holds it): the
/// same fields as [`register_user_message`] under `REGISTER_DEVICE_DOMAIN`.
pub fn register_device_message(
    challenge: &Challenge,
    email: &str,
    nickname: &str,
    personal_doc: &DocId,
    user_key: &PublicKey,
    device: &DeviceId,
    device_key: &PublicKey,
) -> Vec<u8> {
    register_fields(
        Message::new(REGISTER_DEVICE_DOMAIN).challenge(challenge),
        email,
        nickname,
        personal_doc,
        user_key,
        device,
        device_key,
    )
}

fn recover_body(
    domain: &[u8],
    challenge: &Challenge,
    user_key: &PublicKey,
    device: &DeviceId,
    device_key: &PublicKey,
) -> Vec<u8> {
    Message::new(domain)
        .challenge(challenge)
        .raw(user_key.as_bytes())
        .raw(device.as_bytes())
        .raw(device_key.as_bytes())
        .finish()
}

/// Signed by the **user key restored from the recovery phrase** to add a new device:
/// `RECOVER_USER_DOMAIN ‖ nonce ‖ server_id ‖ expires_at ‖ user_key ‖ device ‖
/// device_key`.
pub fn recover_user_message(
    challenge: &Challenge,
    user_key: &PublicKey,
    device: &DeviceId,
    device_key: &PublicKey,
) -> Vec<u8> {
    recover_body(RECOVER_USER_DOMAIN, challenge, user_key, device, device_key)
}

/// Signed by the new **device key** when recovering: the same fields as
/// [`recover_user_message`] under `RECOVER_DEVICE_DOMAIN`.
pub fn recover_device_message(
    challenge: &Challenge,
    user_key: &PublicKey,
    device: &DeviceId,
    device_key: &PublicKey,
) -> Vec<u8> {
    recover_body(
        RECOVER_DEVICE_DOMAIN,
        challenge,
        user_key,
        device,
        device_key,
    )
}

/// Signed by the new **device key** to redeem a link code:
/// `LINK_DEVICE_DOMAIN ‖ nonce ‖ server_id ‖ expires_at ‖ code ‖ device ‖ device_key`.
pub fn link_device_message(
    challenge: &Challenge,
    code: &str,
    device: &DeviceId,
    device_key: &PublicKey,
) -> Vec<u8> {
    Message::new(LINK_DEVICE_DOMAIN)
        .challenge(challenge)
        .str(code)
        .raw(device.as_bytes())
        .raw(device_key.as_bytes())
        .finish()
}

/// Signed by a **signed-in device key** of the user to confirm or reject a new
/// device's link request:
/// `LINK_CONFIRM_DOMAIN ‖ server_id ‖ link ‖ user ‖ device ‖ new_device ‖ new_device_key ‖
/// accept`. It names the new device and its key, so a confirmation shown for one
/// request cannot be spent on another.
pub fn link_confirm_message(
    server_id: &str,
    link: &LinkId,
    user: &UserId,
    device: &DeviceId,
    new_device: &DeviceId,
    new_device_key: &PublicKey,
    accept: bool,
) -> Vec<u8> {
    Message::new(LINK_CONFIRM_DOMAIN)
        .str(server_id)
        .raw(link.as_bytes())
        .raw(user.as_bytes())
        .raw(device.as_bytes())
        .raw(new_device.as_bytes())
        .raw(new_device_key.as_bytes())
        .bool(accept)
        .finish()
}

/// Signed by the **user key**, or by a certified **device key** of the same user, to
/// vouch for a device's key: `DEVICE_CERT_DOMAIN ‖ user ‖ device ‖ device_key`. No
/// server id and no time: a certificate holds wherever the family's documents are
/// stored, and ends only with the device's revocation.
pub fn device_cert_message(user: &UserId, device: &DeviceId, device_key: &PublicKey) -> Vec<u8> {
    Message::new(DEVICE_CERT_DOMAIN)
        .raw(user.as_bytes())
        .raw(device.as_bytes())
        .raw(device_key.as_bytes())
        .finish()
}

/// Signed by the **committing device's key** over a Commit entry of a family's key
/// log: `KEY_LOG_COMMIT_DOMAIN ‖ family ‖ device ‖ entry body` (the Commit and its
/// Welcome). A device outside the family's group cannot check the Commit itself (it
/// is encrypted to the group); this tells it the entry comes from a device it knows,
/// not from the relay.
pub fn key_log_commit_message(family: &[u8; 16], device: &DeviceId, body: &[u8]) -> Vec<u8> {
    Message::new(KEY_LOG_COMMIT_DOMAIN)
        .raw(family)
        .raw(device.as_bytes())
        .raw(body)
        .finish()
}

/// Signed by the **inviter's device key** to send an invite:
/// `INVITE_DOMAIN ‖ server_id ‖ invite ‖ family ‖ inviter ‖ inviter_device ‖ invitee ‖
/// blake3(card)`. The card is opaque to the relay; signing it means the relay cannot
/// hand the invitee another card under the inviter's name.
pub fn invite_message(
    server_id: &str,
    invite: &InviteId,
    family: &FamilyId,
    inviter: &UserId,
    inviter_device: &DeviceId,
    invitee: &UserId,
    card: &[u8],
) -> Vec<u8> {
    Message::new(INVITE_DOMAIN)
        .str(server_id)
        .raw(invite.as_bytes())
        .raw(family.as_bytes())
        .raw(inviter.as_bytes())
        .raw(inviter_device.as_bytes())
        .raw(invitee.as_bytes())
        .raw(blake3::hash(card).as_bytes())
        .finish()
}

/// Signed by the **invitee's device key** to accept or reject an invite:
/// `INVITE_ANSWER_DOMAIN ‖ server_id ‖ invite ‖ invitee ‖ invitee_device ‖ accept`.
pub fn invite_answer_message(
    server_id: &str,
    invite: &InviteId,
    invitee: &UserId,
    invitee_device: &DeviceId,
    accept: bool,
) -> Vec<u8> {
    Message::new(INVITE_ANSWER_DOMAIN)
        .str(server_id)
        .raw(invite.as_bytes())
        .raw(invitee.as_bytes())
        .raw(invitee_device.as_bytes())
        .bool(accept)
        .finish()
}

/// Signed by the **device key** for each blob request over HTTP (headers
/// `x-doran-device`, `x-doran-time`, `x-doran-signature`):
/// `HTTP_DOMAIN ‖ server_id ‖ method ‖ path_and_query ‖ time`, where `server_id` (the
/// relay's, as in its [`Challenge`] and at `GET /server-id`), `method` and
/// `path_and_query` (exactly as sent) are strings and `time` is unix ms. Naming the
/// relay means a request captured at one relay cannot be replayed at another. The
/// body is not signed: an upload is checked against the blake3 hash in its path.
pub fn http_message(
    server_id: &str,
    method: &str,
    path_and_query: &str,
    time: UnixMillis,
) -> Vec<u8> {
    Message::new(HTTP_DOMAIN)
        .str(server_id)
        .str(method)
        .str(path_and_query)
        .u64(time)
        .finish()
}

/// What a device sends instead of a signature (header `x-doran-mac`) once the relay
/// gave it a session key (header `x-doran-session-key` on a signed request's answer,
/// or [`ServerFrame::HttpSessionKey`](crate::ServerFrame::HttpSessionKey) after the
/// websocket's sign-in):
/// blake3 keyed by that key over `HTTP_MAC_DOMAIN ‖ server_id ‖ method ‖
/// path_and_query ‖ time`, the fields of [`http_message`]. A keyed hash costs the
/// relay about a microsecond where an ed25519 check costs about forty, and the device
/// as little against a signature's twenty.
pub fn http_mac(
    key: &[u8; 32],
    server_id: &str,
    method: &str,
    path_and_query: &str,
    time: UnixMillis,
) -> [u8; 32] {
    let message = Message::new(HTTP_MAC_DOMAIN)
        .str(server_id)
        .str(method)
        .str(path_and_query)
        .u64(time)
        .finish();
    *blake3::keyed_hash(key, &message).as_bytes()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn challenge() -> Challenge {
        Challenge {
            protocol_version: 1,
            nonce: [1; 32],
            server_id: "relay.example".into(),
            expires_at: 1_700_000_000_000,
        }
    }

    #[test]
    fn domains_are_distinct_nul_terminated_and_prefix_free() {
        let set: HashSet<_> = ALL_DOMAINS.iter().collect();
        assert_eq!(set.len(), ALL_DOMAINS.len());
        for a in ALL_DOMAINS {
            assert_eq!(a.last(), Some(&0));
            assert_eq!(a.iter().filter(|&&b| b == 0).count(), 1);
            for b in ALL_DOMAINS {
                assert!(a == b || !b.starts_with(a), "one domain prefixes another");
            }
        }
    }

    #[test]
    fn signin_layout_is_exact() {
        let c = challenge();
        let user = UserId([2; 16]);
        let device = DeviceId([3; 16]);
        let mut expected = b"dorandoran/signin/v1\0".to_vec();
        expected.extend_from_slice(&[1; 32]);
        expected.extend_from_slice(&13u64.to_be_bytes());
        expected.extend_from_slice(b"relay.example");
        expected.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        expected.extend_from_slice(&[2; 16]);
        expected.extend_from_slice(&[3; 16]);
        assert_eq!(signin_message(&c, &user, &device), expected);
        assert_eq!(c.signin_message(&user, &device), expected);
    }

    #[test]
    fn messages_differ_across_domains_with_the_same_fields() {
        let c = challenge();
        let (doc, key, dev, dkey) = (
            DocId([4; 16]),
            PublicKey([5; 32]),
            DeviceId([6; 16]),
            PublicKey([7; 32]),
        );
        let all = [
            register_user_message(&c, "a@b.c", "nick", &doc, &key, &dev, &dkey),
            register_device_message(&c, "a@b.c", "nick", &doc, &key, &dev, &dkey),
            recover_user_message(&c, &key, &dev, &dkey),
            recover_device_message(&c, &key, &dev, &dkey),
            link_device_message(&c, "ABCD-1234", &dev, &dkey),
            signin_message(&c, &UserId([5; 16]), &dev),
            link_confirm_message(
                "s",
                &LinkId([1; 16]),
                &UserId([3; 16]),
                &dev,
                &DeviceId([8; 16]),
                &dkey,
                true,
            ),
            invite_message(
                "s",
                &InviteId([1; 16]),
                &FamilyId([2; 16]),
                &UserId([3; 16]),
                &dev,
                &UserId([4; 16]),
                b"card",
            ),
            invite_answer_message("s", &InviteId([1; 16]), &UserId([4; 16]), &dev, true),
        ];
        let set: HashSet<_> = all.iter().collect();
        assert_eq!(set.len(), all.len());
        for (m, domain) in all.iter().zip([
            REGISTER_USER_DOMAIN,
            REGISTER_DEVICE_DOMAIN,
            RECOVER_USER_DOMAIN,
            RECOVER_DEVICE_DOMAIN,
            LINK_DEVICE_DOMAIN,
            SIGNIN_DOMAIN,
            LINK_CONFIRM_DOMAIN,
            INVITE_DOMAIN,
            INVITE_ANSWER_DOMAIN,
        ]) {
            assert!(m.starts_with(domain));
        }
    }

    #[test]
    fn every_input_changes_the_message() {
        let c = challenge();
        let user = UserId([2; 16]);
        let dev = DeviceId([3; 16]);
        let base = signin_message(&c, &user, &dev);
        let mut other = c.clone();
        other.nonce[31] ^= 1;
        assert_ne!(signin_message(&other, &user, &dev), base);
        let mut other = c.clone();
        other.server_id.push('x');
        assert_ne!(signin_message(&other, &user, &dev), base);
        let mut other = c.clone();
        other.expires_at += 1;
        assert_ne!(signin_message(&other, &user, &dev), base);
        assert_ne!(signin_message(&c, &UserId([9; 16]), &dev), base);
        assert_ne!(signin_message(&c, &user, &DeviceId([9; 16])), base);

        let inv = InviteId([1; 16]);
        let yes = invite_answer_message("s", &inv, &user, &dev, true);
        assert_ne!(invite_answer_message("s", &inv, &user, &dev, false), yes);
        assert_ne!(invite_answer_message("t", &inv, &user, &dev, true), yes);
        assert_ne!(
            invite_answer_message("s", &InviteId([2; 16]), &user, &dev, true),
            yes
        );

        let fam = FamilyId([8; 16]);
        let inv_msg = invite_message("s", &inv, &fam, &user, &dev, &UserId([4; 16]), b"\xa1");
        assert_ne!(
            invite_message("s", &inv, &fam, &user, &dev, &UserId([4; 16]), b"\xa2"),
            inv_msg
        );
        assert_ne!(
            invite_message("s", &inv, &fam, &user, &dev, &UserId([5; 16]), b"\xa1"),
            inv_msg
        );
        assert_ne!(
            invite_message(
                "s",
                &inv,
                &FamilyId([9; 16]),
                &user,
                &dev,
                &UserId([4; 16]),
                b"\xa1"
            ),
            inv_msg
        );

        let dkey = PublicKey([7; 32]);
        let link = link_device_message(&c, "ABCD", &dev, &dkey);
        assert_ne!(link_device_message(&c, "ABCE", &dev, &dkey), link);
        assert_ne!(
            link_device_message(&c, "ABCD", &dev, &PublicKey([8; 32])),
            link
        );
    }

    #[test]
    fn an_http_signature_names_its_relay() {
        let here = http_message("relay-a", "GET", "/blobs/ab", 7);
        assert!(here.starts_with(HTTP_DOMAIN));
        assert_ne!(http_message("relay-b", "GET", "/blobs/ab", 7), here);
        assert_ne!(http_message("relay-a", "PUT", "/blobs/ab", 7), here);
        assert_ne!(http_message("relay-a", "GET", "/blobs/ab", 8), here);
    }

    #[test]
    fn a_mac_names_the_relay_the_request_and_the_key() {
        let key = [7; 32];
        let here = http_mac(&key, "relay-a", "GET", "/blobs/ab", 7);
        assert_ne!(http_mac(&[8; 32], "relay-a", "GET", "/blobs/ab", 7), here);
        assert_ne!(http_mac(&key, "relay-b", "GET", "/blobs/ab", 7), here);
        assert_ne!(http_mac(&key, "relay-a", "PUT", "/blobs/ab", 7), here);
        assert_ne!(http_mac(&key, "relay-a", "GET", "/blobs/ac", 7), here);
        assert_ne!(http_mac(&key, "relay-a", "GET", "/blobs/ab", 8), here);
        // The string fields are length-prefixed: moving bytes between them changes it.
        assert_ne!(http_mac(&key, "relay-aG", "ET", "/blobs/ab", 7), here);
    }

    #[test]
    fn string_boundaries_are_unambiguous() {
        let (doc, key, dev) = (DocId([0; 16]), PublicKey([0; 32]), DeviceId([0; 16]));
        let c = challenge();
        let a = register_user_message(&c, "ab", "c", &doc, &key, &dev, &key);
        let b = register_user_message(&c, "a", "bc", &doc, &key, &dev, &key);
        assert_ne!(a, b);
    }
}
