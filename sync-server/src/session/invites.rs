//! The invite handshake: send (host, signed), answer (invitee, signed), withdraw,
//! list. An invite carries a card its inviter's device sealed (the family's title,
//! the inviter's 호칭 and the one proposed): the relay stores it as given, checks that
//! the inviter's device signed it, and serves it back unchanged.

use doran_protocol::{
    ErrorCode, FamilyId, InviteId, InviteInfo, InviteState, MembershipChange, PublicKey, Response,
    ServerEvent, Signature, UserId,
    limits::{MAX_FRAME_BYTES, MAX_NICKNAME_BYTES},
    signing,
};

use super::{Me, families::summary, requests::Ctx};
use crate::{
    auth::verify,
    error::{ApiError, ApiResult},
    state::now_ms,
    store::{AccountStore, InviteLimits, NewInvite, StoreError},
};

/// Pending invites one person may hold at once. A real family rarely sends more than
/// one or two; the cap keeps an invitee from being flooded with `InviteReceived` (and
/// from a `ListInvites` too large to send, see the test below).
pub const MAX_PENDING_INVITES_PER_INVITEE: usize = 16;

/// Pending invites one family may have out at once.
pub const MAX_PENDING_INVITES_PER_FAMILY: usize = 32;

/// Invites one family may send one person within a day (withdrawn ones count), so
/// sending and withdrawing in a loop cannot keep notifying them.
pub const MAX_INVITES_PER_PERSON_PER_DAY: usize = 5;

/// The most invites one `ListInvites` answer holds: with the default cap of 16
/// families per user, the caps above never reach it; a relay configured for more
/// families lists the invites addressed to the caller first and cuts the rest.
pub const MAX_LISTED_INVITES: usize =
    MAX_PENDING_INVITES_PER_INVITEE + 16 * MAX_PENDING_INVITES_PER_FAMILY;

/// At most what one invite takes in a `ListInvites` answer besides its card: four
/// ids, two times, a state, two nicknames (at most [`MAX_NICKNAME_BYTES`] each) and
/// postcard's lengths (checked by the test below).
const LISTED_INVITE_BYTES: usize = 2 * MAX_NICKNAME_BYTES + 128;

/// The bytes of invites one `ListInvites` answer holds at most: a frame, less room
/// for the response around the list. Cards are up to
/// [`MAX_INVITE_CARD_BYTES`](doran_protocol::limits::MAX_INVITE_CARD_BYTES) each, so
/// the count cap alone does not keep the answer within a frame.
const LISTED_BYTES: usize = MAX_FRAME_BYTES - 1024;

/// Cuts `list` to what one `ListInvites` answer holds: [`MAX_LISTED_INVITES`]
/// invites and [`LISTED_BYTES`], keeping its first ones (those addressed to the
/// caller come first: at the default caps, with the largest cards, they are never
/// cut; see the test below).
fn cut_to_a_frame(list: &mut Vec<InviteInfo>) {
    let mut bytes = 0usize;
    let fits = list
        .iter()
        .take_while(|i| {
            bytes = bytes.saturating_add(LISTED_INVITE_BYTES + i.card.len());
            bytes <= LISTED_BYTES
        })
        .count();
    list.truncate(fits.min(MAX_LISTED_INVITES));
}

/// The caps on pending invites, as the store checks them.
const INVITE_LIMITS: InviteLimits = InviteLimits {
    per_invitee: MAX_PENDING_INVITES_PER_INVITEE,
    per_family: MAX_PENDING_INVITES_PER_FAMILY,
    per_pair: MAX_INVITES_PER_PERSON_PER_DAY,
};

/// The error for an invite that can no longer be answered or withdrawn.
fn closed(state: InviteState) -> Option<ApiError> {
    let code = match state {
        InviteState::Pending => return None,
        InviteState::Expired => ErrorCode::InviteExpired,
        InviteState::Withdrawn => ErrorCode::InviteWithdrawn,
        InviteState::Accepted | InviteState::Rejected => ErrorCode::InviteAnswered,
    };
    Some(ApiError::new(code, "the invite is no longer open"))
}

