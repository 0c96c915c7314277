//! `Hello`, the challenge, and its four answers.

use doran_protocol::{
    Challenge, ClientFrame, DeviceId, DeviceInfo, DocId, ErrorCode, ErrorFrame, LinkId,
    PROTOCOL_VERSION, PublicKey, ServerEvent, ServerFrame, UserId, signing,
};

use super::{Flow, Me, Phase, Session};
use crate::{
    auth::verify,
    cluster::Remote,
    error::{ApiError, ApiResult},
    hub::HubMsg,
    rules,
    state::now_ms,
    store::{LinkState, NewDevice, NewUser},
};

/// How long a new device waiting for its link to be confirmed is told to wait before
/// asking again.
pub(crate) const LINK_POLL_MS: u64 = 1_000;

/// Who an accepted answer signed in.
struct SignedIn {
    user: UserId,
    device: DeviceId,
    personal_doc: DocId,
    /// A device added by recovery or a link code (the others are told).
    added: Option<DeviceInfo>,
}

/// Link codes are compared in upper case without surrounding spaces.
pub(crate) fn link_code_hash(code: &str) -> [u8; 32] {
    *blake3::hash(code.trim().to_uppercase().as_bytes()).as_bytes()
}

impl Session {
    pub(super) async fn on_hello(&mut self, version: u16, client: String) -> Flow {
        if version != PROTOCOL_VERSION {
            let message = format!("this relay speaks protocol {PROTOCOL_VERSION}, not {version}");
            self.send_error(ErrorFrame::new(
                ErrorCode::UnsupportedProtocolVersion,
                message.clone(),
            ))
            .await?;
            return self
                .goodbye(ErrorCode::UnsupportedProtocolVersion, &message, None)
                .await;
        }
        if let Phase::Challenged(old) = &self.phase {
            self.state.challenges.forget(old);
        }
        self.client = client;
        let challenge = self.state.challenges.issue(now_ms());
        self.phase = Phase::Challenged(challenge.clone());
        self.send(&ServerFrame::Challenge(challenge)).await
    }

    /// An answer to the challenge: consumes it, then registers or signs in.
    pub(super) async fn on_answer(&mut self, frame: ClientFrame) -> Flow {
        let challenge = match std::mem::replace(&mut self.phase, Phase::Spent) {
            Phase::Challenged(challenge) => challenge,
            Phase::Connected => {
                self.phase = Phase::Connected;
                let e = ErrorFrame::new(ErrorCode::UnexpectedFrame, "send Hello first");
                return self.send_error(e).await;
            }
            other => {
                self.phase = other;
                let e = ErrorFrame::new(
                    ErrorCode::ChallengeReplayed,
                    "the challenge was already answered; send Hello for a new one",
                );
                return self.send_error(e).await;
            }
        };
        let kind = frame.kind();
        match self.answer(&challenge, frame).await {
            Ok(signed) => self.signed_in(signed).await,
            Err(e) => {
                tracing::info!(peer = %self.peer, kind, code = e.code.name(), "sign-in refused");
                self.send_error(e.frame()).await
            }
        }
    }

