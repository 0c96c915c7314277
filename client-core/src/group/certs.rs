//! Which devices of a user to let into a family's key group: those a chain of
//! [`DeviceCert`]s leads to from the user key this device pinned for that user.
//!
//! - The user key certifies the devices that hold it (the first one, any recovered
//!   with the phrase); a certified device certifies the device it confirms a link
//!   for. A device linked with a code never holds the user key, hence the chain.
//! - Only devices not revoked carry a chain on: a stolen phone that certified a rogue
//!   device before it was revoked no longer vouches for it, and a device certified
//!   only through a revoked one must be certified again.
//! - A device id certified with two different keys is ambiguous and vouched for with
//!   neither.
//!
//! The relay has no user key and no device key, so it cannot make a certificate; it
//! can only withhold one (the device is then not let in, and waits).

use std::collections::{BTreeMap, BTreeSet};

use doran_protocol::{
    DeviceId, PublicKey, UserId,
    model::{Certifier, DeviceCert, UserCerts},
    signing::device_cert_message,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::{GroupError, KnownDevices};
#[cfg(test)]
use crate::keys::public_key;

/// A certificate for `device` with `device_key`, signed by `signer` as `by` (the
/// user key, or the certifying device's key).
pub fn certify(
    signer: &SigningKey,
    by: Certifier,
    user: UserId,
    device: DeviceId,
    device_key: PublicKey,
) -> DeviceCert {
    let signature = signer.sign(&device_cert_message(&user, &device, &device_key));
    DeviceCert {
        device,
        device_key,
        by,
        signature: doran_protocol::Signature(signature.to_bytes()),
    }
}

fn verifies(key: &PublicKey, user: UserId, cert: &DeviceCert) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key.as_bytes()) else {
        return false;
    };
    let signature = Signature::from_bytes(cert.signature.as_bytes());
    key.verify_strict(
        &device_cert_message(&user, &cert.device, &cert.device_key),
        &signature,
    )
    .is_ok()
}

/// The devices of `user` that `certs` chain to from `user_key`, leaving out the
/// `revoked` ones (and what only they vouched for), each with its key.
pub fn certified_devices(
    user: UserId,
    user_key: &PublicKey,
    certs: &[DeviceCert],
    revoked: &BTreeSet<DeviceId>,
) -> BTreeMap<DeviceId, PublicKey> {
    // A device that verified certificates name with two keys is vouched for with
    // neither — and then neither is what only it vouched for, so the chains are
    // walked again without it. Certificates that do not verify count for nothing:
    // a relay serving a forged one cannot shut a device out.
    let mut left_out = revoked.clone();
    loop {
        let certified = chains(user, user_key, certs, &left_out);
        let ambiguous: BTreeSet<DeviceId> = certs
            .iter()
            .filter(|c| {
                certified
                    .get(&c.device)
                    .is_some_and(|key| *key != c.device_key)
                    && signer(user_key, &certified, c).is_some_and(|k| verifies(&k, user, c))
            })
            .map(|c| c.device)
            .collect();
        if ambiguous.is_empty() {
            return certified;
        }
        left_out.extend(ambiguous);
    }
}

/// The key that must have signed `cert`, if its certifier is the user key or a
/// device already certified.
fn signer(
    user_key: &PublicKey,
    certified: &BTreeMap<DeviceId, PublicKey>,
    cert: &DeviceCert,
) -> Option<PublicKey> {
    match cert.by {
        Certifier::User => Some(*user_key),
        Certifier::Device(by) => certified.get(&by).copied(),
    }
}

/// Every device a chain of verified certificates reaches from the user key, never
/// through or to a device in `left_out`.
fn chains(
    user: UserId,
    user_key: &PublicKey,
    certs: &[DeviceCert],
    left_out: &BTreeSet<DeviceId>,
) -> BTreeMap<DeviceId, PublicKey> {
    let mut certified: BTreeMap<DeviceId, PublicKey> = BTreeMap::new();
    // Each round adds the devices certified by the user key or by a device added in
    // an earlier round; at most one round per device.
    loop {
        let before = certified.len();
        for cert in certs {
            if certified.contains_key(&cert.device) || left_out.contains(&cert.device) {
                continue;
            }
            if signer(user_key, &certified, cert).is_some_and(|key| verifies(&key, user, cert)) {
                certified.insert(cert.device, cert.device_key);
            }
        }
        if certified.len() == before {
            return certified;
        }
    }
}

