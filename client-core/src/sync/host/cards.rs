//! Invite cards through the [`StoreHost`]: sealed with this device's key ring as it
//! invites, opened with it as invites arrive (`group/card.rs`).

use crate::{
    group::{CardContext, CardReaders, InviteCard, KnownDevices},
    sync::{HostError, HostResult as Result, keys::KeysError},
};

use super::StoreHost;

impl StoreHost {
    /// Seals `card` for the invite `ctx`: to those of `packages` (the invitee's
    /// published key packages) `known` vouches for as the invitee's devices, and to
    /// the family (under its current epoch if its documents are sealed on this
    /// device, in the clear otherwise). `NoKeys` on a host without keys.
    pub fn seal_invite_card(
        &self,
        ctx: &CardContext,
        card: &InviteCard,
        packages: &[Vec<u8>],
        known: &KnownDevices,
    ) -> Result<(Vec<u8>, CardReaders)> {
        let guard = self.keeper();
        let keeper = guard.as_ref().ok_or(KeysError::NoKeys)?;
        // Unknown yet (no chunk of it arrived): never guessed clear, or the card's key
        // would go out readable for a family that may be sealed.
        let sealed = keeper
            .sealed(ctx.family)
            .ok_or(HostError::WaitingForKeys(ctx.family))?;
        Ok(keeper
            .ring()
            .seal_card(ctx, card, packages, known, sealed)
            .map_err(KeysError::from)?)
    }

    /// The card of the invite `ctx`, if this device can open it (it is the invitee's
    /// and one of its published key packages was sealed to, or it holds the family's
    /// keys of the epoch the card was sealed in) and `known` (the inviter's devices)
    /// vouches for the device that signed it.
    pub fn open_invite_card(
        &self,
        ctx: &CardContext,
        card: &[u8],
        known: &KnownDevices,
    ) -> Option<InviteCard> {
        let guard = self.keeper();
        let keeper = guard.as_ref()?;
        match keeper.ring().open_card(ctx, card, known) {
            Ok(card) => Some(card),
            Err(e) => {
                tracing::debug!(invite = %ctx.invite, error = %e, "an invite card not opened");
                None
            }
        }
    }
}
