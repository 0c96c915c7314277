//! Frames from the relay: dispatched to the concern they belong to; answers to
//! requests (the host's and the machine's own), server events and errors.

use doran_protocol::{
    DocId, ErrorCode, ErrorFrame, MembershipChange, RequestId, Response, ServerEvent, ServerFrame,
};

use super::{Conn, Internal, SyncMachine};
use crate::sync::{Effects, RequestOutcome, SignedIn, SnapshotRef};

impl SyncMachine {
    pub(super) fn on_frame(&mut self, frame: ServerFrame, fx: &mut Effects) {
        match frame {
            ServerFrame::Challenge(challenge) => {
                if self.conn != Conn::AwaitChallenge {
                    return;
                }
                if let Some(address) = &self.config.relay_address
                    && let Err(why) = crate::sync::check_server_id(&challenge.server_id, address)
                {
                    tracing::warn!(%why, "the relay's id names another address; not signing in");
                    self.stop(ErrorCode::WrongRelay, why, fx);
                    return;
                }
                self.server_id = Some(challenge.server_id.clone());
                match self.sign_in_frame(&challenge) {
                    Ok(frame) => {
                        self.conn = Conn::AwaitSignedIn;
                        fx.send.push(frame);
                    }
                    Err(message) => self.stop(ErrorCode::BadSignature, message.into(), fx),
                }
            }
            ServerFrame::SignedIn {
                user,
                device,
                server_time,
                personal_doc,
                families,
            } => self.on_signed_in(
                SignedIn {
                    user,
                    device,
                    personal_doc,
                    families,
                    server_time,
                },
                fx,
            ),
            ServerFrame::Response { id, body } => self.on_response(id, body, fx),
            ServerFrame::Ack { doc, chunk, seq } => self.on_ack(doc, chunk, seq, fx),
            ServerFrame::Chunk {
                doc,
                seq,
                chunk,
                author,
                bytes,
            } => self.on_chunk(doc, (seq, chunk, author), bytes, fx),
            // Protocol 1's frame, which a relay of this protocol never sends: a chunk
            // with no recorded author.
            ServerFrame::UnauthoredChunk {
                doc,
                seq,
                chunk,
                bytes,
            } => self.on_chunk(doc, (seq, chunk, None), bytes, fx),
            ServerFrame::Snapshot {
                doc,
                covers_seq,
                blob,
                len,
            } => self.on_snapshot(
                doc,
                SnapshotRef {
                    blob,
                    len,
                    covers_seq,
                },
                fx,
            ),
            ServerFrame::CaughtUp { doc, .. } => self.on_caught_up(doc, fx),
            ServerFrame::SnapshotAccepted { doc, covers_seq } => {
                self.on_snapshot_accepted(doc, covers_seq, fx);
            }
            ServerFrame::Event(event) => self.on_event(event, fx),
            ServerFrame::Pong { .. } => {}
            ServerFrame::Error(e) => self.on_error(e, fx),
            ServerFrame::Goodbye {
                reason,
                message,
                retry_after_ms,
            } => self.connection_over(Some((reason, message, retry_after_ms)), fx),
            ServerFrame::CursorAhead { doc, head } => self.on_cursor_ahead(doc, head, fx),
            ServerFrame::PendingSnapshot {
                doc,
                covers_seq,
                blob,
                len,
                by,
                by_device,
            } => self.on_pending_snapshot(
                doc,
                SnapshotRef {
                    blob,
                    len,
                    covers_seq,
                },
                (by, by_device),
                fx,
            ),
            // Only on the connection it was given on, once signed in: a key before the
            // sign-in would be no relay's answer to this device's signature.
            ServerFrame::HttpSessionKey(key) => {
                if self.conn == Conn::SignedIn {
                    fx.http_session = Some(key);
                }
            }
        }
    }

    pub(super) fn on_response(&mut self, id: RequestId, body: Response, fx: &mut Effects) {
        let internal = self.internal.remove(&id);
        match internal {
            Some(Internal::Confirm(doc, covers_seq)) => {
                if matches!(body, Response::Done) {
                    self.on_snapshot_confirmed(doc, covers_seq, fx);
                }
                return;
            }
            Some(Internal::Reject) => return,
            Some(Internal::OpenVolume(family, year)) => {
                if matches!(body, Response::Done) {
                    self.on_volume_opened(family, year, fx);
                } else {
                    tracing::warn!(%family, year, "the relay answered OpenVolume oddly: the volume is not synced on this connection");
                    self.open_volumes(fx);
                }
                return;
            }
            Some(Internal::ListFamilies) | None => {}
        }
        if internal == Some(Internal::ListFamilies) {
            if let Response::Families(list) = body {
                let mut subs = Vec::new();
                for f in &list {
                    self.want_family(f.family, &f.members, &mut subs);
                }
                Self::subscribe(subs, fx);
            }
            self.families_listed = true;
            return;
        }
        if !self.outstanding.remove(&id) {
            return;
        }
        let mut subs = Vec::new();
        match &body {
            Response::FamilyCreated(f) => self.want_family(f.family, &f.members, &mut subs),
            Response::InviteAnswered {
                family: Some(f), ..
            } => self.want_family(f.family, &f.members, &mut subs),
            _ => {}
        }
        Self::subscribe(subs, fx);
        fx.answered.push((id, RequestOutcome::Response(body)));
    }