impl Ctx<'_> {
    /// The caller's device key.
    pub(super) async fn my_key(&self) -> ApiResult<PublicKey> {
        let device = self.me.device;
        self.state
            .accounts(move |a| a.device(device))
            .await?
            .map(|d| d.key)
            .ok_or_else(|| ApiError::new(ErrorCode::UnknownDevice, "device not found"))
    }

    /// An invite, `NotFound` if unknown.
    async fn invite(&self, invite: InviteId) -> ApiResult<InviteInfo> {
        let now = now_ms();
        self.state
            .accounts(move |a| a.invite(invite, now))
            .await?
            .ok_or_else(|| ApiError::not_found("no such invite"))
    }

    pub(super) async fn send_invite(
        &self,
        invite: InviteId,
        family: FamilyId,
        invitee: UserId,
        card: Vec<u8>,
        signature: Signature,
    ) -> ApiResult<Response> {
        self.host_of(family).await?;
        let key = self.my_key().await?;
        // The signature covers the card (its hash): a relay, or anyone between it
        // and the device, cannot hand the invitee another card under this name. Its
        // size was checked with the frame.
        let msg = signing::invite_message(
            self.state.challenges.server_id(),
            &invite,
            &family,
            &self.me.user,
            &self.me.device,
            &invitee,
            &card,
        );
        verify(&key, &msg, &signature)?;
        if invitee == self.me.user {
            return Err(ApiError::new(ErrorCode::AlreadyMember, "you are a member"));
        }
        let now = now_ms();
        let new = NewInvite {
            id: invite,
            family,
            inviter: self.me.user,
            invitee,
            card,
            created_at: now,
            expires_at: now.saturating_add(self.state.config.limits.invite_ttl_ms()),
        };
        let info = self
            .state
            .accounts(move |a| {
                if a.user(invitee)?.is_none() {
                    return Ok(Err(ApiError::not_found("no such user")));
                }
                match a.create_invite_within(&new, INVITE_LIMITS) {
                    // A count quota: the relay's one code for that (protocol §5).
                    Err(StoreError::TooManyInvites) => {
                        return Ok(Err(ApiError::new(
                            ErrorCode::QuotaExceeded,
                            "too many pending invites for this person or family",
                        )));
                    }
                    other => other?,
                }
                Ok(a.invite(invite, now)?
                    .ok_or_else(|| ApiError::not_found("no such invite")))
            })
            .await??;
        tracing::info!(%invite, %family, %invitee, "invite sent");
        self.notify([&invitee], ServerEvent::InviteReceived(info.clone()))
            .await;
        Ok(Response::InviteSent(info))
    }

    pub(super) async fn answer_invite(
        &self,
        invite: InviteId,
        accept: bool,
        signature: Signature,
    ) -> ApiResult<Response> {
        let msg = |server_id: &str, me: &Me| {
            signing::invite_answer_message(server_id, &invite, &me.user, &me.device, accept)
        };
        let info = self.my_open_invite(invite, msg, &signature).await?;
        let now = now_ms();
        let max = self.state.config.limits.max_families_per_user;
        self.answered(&info, accept, move |a| {
            a.answer_invite(invite, accept, now, max)
        })
        .await
    }

    /// An open invite addressed to the caller, whose answer `signature` (over the
    /// bytes `message` makes) the caller's device key made.
    async fn my_open_invite(
        &self,
        invite: InviteId,
        message: impl FnOnce(&str, &Me) -> Vec<u8>,
        signature: &Signature,
    ) -> ApiResult<InviteInfo> {
        let info = self.invite(invite).await?;
        if info.invitee != self.me.user {
            return Err(ApiError::forbidden("this invite is not addressed to you"));
        }
        if let Some(e) = closed(info.state) {
            return Err(e);
        }
        let key = self.my_key().await?;
        verify(
            &key,
            &message(self.state.challenges.server_id(), &self.me),
            signature,
        )?;
        Ok(info)
    }

    /// Answers `info` through `answer` (one store call), then tells the inviter and,
    /// on accept, the family.
    async fn answered(
        &self,
        info: &InviteInfo,
        accept: bool,
        answer: impl FnOnce(&dyn AccountStore) -> crate::store::StoreResult<InviteInfo> + Send + 'static,
    ) -> ApiResult<Response> {
        let invite = info.invite;
        let user = self.me.user;
        let family = info.family;
        let (answered, joined) = self
            .state
            .accounts(move |a| {
                let answered = answer(a)?;
                let joined = match (accept, a.family(family)?) {
                    (true, Some(record)) => Some(summary(a, &record, user)?),
                    _ => None,
                };
                Ok((answered, joined))
            })
            .await?;
        self.notify(
            [&info.inviter],
            ServerEvent::InviteAnswered {
                invite,
                family,
                invitee: user,
                accepted: accept,
            },
        )
        .await;
        if let Some(summary) = &joined {
            let members: Vec<UserId> = summary.members.iter().map(|m| m.user).collect();
            self.notify(
                &members,
                ServerEvent::MembershipChanged {
                    family,
                    members: summary.members.clone(),
                    change: MembershipChange::Joined { user },
                },
            )
            .await;
        }
        tracing::info!(%invite, %family, accept, "invite answered");
        Ok(Response::InviteAnswered {
            invite: answered,
            family: joined,
        })
    }

    pub(super) async fn withdraw_invite(&self, invite: InviteId) -> ApiResult<Response> {
        let info = self.invite(invite).await?;
        if info.inviter != self.me.user {
            // The host may withdraw any invite of the family.
            self.host_of(info.family).await?;
        }
        if let Some(e) = closed(info.state) {
            return Err(e);
        }
        let now = now_ms();
        self.state
            .accounts(move |a| a.withdraw_invite(invite, now))
            .await?;
        self.notify([&info.invitee], ServerEvent::InviteWithdrawn { invite })
            .await;
        Ok(Response::Done)
    }

    pub(super) async fn list_invites(&self) -> ApiResult<Response> {
        let user = self.me.user;
        let now = now_ms();
        let list = self
            .state
            .quick_read(move |a| {
                let mut list = a.invites_seen_by(user, now)?;
                cut_to_a_frame(&mut list);
                Ok(list)
            })
            .await?;
        Ok(Response::Invites(list))
    }
}

