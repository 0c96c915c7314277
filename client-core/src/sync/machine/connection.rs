//! The connection: hello, the sign-in (known device, registration, recovery, link
//! code), keep-alive pings, and how a connection ends (reconnect, or stop for good).

use doran_protocol::{ClientFrame, DocId, ErrorCode, PROTOCOL_VERSION, Request, signing};

use super::{Conn, DocCursor, Internal, SignInAs, SyncMachine};
use crate::sync::{DocKind, Effects, Fatal, RequestOutcome, SignedIn};

impl SyncMachine {
    pub(super) fn on_connected(&mut self, now_ms: u64, docs: Vec<DocCursor>, fx: &mut Effects) {
        if self.conn == Conn::Stopped {
            fx.close = true;
            return;
        }
        self.stored = docs.into_iter().map(|d| (d.doc, d)).collect();
        self.reset_connection();
        self.conn = Conn::AwaitChallenge;
        self.last_frame_at = now_ms;
        self.last_ping_at = now_ms;
        fx.send.push(ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: self.config.client.clone(),
        });
    }

    pub(super) fn reset_connection(&mut self) {
        self.docs.clear();
        self.families_listed = false;
        self.volumes_asked.clear();
        self.volume_queue.clear();
        self.volume_retry.clear();
        self.volume_conflicts.clear();
        self.relist_outbox = false;
        self.internal.clear();
        self.queue.clear();
        self.in_flight.clear();
        self.last_queued = None;
        self.outbox_requested = false;
        self.outbox_more = true;
        // A new connection starts from the oldest entry anyway, with a new budget.
        self.retry_kept_at = None;
        self.pushes_paused = false;
    }

    /// The connection ended (`goodbye` is the relay's reason when it said one).
    pub(super) fn connection_over(
        &mut self,
        goodbye: Option<(ErrorCode, String, Option<u64>)>,
        fx: &mut Effects,
    ) {
        if matches!(self.conn, Conn::Offline | Conn::Stopped) {
            return;
        }
        for id in std::mem::take(&mut self.outstanding) {
            fx.answered.push((id, RequestOutcome::Disconnected));
        }
        self.reset_connection();
        fx.close = true;
        let never = |c: ErrorCode| {
            matches!(
                c,
                ErrorCode::DeviceRevoked | ErrorCode::UnsupportedProtocolVersion
            )
        };
        match goodbye {
            Some((code, message, _)) if never(code) => self.stop(code, message, fx),
            Some((_, _, retry_after)) => {
                self.conn = Conn::Offline;
                let delay = self.backoff.next_delay();
                fx.reconnect_after = Some(delay.max(retry_after.unwrap_or(0)));
            }
            None => {
                self.conn = Conn::Offline;
                fx.reconnect_after = Some(self.backoff.next_delay());
            }
        }
    }

    pub(super) fn stop(&mut self, code: ErrorCode, message: String, fx: &mut Effects) {
        self.conn = Conn::Stopped;
        fx.close = true;
        fx.reconnect_after = None;
        fx.fatal = Some(Fatal { code, message });
        for (id, _) in std::mem::take(&mut self.queued_requests) {
            fx.answered.push((id, RequestOutcome::Disconnected));
        }
        for id in std::mem::take(&mut self.outstanding) {
            fx.answered.push((id, RequestOutcome::Disconnected));
        }
    }

    pub(super) fn on_tick(&mut self, now_ms: u64, fx: &mut Effects) {
        match self.conn {
            Conn::Offline | Conn::Stopped => {}
            _ if now_ms.saturating_sub(self.last_frame_at) >= self.config.dead_after_ms => {
                tracing::debug!("no frame for too long; reconnecting");
                self.connection_over(None, fx);
            }
            Conn::SignedIn
                if now_ms.saturating_sub(self.last_frame_at) >= self.config.ping_after_ms
                    && now_ms.saturating_sub(self.last_ping_at) >= self.config.ping_after_ms =>
            {
                self.last_ping_at = now_ms;
                let nonce = self.next_nonce;
                self.next_nonce += 1;
                fx.send.push(ClientFrame::Ping { nonce });
            }
            _ => {}
        }
    }

    pub(super) fn sign_in_frame(
        &self,
        challenge: &doran_protocol::Challenge,
    ) -> Result<ClientFrame, &'static str> {
        let k = &self.keys;
        let device_key = k.device_public();
        Ok(match &self.sign_in {
            SignInAs::Known { user } => ClientFrame::SignIn {
                user: *user,
                device: k.device,
                signature: k.sign_device(&signing::signin_message(challenge, user, &k.device)),
            },
            SignInAs::Register {
                email,
                nickname,
                personal_doc,
            } => {
                let user_key = k.user_public().ok_or("registering needs the user key")?;
                let (user_msg, device_msg) = (
                    signing::register_user_message(
                        challenge,
                        email,
                        nickname,
                        personal_doc,
                        &user_key,
                        &k.device,
                        &device_key,
                    ),
                    signing::register_device_message(
                        challenge,
                        email,
                        nickname,
                        personal_doc,
                        &user_key,
                        &k.device,
                        &device_key,
                    ),
                );
                ClientFrame::Register {
                    email: email.clone(),
                    nickname: nickname.clone(),
                    personal_doc: *personal_doc,
                    user_key,
                    device: k.device,
                    device_key,
                    user_signature: k.sign_user(&user_msg).ok_or("no user key")?,
                    device_signature: k.sign_device(&device_msg),
                }
            }
            SignInAs::Recover => {
                let user_key = k.user_public().ok_or("recovering needs the user key")?;
                let user_msg =
                    signing::recover_user_message(challenge, &user_key, &k.device, &device_key);
                let device_msg =
                    signing::recover_device_message(challenge, &user_key, &k.device, &device_key);
                ClientFrame::Recover {
                    user_key,
                    device: k.device,
                    device_key,
                    user_signature: k.sign_user(&user_msg).ok_or("no user key")?,
                    device_signature: k.sign_device(&device_msg),
                }
            }
            SignInAs::Link { code } => ClientFrame::LinkDevice {
                code: code.clone(),
                device: k.device,
                device_key,
                signature: k.sign_device(&signing::link_device_message(
                    challenge,
                    code,
                    &k.device,
                    &device_key,
                )),
            },
        })
    }

    pub(super) fn on_signed_in(&mut self, info: SignedIn, fx: &mut Effects) {
        if self.conn != Conn::AwaitSignedIn {
            return;
        }
        self.conn = Conn::SignedIn;
        self.backoff.reset();
        self.me = Some(info.user);
        self.device = Some(info.device);
        self.note_server_time(info.server_time);
        // Reconnections sign in as the known device.
        self.sign_in = SignInAs::Known { user: info.user };
        let mut subs = Vec::new();
        self.want(info.personal_doc, DocKind::Personal(info.user), &mut subs);
        // A sealed personal document's key log: its user's devices' key group.
        let personal = crate::sync::personal_group(info.personal_doc);
        if personal.says_sealed() {
            self.want(personal.key_log(), DocKind::KeyLog(personal), &mut subs);
        }
        for f in &info.families {
            self.want(DocId::from(*f), DocKind::Family(*f), &mut subs);
            self.want(f.key_log(), DocKind::KeyLog(*f), &mut subs);
        }
        Self::subscribe(subs, fx);
        let id = self.next_id();
        self.internal.insert(id, Internal::ListFamilies);
        fx.send.push(ClientFrame::Request {
            id,
            body: Request::ListFamilies,
        });
        for (id, body) in std::mem::take(&mut self.queued_requests) {
            self.outstanding.insert(id);
            fx.send.push(ClientFrame::Request { id, body });
        }
        fx.signed_in = Some(info);
        self.pump(fx);
    }
}
