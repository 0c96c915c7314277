//! Invite cards: what an invite shows — the family's title, the inviter's 호칭 and the
//! one proposed — sealed so the relay never reads it (protocol 7; issue 18).
//!
//! The invitee must read the card *before* accepting, while they cannot open anything
//! of the family yet; the family's other members read it in their list of invites sent.
//! So the inviter's device seals the card once, under a fresh key, and seals that key
//! to each reader:
//!
//! ```text
//! card   = "DRC" ‖ 1 ‖ postcard { slots, nonce (24), body }
//! body   = XChaCha20-Poly1305(k, nonce, postcard { postcard(InviteCard), device, signature }, aad)
//! signature = the inviter's device key over
//!          "dorandoran 2026-12 invite card signature" ‖ aad ‖ postcard(InviteCard)
//! aad    = "DRC" ‖ 1 ‖ invite ‖ family ‖ inviter ‖ invitee
//! slots  = Device { key package ref, HPKE(init key of that package, info, aad, k) }
//!            — one per device of the invitee whose published key package a
//!              certificate chain vouches for (the same check as adding it)
//!        | Family { envelope of k under the family's current epoch, as a document
//!            named by the invite } — for the family's devices in that epoch
//!        | Clear { k } — a family whose documents are not sealed: its relay reads
//!            the title in its document anyway
//! ```
//!
//! Every part is bound to the invite, the family and both users: a card moved to
//! another invite does not open. Sealing alone proves nothing of who wrote a card —
//! anyone holding the invitee's public init keys can seal one — so the card inside is
//! **signed by the inviter's device**, and a reader takes it only if a certificate
//! chain from the inviter's pinned user key vouches for that device
//! ([`KnownDevices`]): the relay cannot hand the invitee a title or a 호칭 of its own
//! making. A device that cannot open a card (one linked after the invite, one whose
//! key package was forgotten) shows the invite without it.

use doran_protocol::{DeviceId, DocId, FamilyId, InviteId, UserId};
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{KeyPackageBundle, KeyPackageRef, tls_codec::Deserialize as _};
use openmls_traits::{OpenMlsProvider as _, crypto::OpenMlsCrypto as _, types::HpkeCiphertext};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

use super::{CIPHERSUITE, GroupError, KeyRing, KnownDevices, envelope, refused};
use crate::keys::RandomnessError;

/// What a card starts with.
const MAGIC: [u8; 4] = *b"DRC\x01";
/// HPKE `info` of a card's device slots.
const HPKE_INFO: &[u8] = b"dorandoran 2026-12 invite card";
/// Names the document a family slot's envelope is sealed for (one per invite).
const DOC_CONTEXT: &str = "dorandoran 2026-12 invite card document";
/// What the inviter's device signature over a card starts with.
const SIGN_CONTEXT: &[u8] = b"dorandoran 2026-12 invite card signature";
/// At most this many devices of the invitee a card is sealed to (a relay serving
/// more packages than a user has devices gets no bigger card).
const MAX_DEVICE_SLOTS: usize = 32;

/// What an invite shows, as its sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCard {
    /// The family's title.
    pub family_title: String,
    /// The inviter's 호칭 in the family.
    pub inviter_name: String,
    /// The 호칭 proposed for the invitee.
    pub proposed_name: String,
}

/// Which invite a card belongs to: every part of the card is bound to all four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardContext {
    /// The invite.
    pub invite: InviteId,
    /// Its family.
    pub family: FamilyId,
    /// Who sends it.
    pub inviter: UserId,
    /// Who is invited.
    pub invitee: UserId,
}

impl CardContext {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(4 + 64);
        aad.extend_from_slice(&MAGIC);
        aad.extend_from_slice(&self.invite.0);
        aad.extend_from_slice(&self.family.0);
        aad.extend_from_slice(&self.inviter.0);
        aad.extend_from_slice(&self.invitee.0);
        aad
    }

    /// The document a family slot is sealed for: the envelope's own binding then
    /// ties it to this invite.
    fn doc(&self) -> DocId {
        let mut material = [0u8; 32];
        material[..16].copy_from_slice(&self.invite.0);
        material[16..].copy_from_slice(&self.family.0);
        let key = blake3::derive_key(DOC_CONTEXT, &material);
        let mut id = [0u8; 16];
        id.copy_from_slice(&key[..16]);
        DocId(id)
    }
}