impl KnownDevices {
    /// Vouches for the devices of `user` that `certs` chain to from `user_key` (the
    /// key this device pinned for the user) and that are not `revoked` (nor reached
    /// only through a revoked one); knows the others a chain reached before as
    /// revoked. Returns the devices vouched for.
    pub fn insert_certified(
        &mut self,
        user: UserId,
        user_key: &PublicKey,
        certs: &[DeviceCert],
        revoked: &BTreeSet<DeviceId>,
    ) -> Vec<DeviceId> {
        let active = certified_devices(user, user_key, certs, revoked);
        for (device, key) in certified_devices(user, user_key, certs, &BTreeSet::new()) {
            if !active.contains_key(&device) {
                self.insert_revoked(user, device, key);
            }
        }
        for (device, key) in &active {
            self.insert(user, *device, *key);
        }
        // What a Commit adding these devices carries: the certificates of the
        // devices vouched for (a chain runs through vouched devices only).
        if !revoked.is_empty() {
            self.revoked_ids
                .entry(user)
                .or_default()
                .extend(revoked.iter().copied());
        }
        let carried = certs
            .iter()
            .filter(|c| {
                active.get(&c.device) == Some(&c.device_key)
                    && match c.by {
                        Certifier::User => true,
                        Certifier::Device(by) => active.contains_key(&by),
                    }
            })
            .cloned()
            .collect();
        self.chains.insert(
            user,
            Chain {
                user,
                user_key: *user_key,
                certs: carried,
            },
        );
        active.into_keys().collect()
    }

    /// [`KnownDevices::insert_certified`] for a user's certificates as the relay
    /// served them (their user key checked against the pinned one by the caller).
    pub fn insert_served(&mut self, served: &UserCerts) -> Vec<DeviceId> {
        let revoked: BTreeSet<DeviceId> = served.revoked.iter().copied().collect();
        self.insert_certified(served.user, &served.user_key, &served.certs, &revoked)
    }

    /// What a Commit adding devices of `users` carries in its authenticated data:
    /// each user's key and the certificates that vouch for their devices.
    pub(super) fn carried_chains(&self, users: &BTreeSet<UserId>) -> Result<Vec<u8>, GroupError> {
        let chains: Vec<&Chain> = users.iter().filter_map(|u| self.chains.get(u)).collect();
        postcard::to_extend(&chains, CARRIED_MAGIC.to_vec())
            .map_err(|_| GroupError::Malformed("certificates to carry"))
    }

    /// Whether the certificates a Commit carries (see [`carried`]) certify `user`'s
    /// `device` signing with `key`: a chain from the user key they name — which must
    /// be the one this device knows for that user, if it knows one — as it was when
    /// the Commit was made (through devices revoked since too).
    pub(super) fn carried_chain_certifies(
        &self,
        carried: &[Chain],
        user: UserId,
        device: DeviceId,
        key: &[u8],
    ) -> bool {
        let Some(chain) = carried.iter().find(|c| c.user == user) else {
            return false;
        };
        if self
            .chains
            .get(&user)
            .is_some_and(|known| known.user_key != chain.user_key)
        {
            return false;
        }
        certified_devices(user, &chain.user_key, &chain.certs, &BTreeSet::new())
            .get(&device)
            .is_some_and(|k| k.as_bytes().as_slice() == key)
    }
}