    async fn answer(&self, challenge: &Challenge, frame: ClientFrame) -> ApiResult<SignedIn> {
        self.state.challenges.redeem(challenge, now_ms())?;
        match frame {
            ClientFrame::Register {
                email,
                nickname,
                personal_doc,
                user_key,
                device,
                device_key,
                user_signature,
                device_signature,
            } => {
                // "Already exists" tells whether an email is registered, as a lookup
                // does: registering takes a lookup token of the address, and one of its
                // registrations (each claims an email), before anything is checked.
                let now = std::time::Instant::now();
                let ip = crate::http::limit_key(self.peer.ip());
                let limits = (
                    self.state.lookups_by_address.try_take(&ip, now),
                    self.state.registrations_by_address.try_take(&ip, now),
                );
                if let (Err(wait), _) | (_, Err(wait)) = limits {
                    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                    return Err(ApiError::rate_limited(ms));
                }
                let args = (
                    &email,
                    &nickname,
                    &personal_doc,
                    &user_key,
                    &device,
                    &device_key,
                );
                let user_msg = signing::register_user_message(
                    challenge, args.0, args.1, args.2, args.3, args.4, args.5,
                );
                let device_msg = signing::register_device_message(
                    challenge, args.0, args.1, args.2, args.3, args.4, args.5,
                );
                verify(&user_key, &user_msg, &user_signature)?;
                verify(&device_key, &device_msg, &device_signature)?;
                let email = rules::email(&email)?;
                let nickname = rules::nickname(&nickname)?;
                let now = now_ms();
                let user = NewUser {
                    id: UserId::random(),
                    email,
                    nickname,
                    user_key,
                    personal_doc,
                    created_at: now,
                };
                let first = self.new_device(device, device_key, now);
                let id = user.id;
                self.state
                    .accounts(move |a| a.create_user(&user, &first))
                    .await?;
                tracing::info!(user = %id, %device, "registered");
                Ok(SignedIn {
                    user: id,
                    device,
                    personal_doc,
                    added: None,
                })
            }
            ClientFrame::SignIn {
                user,
                device,
                signature,
            } => {
                let (found, record) = self
                    .state
                    .accounts(move |a| Ok((a.user(user)?, a.device(device)?)))
                    .await?;
                let found =
                    found.ok_or_else(|| ApiError::new(ErrorCode::UnknownUser, "no such user"))?;
                let record = record
                    .filter(|d| d.user == user)
                    .ok_or_else(|| ApiError::new(ErrorCode::UnknownDevice, "no such device"))?;
                if record.revoked_at.is_some() {
                    return Err(ApiError::new(ErrorCode::DeviceRevoked, "device revoked"));
                }
                verify(
                    &record.key,
                    &signing::signin_message(challenge, &user, &device),
                    &signature,
                )?;
                Ok(SignedIn {
                    user,
                    device,
                    personal_doc: found.personal_doc,
                    added: None,
                })
            }
            ClientFrame::Recover {
                user_key,
                device,
                device_key,
                user_signature,
                device_signature,
            } => {
                let user_msg =
                    signing::recover_user_message(challenge, &user_key, &device, &device_key);
                let device_msg =
                    signing::recover_device_message(challenge, &user_key, &device, &device_key);
                verify(&user_key, &user_msg, &user_signature)?;
                verify(&device_key, &device_msg, &device_signature)?;
                let found = self
                    .state
                    .accounts(move |a| a.user_by_key(&user_key))
                    .await?
                    .ok_or_else(|| ApiError::new(ErrorCode::UnknownUser, "no user has this key"))?;
                self.add_device(found.id, found.personal_doc, device, device_key)
                    .await
            }
            ClientFrame::LinkDevice {
                code,
                device,
                device_key,
                signature,
            } => {
                let msg = signing::link_device_message(challenge, &code, &device, &device_key);
                verify(&device_key, &msg, &signature)?;
                self.link_device(&code, device, device_key).await
            }
            other => Err(ApiError::new(
                ErrorCode::UnexpectedFrame,
                format!("{} does not answer a challenge", other.kind()),
            )),
        }
    }