#[cfg(test)]
mod tests {
    use doran_protocol::{
        FamilyId, InviteId, InviteInfo, InviteState, RequestId, Response, ServerFrame, UserId,
        codec,
        limits::{MAX_FRAME_BYTES, MAX_INVITE_CARD_BYTES, MAX_NICKNAME_BYTES},
    };

    use super::{
        LISTED_INVITE_BYTES, MAX_LISTED_INVITES, MAX_PENDING_INVITES_PER_FAMILY,
        MAX_PENDING_INVITES_PER_INVITEE, cut_to_a_frame,
    };
    use crate::config::Limits;

    /// An invite as large as the limits allow: the longest nicknames (in bytes), the
    /// largest card, times as long as they get.
    fn largest(n: u16) -> InviteInfo {
        let mut id = [0xff; 16];
        id[..2].copy_from_slice(&n.to_be_bytes());
        InviteInfo {
            invite: InviteId(id),
            family: FamilyId([0xff; 16]),
            inviter: UserId([0xff; 16]),
            inviter_nickname: "n".repeat(MAX_NICKNAME_BYTES),
            invitee: UserId([0xff; 16]),
            invitee_nickname: "n".repeat(MAX_NICKNAME_BYTES),
            card: vec![0xff; MAX_INVITE_CARD_BYTES],
            created_at: u64::MAX,
            expires_at: u64::MAX,
            state: InviteState::Pending,
        }
    }

    fn answer(list: Vec<InviteInfo>) -> Vec<u8> {
        let frame = ServerFrame::Response {
            id: RequestId(u32::MAX),
            body: Response::Invites(list),
        };
        codec::encode_server(&frame).expect("the list encodes")
    }

    #[test]
    fn an_invite_takes_no_more_than_its_card_and_the_estimate() {
        let one = answer(vec![largest(0)]).len();
        let two = answer(vec![largest(0), largest(1)]).len();
        assert!(
            two - one <= LISTED_INVITE_BYTES + MAX_INVITE_CARD_BYTES,
            "one more invite takes {} bytes",
            two - one
        );
    }

    /// The largest `ListInvites` answer the caps allow — every invite addressed to the
    /// caller, and every invite of each of their families, all with nicknames of the
    /// longest length and the largest card — is cut to fit in a frame, and never
    /// before the invites addressed to the caller.
    #[test]
    fn the_largest_invite_list_fits_in_a_frame() {
        let families = Limits::default().max_families_per_user;
        let n = MAX_PENDING_INVITES_PER_INVITEE + families * MAX_PENDING_INVITES_PER_FAMILY;
        assert!(
            n <= MAX_LISTED_INVITES,
            "the default caps are never cut by count"
        );
        let mut list: Vec<InviteInfo> = (0..MAX_LISTED_INVITES)
            .map(|n| largest(u16::try_from(n).expect("a few hundred")))
            .collect();
        cut_to_a_frame(&mut list);
        assert!(
            list.len() >= MAX_PENDING_INVITES_PER_INVITEE,
            "only {} invites are listed",
            list.len()
        );
        let bytes = answer(list.clone()).len();
        assert!(
            bytes <= MAX_FRAME_BYTES,
            "{} invites take {bytes} bytes",
            list.len()
        );
        // Cards of a usual size (a few devices) are not cut.
        let mut usual: Vec<InviteInfo> = (0..n)
            .map(|n| InviteInfo {
                card: vec![0xca; 1024],
                ..largest(u16::try_from(n).expect("a few hundred"))
            })
            .collect();
        cut_to_a_frame(&mut usual);
        assert_eq!(usual.len(), n);
    }
}
