//! Safety codes: what two family members compare in person to know that their
//! devices hold each other's real user keys (issue 18).
//!
//! A device learns a co-member's user key from the relay the first time it asks, and
//! pins it (trust on first use): every later answer must carry the same key, and only
//! devices that key certifies are let into a sealed family. A relay that answered the
//! *first* time with a key of its own would have its devices let in. Comparing a
//! safety code closes that: it is made from both users' keys as this device holds
//! them, and two devices show the same code only if each holds the other's real key.
//!
//! The code is 60 digits in twelve groups of five, as in Signal's safety numbers:
//! thirty digits per user (≈ 100 bits), the user with the smaller id first, so both
//! sides show the same digits in the same order. Each half depends on one user's key
//! only, so when two screens differ, the half that differs says whose key one of the
//! devices got wrong.
//!
//! ```text
//! half(user, key) = six groups g0..g5, gi = (bytes 5i..5i+5 of
//!                   blake3::derive_key("dorandoran 2026-12 safety code", user ‖ key)
//!                   as a big-endian 40-bit number) mod 100 000, zero-padded to 5 digits
//! code(a, b)      = half(smaller id) ‖ half(larger id)
//! ```

use std::fmt;

use doran_protocol::{PublicKey, UserId};

const CONTEXT: &str = "dorandoran 2026-12 safety code";
/// Groups of five digits per user.
const GROUPS_PER_USER: usize = 6;

/// The safety code of two users, as one device holds their keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyCode {
    /// Twelve groups of five digits.
    groups: Vec<String>,
}

/// Which half of two codes differs (see [`SafetyCode::compare`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// The same digits: each device holds the other user's real key.
    Same,
    /// The digits differ where `user`'s key is: one device holds another key for them.
    Differs {
        /// Whose key differs (both, when both halves do).
        users: [Option<UserId>; 2],
    },
    /// Not a code: not sixty digits.
    Malformed,
}

impl SafetyCode {
    /// The code of `a` and `b` with the keys this device holds for them.
    pub fn of(a: (UserId, &PublicKey), b: (UserId, &PublicKey)) -> Self {
        let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        let mut groups = half(first.0, first.1);
        groups.extend(half(second.0, second.1));
        Self { groups }
    }

    /// The twelve groups of five digits.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The sixty digits, no spaces.
    pub fn digits(&self) -> String {
        self.groups.concat()
    }

    /// Compares this code with one read from the other device's screen, typed with
    /// or without spaces or dashes; `users` are the two users in code order
    /// ([`SafetyCode::users_in_order`]).
    pub fn compare(&self, typed: &str, users: [UserId; 2]) -> Comparison {
        let digits: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if digits.len() != 60 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Comparison::Malformed;
        }
        let mine = self.digits();
        let (first, second) = mine.split_at(30);
        let differs = [
            (&digits[..30] != first).then_some(users[0]),
            (&digits[30..] != second).then_some(users[1]),
        ];
        if differs == [None, None] {
            Comparison::Same
        } else {
            Comparison::Differs { users: differs }
        }
    }

    /// `a` and `b` in the order their halves appear in a code.
    pub fn users_in_order(a: UserId, b: UserId) -> [UserId; 2] {
        if a <= b { [a, b] } else { [b, a] }
    }
}

impl fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.groups.join(" "))
    }
}

fn half(user: UserId, key: &PublicKey) -> Vec<String> {
    let mut material = user.0.to_vec();
    material.extend_from_slice(key.as_bytes());
    let hash = blake3::derive_key(CONTEXT, &material);
    hash.chunks_exact(5)
        .take(GROUPS_PER_USER)
        .map(|five| {
            let n = five.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(b: u8) -> UserId {
        UserId([b; 16])
    }

    #[test]
    fn both_sides_show_the_same_sixty_digits() {
        let (mom, dad) = ((user(1), PublicKey([7; 32])), (user(2), PublicKey([9; 32])));
        let on_moms = SafetyCode::of((mom.0, &mom.1), (dad.0, &dad.1));
        let on_dads = SafetyCode::of((dad.0, &dad.1), (mom.0, &mom.1));
        assert_eq!(on_moms, on_dads);
        assert_eq!(on_moms.groups().len(), 12);
        assert!(on_moms.groups().iter().all(|g| g.len() == 5));
        assert_eq!(on_moms.digits().len(), 60);
        assert_eq!(on_moms.to_string().len(), 60 + 11);
        // Pinned digits: the derivation is what two app versions must agree on.
        assert_eq!(
            on_moms.to_string(),
            "79215 47354 72357 65886 90384 64268 51484 01926 73271 70450 12987 61683"
        );
        let users = SafetyCode::users_in_order(dad.0, mom.0);
        assert_eq!(users, [mom.0, dad.0]);
        assert_eq!(
            on_dads.compare(&on_moms.to_string(), users),
            Comparison::Same
        );
        assert_eq!(
            on_dads.compare(&on_moms.digits(), users),
            Comparison::Same,
            "typed without spaces"
        );
    }

    #[test]
    fn the_half_that_differs_says_whose_key_a_device_got_wrong() {
        let (mom, dad) = (user(1), user(2));
        let (mom_key, dad_key) = (PublicKey([7; 32]), PublicKey([9; 32]));
        let relays_key = PublicKey([66; 32]);
        let users = SafetyCode::users_in_order(mom, dad);
        // Mom's device pinned a key of the relay's for dad.
        let on_moms = SafetyCode::of((mom, &mom_key), (dad, &relays_key));
        let on_dads = SafetyCode::of((dad, &dad_key), (mom, &mom_key));
        assert_ne!(on_moms, on_dads);
        assert_eq!(
            on_moms.compare(&on_dads.to_string(), users),
            Comparison::Differs {
                users: [None, Some(dad)]
            }
        );
        // Another user with the same key has another code: the id is in it.
        let on_sons = SafetyCode::of((user(3), &dad_key), (mom, &mom_key));
        assert_ne!(on_sons.digits()[..30], on_dads.digits()[30..]);
        assert_ne!(on_sons.digits()[30..], on_dads.digits()[30..]);
    }

    #[test]
    fn what_is_not_sixty_digits_is_malformed() {
        let code = SafetyCode::of(
            (user(1), &PublicKey([7; 32])),
            (user(2), &PublicKey([9; 32])),
        );
        let users = [user(1), user(2)];
        for typed in [
            "",
            "12345",
            &code.digits()[..59],
            &format!("{}0", code.digits()),
        ] {
            assert_eq!(
                code.compare(typed, users),
                Comparison::Malformed,
                "{typed:?}"
            );
        }
        let letter = format!("a{}", &code.digits()[1..]);
        assert_eq!(code.compare(&letter, users), Comparison::Malformed);
        let dashed = code.groups().join("-");
        assert_eq!(code.compare(&dashed, users), Comparison::Same);
    }
}