/// Who can open a sealed card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CardReaders {
    /// Devices of the invitee it was sealed to.
    pub devices: usize,
    /// Whether the family's devices (in the epoch it was sealed in) can.
    pub family: bool,
}

#[derive(Serialize, Deserialize)]
enum Slot {
    Device {
        package: Vec<u8>,
        kem_output: Vec<u8>,
        ciphertext: Vec<u8>,
    },
    Family {
        envelope: Vec<u8>,
    },
    Clear {
        key: [u8; 32],
    },
}

/// What the body seals: the card as written (postcard bytes, the signed ones) and
/// who wrote it. The bytes are read only once the signature over them holds.
#[derive(Serialize, Deserialize)]
struct SignedCard {
    card: Vec<u8>,
    device: DeviceId,
    signature: Vec<u8>,
}

fn signed_bytes(aad: &[u8], card: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGN_CONTEXT.len() + aad.len() + card.len());
    message.extend_from_slice(SIGN_CONTEXT);
    message.extend_from_slice(aad);
    message.extend_from_slice(card);
    message
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    slots: Vec<Slot>,
    nonce: [u8; 24],
    body: Vec<u8>,
}

/// Why a card did not open. Nothing of a card that does not open is shown.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    /// Not a card of a format this build knows.
    #[error("not an invite card")]
    Malformed,
    /// No slot of the card is for this device (or its key is gone).
    #[error("the invite card is not sealed to this device")]
    NotForThisDevice,
    /// A slot or the body did not open with the key it should: changed, or moved from
    /// another invite.
    #[error("the invite card does not open: changed, or not this invite's")]
    Refused,
    /// The card opened but is not signed by a device of its inviter this device knows
    /// (a card of the relay's own making, or an inviter whose certificates it lacks).
    #[error("the invite card is not signed by a device of its inviter this device knows")]
    NotVouched,
}

fn random<const N: usize>() -> Result<[u8; N], RandomnessError> {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomnessError(e.to_string()))?;
    Ok(bytes)
}

