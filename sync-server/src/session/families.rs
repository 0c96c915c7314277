//! Family requests: create, remove, leave, delete, list. A family's title and its
//! members' 호칭 are written in the family document (protocol 7): the relay keeps
//! its membership only.

use doran_protocol::{
    DocId, ErrorCode, FamilyId, FamilySummary, MemberInfo, MembershipChange, Response, Role,
    ServerEvent, UserId,
};

use super::requests::Ctx;
use crate::{
    error::{ApiError, ApiResult},
    state::now_ms,
    store::{AccountStore, FamilyRecord, StoreResult},
};

/// A family as `user` sees it.
pub(crate) fn summary(
    a: &dyn AccountStore,
    family: &FamilyRecord,
    user: UserId,
) -> StoreResult<FamilySummary> {
    let members = a.members(family.id)?;
    let role = if family.host == user {
        Role::Host
    } else {
        Role::Member
    };
    Ok(FamilySummary {
        family: family.id,
        role,
        created_at: family.created_at,
        members,
    })
}

fn users(members: &[MemberInfo]) -> Vec<UserId> {
    members.iter().map(|m| m.user).collect()
}

impl Ctx<'_> {
    /// The family and its members, if the caller is one of them; `Forbidden`
    /// otherwise (also for an unknown family, so ids cannot be probed).
    pub(crate) async fn member_of(
        &self,
        family: FamilyId,
    ) -> ApiResult<(FamilyRecord, Vec<MemberInfo>)> {
        let found = self
            .state
            .accounts(move |a| match a.family(family)? {
                Some(f) => Ok(Some((f, a.members(family)?))),
                None => Ok(None),
            })
            .await?;
        match found {
            Some((f, members)) if members.iter().any(|m| m.user == self.me.user) => {
                Ok((f, members))
            }
            _ => Err(ApiError::forbidden("not a member of this family")),
        }
    }

    /// Like [`member_of`](Self::member_of), and the caller must be the host.
    pub(crate) async fn host_of(
        &self,
        family: FamilyId,
    ) -> ApiResult<(FamilyRecord, Vec<MemberInfo>)> {
        let (f, members) = self.member_of(family).await?;
        if f.host != self.me.user {
            return Err(ApiError::forbidden("only the host may do this"));
        }
        Ok((f, members))
    }

    pub(super) async fn create_family(&self, family: FamilyId) -> ApiResult<Response> {
        let user = self.me.user;
        let now = now_ms();
        let max = self.state.config.limits.max_families_per_user;
        let summary = self
            .state
            .accounts(move |a| {
                a.create_family(family, user, now, max)?;
                let record = a
                    .family(family)?
                    .ok_or(crate::store::StoreError::NotFound("family"))?;
                summary(a, &record, user)
            })
            .await?;
        tracing::info!(%family, %user, "family created");
        Ok(Response::FamilyCreated(summary))
    }

    pub(super) async fn remove_member(
        &self,
        family: FamilyId,
        user: UserId,
    ) -> ApiResult<Response> {
        let (f, members) = self.host_of(family).await?;
        if user == f.host {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the host cannot be removed; delete the family instead",
            ));
        }
        if !members.iter().any(|m| m.user == user) {
            return Err(ApiError::not_found("not a member"));
        }
        let by = self.me.user;
        self.membership_ends(family, user, MembershipChange::Removed { user, by })
            .await
    }

    pub(super) async fn leave_family(&self, family: FamilyId) -> ApiResult<Response> {
        let (f, _) = self.member_of(family).await?;
        let user = self.me.user;
        if f.host == user {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the host deletes the family instead of leaving",
            ));
        }
        self.membership_ends(family, user, MembershipChange::Left { user })
            .await
    }

    /// Removes `user`, tells the remaining members and `user`, and makes everyone
    /// concerned re-check their subscriptions.
    async fn membership_ends(
        &self,
        family: FamilyId,
        user: UserId,
        change: MembershipChange,
    ) -> ApiResult<Response> {
        let members = self
            .state
            .accounts(move |a| {
                a.remove_member(family, user)?;
                a.members(family)
            })
            .await?;
        let mut told = users(&members);
        told.push(user);
        self.notify(
            &told,
            ServerEvent::MembershipChanged {
                family,
                members,
                change,
            },
        )
        .await;
        self.recheck(&told);
        tracing::info!(%family, %user, ?change, "membership ended");
        Ok(Response::Done)
    }

    pub(super) async fn delete_family(&self, family: FamilyId) -> ApiResult<Response> {
        let (_, members) = self.host_of(family).await?;
        let now = now_ms();
        let invites = self
            .state
            .accounts(move |a| {
                let pending = a.invites_of_family(family, now)?;
                a.delete_family(family, now)?;
                Ok(pending)
            })
            .await?;
        let volumes = self
            .state
            .accounts(move |a| a.volumes_of(family))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(%family, error = %e, "family deleted but its volumes were not listed");
                Vec::new()
            });
        let docs = [DocId::from(family), family.key_log()]
            .into_iter()
            .chain(volumes.into_iter().map(|(_, doc)| doc));
        for doc in docs {
            if let Err(e) = self.state.logs(move |l| l.drop_doc(doc)).await {
                tracing::warn!(%family, %doc, error = %e, "family deleted but a log was not dropped");
            }
        }
        let told = users(&members);
        self.notify(&told, ServerEvent::FamilyDeleted { family })
            .await;
        for i in invites {
            self.notify(
                [&i.invitee],
                ServerEvent::InviteWithdrawn { invite: i.invite },
            )
            .await;
        }
        self.recheck(&told);
        tracing::info!(%family, "family deleted");
        Ok(Response::Done)
    }

    /// Opens the family's volume of `year` for its members (issue 17): from then on
    /// it is read, written and sealed like the family's document (`doc_owner`). At
    /// most `max_volumes_per_family` (this year's and the next excepted). A volume is
    /// sealed from its first change (`DocOwner::sealed_by_id`), so a family created
    /// clear opens volumes only once its host sealed its document (the log's first
    /// envelope, `LogStore::log_sealed`): while it is clear its members' devices keep
    /// filing in its document, and none of them could write a volume sealed.
    pub(super) async fn open_volume(&self, family: FamilyId, year: u16) -> ApiResult<Response> {
        self.member_of(family).await?;
        if !family.says_sealed() {
            let doc = DocId::from(family);
            if !self.state.logs(move |l| l.log_sealed(doc)).await? {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "a family in the clear keeps no volumes: its host seals it first",
                ));
            }
        }
        // The volumes of the year it is now and of the next (a device's clock a little
        // ahead) open even at the cap: a member who opened volumes of years nobody
        // uses keeps nobody from writing this year's.
        let now = doran_protocol::volume_year(i64::try_from(now_ms()).unwrap_or(i64::MAX));
        let max = if year == now || year == now.saturating_add(1) {
            usize::MAX
        } else {
            self.state.config.limits.max_volumes_per_family
        };
        let opened = self
            .state
            .accounts(move |a| a.open_volume(family, year, max))
            .await?;
        if opened {
            tracing::info!(%family, year, "volume opened");
        }
        Ok(Response::Done)
    }

    pub(super) async fn list_families(&self) -> ApiResult<Response> {
        let user = self.me.user;
        let list = self
            .state
            .accounts(move |a| {
                a.families_of(user)?
                    .iter()
                    .map(|f| summary(a, f, user))
                    .collect::<StoreResult<Vec<_>>>()
            })
            .await?;
        Ok(Response::Families(list))
    }
}