/// The certificates a Commit adding `adds` devices carries in its authenticated data
/// (`aad`): none for a Commit that carries none (made before this existed);
/// [`GroupError::NotAllowed`] — the same verdict on every device, whatever it knows —
/// for data that does not parse, names more users than devices added, or more
/// certificates per user than the relay keeps (every carried certificate may cost a
/// signature check on every device).
pub(super) fn carried(aad: &[u8], adds: usize) -> Result<Vec<Chain>, GroupError> {
    let Some(rest) = aad.strip_prefix(&CARRIED_MAGIC) else {
        return Ok(Vec::new());
    };
    let refused = || GroupError::NotAllowed("carried certificates that are malformed or too many");
    let chains: Vec<Chain> = postcard::from_bytes(rest).map_err(|_| refused())?;
    if chains.len() > adds
        || chains
            .iter()
            .any(|c| c.certs.len() > doran_protocol::limits::MAX_CERTS_PER_USER)
    {
        return Err(refused());
    }
    Ok(chains)
}

/// What carried certificates start with.
const CARRIED_MAGIC: [u8; 4] = *b"DRA\x01";

/// A user's key and the certificates vouching for their devices, as a Commit adding
/// them carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Chain {
    user: UserId,
    user_key: PublicKey,
    certs: Vec<DeviceCert>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&rand::random())
    }

    struct User {
        id: UserId,
        key: SigningKey,
    }

    fn user() -> User {
        User {
            id: UserId::random(),
            key: key(),
        }
    }

    fn none() -> BTreeSet<DeviceId> {
        BTreeSet::new()
    }

    /// The user's phone (certified by the user key), a laptop linked from the phone,
    /// a tablet linked from the laptop.
    fn chain(u: &User) -> (Vec<DeviceCert>, [(DeviceId, SigningKey); 3]) {
        let phone = (DeviceId::random(), key());
        let laptop = (DeviceId::random(), key());
        let tablet = (DeviceId::random(), key());
        let certs = vec![
            certify(&u.key, Certifier::User, u.id, phone.0, public_key(&phone.1)),
            certify(
                &phone.1,
                Certifier::Device(phone.0),
                u.id,
                laptop.0,
                public_key(&laptop.1),
            ),
            certify(
                &laptop.1,
                Certifier::Device(laptop.0),
                u.id,
                tablet.0,
                public_key(&tablet.1),
            ),
        ];
        (certs, [phone, laptop, tablet])
    }

    #[test]
    fn a_chain_from_the_user_key_vouches_for_every_device_on_it() {
        let u = user();
        let (mut certs, devices) = chain(&u);
        // In any order.
        certs.reverse();
        let got = certified_devices(u.id, &public_key(&u.key), &certs, &none());
        assert_eq!(got.len(), 3);
        for (id, k) in &devices {
            assert_eq!(got.get(id), Some(&public_key(k)));
        }
    }

    #[test]
    fn a_certificate_not_from_the_pinned_user_key_vouches_for_nothing() {
        let u = user();
        let (certs, _) = chain(&u);
        // Pinned another key (a relay answering with its own user key): nothing.
        let other = user();
        assert!(certified_devices(u.id, &public_key(&other.key), &certs, &none()).is_empty());
        // A relay's device "certified by the user" with a key of its own.
        let rogue = (DeviceId::random(), key());
        let forged = certify(
            &other.key,
            Certifier::User,
            u.id,
            rogue.0,
            public_key(&rogue.1),
        );
        let got = certified_devices(u.id, &public_key(&u.key), &[forged], &none());
        assert!(got.is_empty());
        // A certificate for another user does not carry over to this one.
        let (theirs, _) = chain(&other);
        let got = certified_devices(u.id, &public_key(&other.key), &theirs, &none());
        assert!(got.is_empty());
    }

    #[test]
    fn a_changed_key_or_signature_breaks_the_chain_there() {
        let u = user();
        let (mut certs, [phone, _, _]) = chain(&u);
        // The laptop's certificate now names another key.
        certs[1].device_key = public_key(&key());
        let got = certified_devices(u.id, &public_key(&u.key), &certs, &none());
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![phone.0]);
        // A flipped signature bit on the phone's: nothing at all.
        let (mut certs, _) = chain(&u);
        certs[0].signature.0[5] ^= 1;
        assert!(certified_devices(u.id, &public_key(&u.key), &certs, &none()).is_empty());
    }

    #[test]
    fn a_revoked_device_vouches_for_nothing_any_more() {
        let u = user();
        let (mut certs, [phone, laptop, tablet]) = chain(&u);
        let revoked = BTreeSet::from([phone.0]);
        // The phone was stolen: the laptop and tablet, vouched for through it, are out…
        assert!(certified_devices(u.id, &public_key(&u.key), &certs, &revoked).is_empty());
        // …until the user key (the recovery phrase) certifies the laptop again.
        certs.push(certify(
            &u.key,
            Certifier::User,
            u.id,
            laptop.0,
            public_key(&laptop.1),
        ));
        let got = certified_devices(u.id, &public_key(&u.key), &certs, &revoked);
        assert_eq!(
            got.keys().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([laptop.0, tablet.0])
        );
    }

    #[test]
    fn a_forged_certificate_shuts_nobody_out() {
        let u = user();
        let (mut certs, devices) = chain(&u);
        // The relay serves a certificate naming the phone with another key, signed
        // by nobody in the chain.
        let rogue = key();
        certs.push(certify(
            &key(),
            Certifier::User,
            u.id,
            devices[0].0,
            public_key(&rogue),
        ));
        let got = certified_devices(u.id, &public_key(&u.key), &certs, &none());
        assert_eq!(got.len(), 3);
        assert_eq!(got.get(&devices[0].0), Some(&public_key(&devices[0].1)));
    }

    #[test]
    fn devices_vouching_only_for_each_other_are_not_vouched_for() {
        let u = user();
        let a = (DeviceId::random(), key());
        let b = (DeviceId::random(), key());
        let certs = [
            certify(&a.1, Certifier::Device(a.0), u.id, b.0, public_key(&b.1)),
            certify(&b.1, Certifier::Device(b.0), u.id, a.0, public_key(&a.1)),
        ];
        assert!(certified_devices(u.id, &public_key(&u.key), &certs, &none()).is_empty());
    }

    #[test]
    fn a_device_certified_with_two_keys_is_vouched_for_with_neither() {
        let u = user();
        let (mut certs, [phone, _, _]) = chain(&u);
        certs.push(certify(
            &u.key,
            Certifier::User,
            u.id,
            phone.0,
            public_key(&key()),
        ));
        let got = certified_devices(u.id, &public_key(&u.key), &certs, &none());
        assert!(!got.contains_key(&phone.0));
        // And what only it vouched for is out with it.
        assert!(got.is_empty());
    }

    #[test]
    fn the_key_group_takes_a_certified_device_and_refuses_an_uncertified_one() {
        use crate::group::{GroupError, KeyRing};
        let mom = user();
        let (certs, [phone, laptop, _]) = chain(&mom);
        let family = doran_protocol::FamilyId::random();
        let mut known = KnownDevices::new();
        let vouched = known.insert_certified(mom.id, &public_key(&mom.key), &certs, &none());
        assert_eq!(vouched.len(), 3);

        let mut phone_ring = KeyRing::new(mom.id, phone.0, phone.1);
        phone_ring.create(family).expect("create");
        let mut laptop_ring = KeyRing::new(mom.id, laptop.0, laptop.1);
        let packages = laptop_ring.key_packages(1).expect("package");
        phone_ring
            .add(family, &packages, &known)
            .expect("the certified laptop is added");
        // A device of hers the relay lists, but no certificate reaches.
        let stray = (DeviceId::random(), key());
        let mut stray_ring = KeyRing::new(mom.id, stray.0, stray.1);
        let packages = stray_ring.key_packages(1).expect("package");
        let other = doran_protocol::FamilyId::random();
        phone_ring.create(other).expect("create");
        assert!(matches!(
            phone_ring.add(other, &packages, &known),
            Err(GroupError::NotVouched { .. })
        ));
    }
}