    /// A code alone adds no device (DESIGN §identity): the first answer claims the
    /// code for this device key and asks the user's signed-in devices to confirm; the
    /// device asks again until one of them answered. A taken device id is refused
    /// before the code is claimed, so a refused answer does not cost the user their
    /// code.
    async fn link_device(
        &self,
        code: &str,
        device: DeviceId,
        device_key: PublicKey,
    ) -> ApiResult<SignedIn> {
        let hash = link_code_hash(code);
        let now = now_ms();
        let new = self.new_device(device, device_key, now);
        let proposed = LinkId::random();
        let record = self
            .state
            .accounts(move |a| a.claim_link_code(hash, proposed, &new, now))
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidLinkCode, "unknown or expired code"))?;
        let user = record.user;
        match record.state {
            LinkState::Accepted => {
                let found = self
                    .state
                    .accounts(move |a| a.user(user))
                    .await?
                    .ok_or_else(|| ApiError::new(ErrorCode::UnknownUser, "no such user"))?;
                tracing::info!(%user, %device, "linked device signed in");
                // Its other devices heard `DeviceAdded` when it was confirmed.
                Ok(SignedIn {
                    user,
                    device,
                    personal_doc: found.personal_doc,
                    added: None,
                })
            }
            LinkState::Rejected => Err(ApiError::new(
                ErrorCode::LinkRejected,
                "another device of this account rejected this device",
            )),
            LinkState::Pending if now >= record.expires_at => Err(ApiError::new(
                ErrorCode::LinkExpired,
                "the link request expired",
            )),
            LinkState::Pending => {
                if record.id == proposed {
                    tracing::info!(%user, %device, link = %record.id, "link requested");
                    let info = super::account::pending_link_info(&record);
                    super::requests::notify(&self.state, [&user], ServerEvent::LinkRequested(info))
                        .await;
                }
                let mut e = ApiError::new(
                    ErrorCode::LinkPending,
                    "waiting for another device of this account to confirm",
                );
                e.retry_after_ms = Some(LINK_POLL_MS);
                Err(e)
            }
        }
    }

    fn new_device(&self, id: DeviceId, key: PublicKey, now: u64) -> NewDevice {
        NewDevice {
            id,
            key,
            client: self.client.clone(),
            added_at: now,
        }
    }

    async fn add_device(
        &self,
        user: UserId,
        personal_doc: DocId,
        device: DeviceId,
        device_key: PublicKey,
    ) -> ApiResult<SignedIn> {
        let now = now_ms();
        let new = self.new_device(device, device_key, now);
        let info = DeviceInfo {
            device,
            device_key,
            client: new.client.clone(),
            added_at: now,
            last_seen: Some(now),
            online: true,
            revoked_at: None,
        };
        self.state
            .accounts(move |a| a.add_device(user, &new))
            .await?;
        tracing::info!(%user, %device, "device added");
        Ok(SignedIn {
            user,
            device,
            personal_doc,
            added: Some(info),
        })
    }

    /// Registers the signed-in connection, checks once more that its device is not
    /// revoked, answers `SignedIn`, then delivers pending invites and announces
    /// presence.
    ///
    /// The connection is registered in the hub *before* that last check: a revocation
    /// committed before the check is seen by it, and one committed after finds the
    /// connection in the hub and closes it. Checking first and registering after (as
    /// before) left a window in which a revoked device kept a session.
    async fn signed_in(&mut self, signed: SignedIn) -> Flow {
        let SignedIn {
            user,
            device,
            personal_doc,
            added,
        } = signed;
        let now = now_ms();
        let (registered, rx) = self.state.hub.register(user, device, self.tokens.clone());
        let client = self.client.clone();
        let found = self
            .state
            .accounts(move |a| {
                let revoked = a.device(device)?.is_none_or(|d| d.revoked_at.is_some());
                if revoked {
                    return Ok(None);
                }
                a.touch_device(device, now, Some(&client))?;
                Ok(Some((
                    a.families_of(user)?,
                    a.invites_for(user, now)?,
                    a.pending_links(user, now)?,
                )))
            })
            .await;
        let (families, invites, links) = match found {
            Ok(Some(v)) => v,
            Ok(None) => {
                self.state.hub.unregister(registered.id, now);
                // The hub may have revoked these tokens already: a later sign-in on
                // this connection (as another device) starts clean.
                self.tokens = super::ConnTokens::default();
                tracing::info!(%user, %device, peer = %self.peer, "sign-in of a revoked device refused");
                let e = ErrorFrame::new(ErrorCode::DeviceRevoked, "device revoked");
                return self.send_error(e).await;
            }
            Err(e) => {
                self.state.hub.unregister(registered.id, now);
                self.tokens = super::ConnTokens::default();
                return self.send_error(e.frame()).await;
            }
        };
        self.hub_rx = Some(rx);
        self.phase = Phase::SignedIn(Me {
            user,
            device,
            conn: registered.id,
        });
        tracing::info!(%user, %device, peer = %self.peer, "signed in");
        // Never shed from now on — before the device is told, or the sockets it opens
        // next (quieter than this one only by a moment) could make this one the
        // quietest and shed it (idle_connections, at the cap).
        if let Some(entry) = &self.entry {
            entry.protect();
        }
        self.send(&ServerFrame::SignedIn {
            user,
            device,
            server_time: now,
            personal_doc,
            families: families.iter().map(|f| f.id).collect(),
        })
        .await?;
        if let Some(key) = self.state.http_auth.sign_in_key(device, now) {
            self.send(&ServerFrame::HttpSessionKey(key)).await?;
        }
        if let Some(info) = added
            && let Some(msg) = HubMsg::event(ServerEvent::DeviceAdded(info))
        {
            self.state
                .hub
                .send_to_user_except(&user, registered.id, &msg);
            if let HubMsg::Event(frame) = msg {
                self.state
                    .cluster
                    .publish(&[user], Remote::Event((*frame).clone()))
                    .await;
            }
        }
        for invite in invites {
            self.send_event(ServerEvent::InviteReceived(invite)).await?;
        }
        // A device that was offline when a new device asked to join still gets asked.
        for link in &links {
            let info = super::account::pending_link_info(link);
            self.send_event(ServerEvent::LinkRequested(info)).await?;
        }
        let came_online = self
            .state
            .cluster
            .connected(user, device, registered.id, registered.came_online)
            .await;
        if came_online {
            self.announce_presence(user, true, now).await;
        }
        Ok(())
    }
}
