//! Public keys and signatures as they travel on the wire.
//!
//! The protocol only carries them: ed25519 verification lives in the relay and the
//! clients. Both serialize as byte strings whose length is checked on decode (a wrong
//! length is a serde error, never a panic), and print as lowercase hex.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{IdError, wire};

macro_rules! key_bytes {
    ($(#[$meta:meta])* $name:ident, $len:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = IdError;

            /// Copies a slice of exactly the right length.
            fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
                <[u8; $len]>::try_from(bytes)
                    .map(Self)
                    .map_err(|_| IdError::Malformed {
                        kind: $kind,
                        expected: $len * 2,
                        got: format!("{} bytes", bytes.len()),
                    })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                wire::fixed::serialize(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                wire::fixed::deserialize(d).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($kind, "({}…)"), hex::encode(&self.0[..8]))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out)
                    .map(|()| Self(out))
                    .map_err(|_| IdError::Malformed {
                        kind: $kind,
                        expected: $len * 2,
                        got: s.chars().take(80).collect(),
                    })
            }
        }
    };
}

key_bytes!(
    /// An ed25519 public key (32 bytes): a user's key or one device's key.
    PublicKey,
    32,
    "PublicKey"
);

key_bytes!(
    /// An ed25519 signature (64 bytes) over one of the canonical messages in
    /// [`crate::signing`].
    Signature,
    64,
    "Signature"
);

impl PublicKey {
    /// A short fingerprint of the key to compare by eye on two screens: the first
    /// 6 bytes of its blake3 hash as hex in three groups (`1a2b-3c4d-5e6f`).
    pub fn fingerprint(&self) -> String {
        let hash = blake3::hash(&self.0);
        let hex = hex::encode(&hash.as_bytes()[..6]);
        format!("{}-{}-{}", &hex[0..4], &hex[4..8], &hex[8..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_signatures_round_trip_through_postcard_as_byte_strings() {
        let key = PublicKey([7; 32]);
        let bytes = postcard::to_allocvec(&key).unwrap();
        assert_eq!(bytes.len(), 1 + 32, "varint length + bytes");
        assert_eq!(postcard::from_bytes::<PublicKey>(&bytes).unwrap(), key);

        let sig = Signature([9; 64]);
        let bytes = postcard::to_allocvec(&sig).unwrap();
        assert_eq!(bytes.len(), 1 + 64);
        assert_eq!(postcard::from_bytes::<Signature>(&bytes).unwrap(), sig);
    }

    #[test]
    fn a_wrong_length_is_a_decode_error_not_a_panic() {
        let short = postcard::to_allocvec(&serde_bytes_of(&[1; 63])).unwrap();
        assert!(postcard::from_bytes::<Signature>(&short).is_err());
        let long = postcard::to_allocvec(&serde_bytes_of(&[1; 33])).unwrap();
        assert!(postcard::from_bytes::<PublicKey>(&long).is_err());
        assert!(postcard::from_bytes::<PublicKey>(&[]).is_err());
        // Announces 32 bytes, carries 3.
        assert!(postcard::from_bytes::<PublicKey>(&[32, 1, 2, 3]).is_err());
    }

    #[test]
    fn keys_parse_from_hex() {
        let key = PublicKey([0xab; 32]);
        assert_eq!(key.to_string().parse::<PublicKey>().unwrap(), key);
        assert!("abcd".parse::<PublicKey>().is_err());
        assert!(Signature::try_from(&[0u8; 12][..]).is_err());
        assert_eq!(
            Signature::try_from(&[5u8; 64][..]).unwrap(),
            Signature([5; 64])
        );
    }

    fn serde_bytes_of(b: &[u8]) -> Bytes<'_> {
        Bytes(b)
    }

    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
}