impl KeyRing {
    /// Seals `card` for the invite `ctx`: to each of `packages` (the invitee's
    /// published key packages) that `known` vouches for as a device of the invitee,
    /// and to the family — under its current epoch when `family_sealed`, in the clear
    /// otherwise. Packages not vouched for are left out (a relay's own package would
    /// be one).
    pub fn seal_card(
        &self,
        ctx: &CardContext,
        card: &InviteCard,
        packages: &[Vec<u8>],
        known: &KnownDevices,
        family_sealed: bool,
    ) -> Result<(Vec<u8>, CardReaders), GroupError> {
        let key: [u8; 32] = random()?;
        let aad = ctx.aad();
        let mut slots = Vec::new();
        let mut readers = CardReaders::default();
        let mut sealed_to = std::collections::BTreeSet::new();
        for bytes in packages {
            let package = match self.checked_package(bytes, known) {
                Ok((package, member)) if member.user == ctx.invitee => package,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "a key package the card is not sealed to");
                    continue;
                }
            };
            let reference = package
                .hash_ref(self.provider.crypto())
                .map_err(refused)?
                .tls_serialize_detached()
                .map_err(refused)?;
            if readers.devices >= MAX_DEVICE_SLOTS || !sealed_to.insert(reference.clone()) {
                continue;
            }
            let sealed = self
                .provider
                .crypto()
                .hpke_seal(
                    CIPHERSUITE.hpke_config(),
                    package.hpke_init_key().as_slice(),
                    HPKE_INFO,
                    &aad,
                    &key,
                )
                .map_err(refused)?;
            slots.push(Slot::Device {
                package: reference,
                kem_output: sealed.kem_output.as_slice().to_vec(),
                ciphertext: sealed.ciphertext.as_slice().to_vec(),
            });
            readers.devices += 1;
        }
        if family_sealed {
            let (epoch, secret) = self.current_secret(ctx.family)?;
            slots.push(Slot::Family {
                envelope: envelope::seal(secret, epoch, ctx.doc(), &key)?,
            });
        } else {
            slots.push(Slot::Clear { key });
        }
        readers.family = true;
        let nonce: [u8; 24] = random()?;
        let written = postcard::to_stdvec(card).map_err(refused)?;
        let signature = self.signing_key().sign(&signed_bytes(&aad, &written));
        let plain = postcard::to_stdvec(&SignedCard {
            card: written,
            device: self.device(),
            signature: signature.to_bytes().to_vec(),
        })
        .map_err(refused)?;
        let mut body = plain;
        crate::xchacha::seal_in_place(&key, &nonce, &aad, &mut body, 0)
            .map_err(|_| GroupError::Malformed("an invite card too large to seal"))?;
        let sealed = Sealed { slots, nonce, body };
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_stdvec(&sealed).map_err(refused)?);
        Ok((out, readers))
    }

    /// Opens the card of the invite `ctx` with whatever this device holds — its family
    /// epoch keys, or the private half of one of its published key packages — and
    /// takes it only if `known` (the inviter's devices, as their certificates vouch
    /// for them) knows the device that signed it.
    pub fn open_card(
        &self,
        ctx: &CardContext,
        card: &[u8],
        known: &KnownDevices,
    ) -> Result<InviteCard, CardError> {
        let body = card.strip_prefix(&MAGIC).ok_or(CardError::Malformed)?;
        let sealed: Sealed = postcard::from_bytes(body).map_err(|_| CardError::Malformed)?;
        let aad = ctx.aad();
        let mut refused_once = false;
        for slot in &sealed.slots {
            match self.slot_key(ctx, slot, &aad) {
                Ok(Some(key)) => {
                    let plain = crate::xchacha::open(&key, &sealed.nonce, &aad, &sealed.body)
                        .map_err(|_| CardError::Refused)?;
                    let signed: SignedCard =
                        postcard::from_bytes(&plain).map_err(|_| CardError::Malformed)?;
                    return checked(ctx, &aad, signed, known);
                }
                Ok(None) => {}
                Err(()) => refused_once = true,
            }
        }
        Err(if refused_once {
            CardError::Refused
        } else {
            CardError::NotForThisDevice
        })
    }

    /// The card key a slot gives this device: `None` when the slot is not for it,
    /// `Err` when it is and does not open.
    fn slot_key(&self, ctx: &CardContext, slot: &Slot, aad: &[u8]) -> Result<Option<[u8; 32]>, ()> {
        let key = match slot {
            // A family whose id says sealed never sends its card's key in the clear.
            Slot::Clear { .. } if ctx.family.says_sealed() => return Err(()),
            Slot::Clear { key } => return Ok(Some(*key)),
            Slot::Family { envelope } => match self.open(ctx.family, ctx.doc(), envelope) {
                Ok(key) => key,
                Err(envelope::EnvelopeError::Refused) => return Err(()),
                Err(_) => return Ok(None),
            },
            Slot::Device {
                package,
                kem_output,
                ciphertext,
            } => {
                use openmls_traits::storage::StorageProvider as _;
                let Ok(reference) = KeyPackageRef::tls_deserialize_exact(package) else {
                    return Ok(None);
                };
                let bundle: Option<KeyPackageBundle> = self
                    .provider
                    .storage()
                    .key_package(&reference)
                    .ok()
                    .flatten();
                let Some(bundle) = bundle else {
                    return Ok(None);
                };
                let input = HpkeCiphertext {
                    kem_output: kem_output.clone().into(),
                    ciphertext: ciphertext.clone().into(),
                };
                self.provider
                    .crypto()
                    .hpke_open(
                        CIPHERSUITE.hpke_config(),
                        &input,
                        bundle.init_private_key(),
                        HPKE_INFO,
                        aad,
                    )
                    .map_err(|_| ())?
            }
        };
        <[u8; 32]>::try_from(key.as_slice())
            .map(Some)
            .map_err(|_| ())
    }
}

/// The card, if the inviter's device that signed it is one `known` vouches for (not
/// revoked) and the signature holds over this invite.
fn checked(
    ctx: &CardContext,
    aad: &[u8],
    signed: SignedCard,
    known: &KnownDevices,
) -> Result<InviteCard, CardError> {
    let standing = known
        .devices
        .get(&(ctx.inviter, signed.device))
        .filter(|s| !s.revoked)
        .ok_or(CardError::NotVouched)?;
    let key =
        VerifyingKey::from_bytes(standing.key.as_bytes()).map_err(|_| CardError::NotVouched)?;
    let signature = Signature::from_slice(&signed.signature).map_err(|_| CardError::Malformed)?;
    key.verify_strict(&signed_bytes(aad, &signed.card), &signature)
        .map_err(|_| CardError::NotVouched)?;
    postcard::from_bytes(&signed.card).map_err(|_| CardError::Malformed)
}