    pub(super) fn on_event(&mut self, event: ServerEvent, fx: &mut Effects) {
        match &event {
            ServerEvent::MembershipChanged {
                family,
                members,
                change,
            } => {
                let gone = match change {
                    MembershipChange::Left { user } | MembershipChange::Removed { user, .. } => {
                        Some(*user) == self.me
                    }
                    _ => false,
                };
                if gone {
                    self.drop_doc(DocId::from(*family), ErrorCode::Forbidden, fx);
                    self.drop_doc(family.key_log(), ErrorCode::Forbidden, fx);
                } else {
                    let mut subs = Vec::new();
                    self.want_family(*family, members, &mut subs);
                    Self::subscribe(subs, fx);
                }
            }
            ServerEvent::FamilyDeleted { family } => {
                self.drop_doc(DocId::from(*family), ErrorCode::NotFound, fx);
                self.drop_doc(family.key_log(), ErrorCode::NotFound, fx);
            }
            _ => {}
        }
        fx.events.push(event);
    }

    pub(super) fn on_error(&mut self, e: ErrorFrame, fx: &mut Effects) {
        if let Some(id) = e.request {
            if let Some(internal) = self.internal.remove(&id) {
                // Our own ListFamilies failed: go on with what SignedIn said. (A
                // refused confirmation — the snapshot replaced or expired meanwhile —
                // changes nothing either.)
                match internal {
                    Internal::OpenVolume(family, year) => {
                        self.on_volume_refused((family, year), &e, fx);
                        return;
                    }
                    Internal::ListFamilies => self.families_listed = true,
                    Internal::Confirm(..) | Internal::Reject => {}
                }
                fx.errors.push(e);
            } else if self.outstanding.remove(&id) {
                fx.answered.push((id, RequestOutcome::Refused(e)));
            } else {
                fx.errors.push(e);
            }
            return;
        }
        if self.conn == Conn::AwaitSignedIn && e.doc.is_none() {
            // The sign-in was refused.
            let retry = e.code.is_transient()
                || matches!(
                    e.code,
                    ErrorCode::ChallengeExpired | ErrorCode::ChallengeReplayed
                );
            if retry {
                fx.errors.push(e);
                self.connection_over(None, fx);
            } else {
                self.stop(e.code, e.message, fx);
            }
            return;
        }
        match (e.doc, e.chunk) {
            (Some(doc), Some(chunk)) => {
                self.in_flight.retain(|&(d, c)| (d, c) != (doc, chunk));
                // Refusals that pass keep the edit: it stays in the outbox and goes
                // again later. Dropping it would lose it for every other device, and
                // every later change of this device to the document depends on it.
                // A family its host sealed meanwhile: the change goes again, sealed,
                // once this device has seen the first envelope and is in the group.
                let keep = e.code.is_transient()
                    || matches!(
                        e.code,
                        ErrorCode::QuotaExceeded
                            | ErrorCode::DocumentFull
                            | ErrorCode::DocumentSealed
                    );
                if keep {
                    self.keep_for_later(e.code, e.retry_after_ms);
                    if e.code == ErrorCode::DocumentFull {
                        // What frees the log is a snapshot of it.
                        self.compact_full(doc, fx);
                    }
                } else {
                    fx.refused.push((doc, chunk, e.code));
                }
                fx.errors.push(e);
                self.pump(fx);
            }
            (Some(doc), None) => {
                let compacting = self
                    .docs
                    .get(&doc)
                    .is_some_and(|d| d.compacting && d.caught_up);
                // (`document_sealed`: a clear snapshot of a family sealed meanwhile,
                // from a device that has not seen the first envelope yet.)
                let snapshot_error = compacting
                    && matches!(
                        e.code,
                        ErrorCode::Conflict
                            | ErrorCode::NotFound
                            | ErrorCode::InvalidInput
                            | ErrorCode::DocumentSealed
                    );
                if snapshot_error || e.code.is_transient() {
                    self.compact_failed(doc, e.retry_after_ms);
                    fx.errors.push(e);
                } else if self.docs.contains_key(&doc) {
                    self.drop_doc(doc, e.code, fx);
                } else {
                    fx.errors.push(e);
                }
            }
            _ => fx.errors.push(e),
        }
    }
}
