//! A virtual device: its own keys, one websocket session, the wire protocol spoken
//! directly (no local store), and a record of every chunk the relay delivered to it.

use std::time::Instant;

use doran_protocol::{
    Challenge, ChunkId, ClientFrame, DeviceId, DocId, FamilyId, HttpSessionKey, InviteId,
    PROTOCOL_VERSION, PublicKey, Request, RequestId, Response, Seq, ServerEvent, ServerFrame,
    Signature, Subscription, UserId, codec, signing,
};
use ed25519_dalek::{Signer, SigningKey};

use super::{ANSWER_TIMEOUT, LoadError, wire::Wire};

/// A user with one device, as the device knows itself.
#[derive(Clone)]
pub struct Identity {
    pub email: String,
    pub nickname: String,
    pub user_key: SigningKey,
    pub device_key: SigningKey,
    pub device: DeviceId,
    pub personal_doc: DocId,
    /// Assigned by the relay at registration.
    pub user: UserId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("email", &self.email)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn public(k: &SigningKey) -> PublicKey {
    PublicKey(k.verifying_key().to_bytes())
}

fn sign(k: &SigningKey, msg: &[u8]) -> Signature {
    Signature(k.sign(msg).to_bytes())
}

impl Identity {
    /// A fresh identity with random keys (the user id comes with registration).
    pub fn new(email: String, nickname: String) -> Identity {
        Identity {
            email,
            nickname,
            user_key: SigningKey::from_bytes(&rand::random()),
            device_key: SigningKey::from_bytes(&rand::random()),
            device: DeviceId::random(),
            personal_doc: DocId::random(),
            user: UserId([0; 16]),
        }
    }

    fn register_frame(&self, challenge: &Challenge) -> ClientFrame {
        let (uk, dk) = (public(&self.user_key), public(&self.device_key));
        let (email, nick, doc, dev) = (
            &self.email,
            &self.nickname,
            &self.personal_doc,
            &self.device,
        );
        let user_msg = signing::register_user_message(challenge, email, nick, doc, &uk, dev, &dk);
        let device_msg =
            signing::register_device_message(challenge, email, nick, doc, &uk, dev, &dk);
        ClientFrame::Register {
            email: self.email.clone(),
            nickname: self.nickname.clone(),
            personal_doc: self.personal_doc,
            user_key: uk,
            device: self.device,
            device_key: dk,
            user_signature: sign(&self.user_key, &user_msg),
            device_signature: sign(&self.device_key, &device_msg),
        }
    }

    /// The `SignIn` frame answering `challenge`.
    fn signin_frame(&self, challenge: &Challenge) -> ClientFrame {
        let msg = signing::signin_message(challenge, &self.user, &self.device);
        ClientFrame::SignIn {
            user: self.user,
            device: self.device,
            signature: sign(&self.device_key, &msg),
        }
    }

    /// A `SendInvite` request carrying `card` (the sealed card a device would send:
    /// opaque to the relay), signed over it.
    pub fn invite(
        &self,
        server_id: &str,
        family: FamilyId,
        invitee: UserId,
        card: Vec<u8>,
    ) -> Request {
        let invite = InviteId::random();
        let msg = signing::invite_message(
            server_id,
            &invite,
            &family,
            &self.user,
            &self.device,
            &invitee,
            &card,
        );
        Request::SendInvite {
            invite,
            family,
            invitee,
            card,
            signature: sign(&self.device_key, &msg),
        }
    }

    /// A signed `AnswerInvite` request.
    pub fn answer(&self, server_id: &str, invite: InviteId, accept: bool) -> Request {
        let msg =
            signing::invite_answer_message(server_id, &invite, &self.user, &self.device, accept);
        Request::AnswerInvite {
            invite,
            accept,
            signature: sign(&self.device_key, &msg),
        }
    }
}

/// A push, encoded: what goes on the wire and the chunk id its ack names. A load run
/// encodes its pushes before the clock starts (the device's encoding is not the
/// relay's cost); the bytes sent are the same.
#[derive(Debug, Clone)]
pub struct EncodedPush {
    pub doc: DocId,
    pub chunk: ChunkId,
    frame: Vec<u8>,
}

impl EncodedPush {
    /// The `Push` frame of `bytes` to `doc`, encoded.
    pub fn new(doc: DocId, bytes: Vec<u8>) -> Result<EncodedPush, LoadError> {
        let frame = ClientFrame::push(doc, bytes);
        let ClientFrame::Push { chunk, .. } = &frame else {
            return Err(LoadError::Protocol("not a push".into()));
        };
        let chunk = *chunk;
        let frame = codec::encode_client(&frame).map_err(|e| LoadError::Protocol(e.to_string()))?;
        Ok(EncodedPush { doc, chunk, frame })
    }
}

/// A chunk the relay delivered.
#[derive(Debug, Clone)]
pub struct Received {
    pub chunk: ChunkId,
    pub bytes: Vec<u8>,
    /// When this device read it off the socket.
    pub at: Instant,
}

/// One signed-in websocket session.
pub struct Conn {
    ws: Wire,
    next_id: u32,
    /// Every distinct chunk delivered so far, in arrival order.
    pub received: Vec<Received>,
    /// Chunks this session pushed: one coming back (a catch-up after a reconnect)
    /// was not received from anyone. Looked at only for chunks of its own user.
    pushed: Vec<ChunkId>,
    /// Its user, once signed in.
    user: Option<UserId>,
    /// Invites announced by the relay.
    pub invites: Vec<InviteId>,
    /// The relay's id from the challenge (signed into invites).
    pub server_id: String,
    /// The HTTP session key the relay sent after the sign-in, until the device's blob
    /// client takes it (as a device's driver hands it to its blob client).
    pub http_session: Option<HttpSessionKey>,
    /// Per document received from or subscribed to (a device has one or two): chunks
    /// received so far and, once subscribed, the highest seq received — where to
    /// resume after a reconnect. A list, not a map: it is looked up for every chunk.
    docs: Vec<DocTrack>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("received", &self.received.len())
            .finish_non_exhaustive()
    }
}

/// What a session knows of one document.
#[derive(Debug, Clone, Copy)]
struct DocTrack {
    doc: DocId,
    /// Chunks of it received (counted in [`Conn::received`]).
    received: usize,
    /// The highest seq received, once subscribed.
    cursor: Option<Seq>,
}

/// What an awaited frame turned out to be.
enum Wait<T> {
    Done(T),
    Refused(LoadError),
}

impl Conn {
    async fn connect(url: &str) -> Result<(Conn, Challenge), LoadError> {
        let ws = Wire::connect(url).await?;
        let mut conn = Conn {
            ws,
            next_id: 1,
            received: Vec::new(),
            pushed: Vec::new(),
            user: None,
            invites: Vec::new(),
            server_id: String::new(),
            http_session: None,
            docs: Vec::new(),
        };
        conn.send(&ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: "doran-bench/1".into(),
        })
        .await?;
        let challenge = conn
            .wait("challenge", |f| match f {
                ServerFrame::Challenge(c) => Some(Wait::Done(c.clone())),
                _ => None,
            })
            .await?;
        conn.server_id = challenge.server_id.clone();
        Ok((conn, challenge))
    }

    /// Registers `id` (setting its user id) and returns the signed-in session.
    pub async fn register(url: &str, id: &mut Identity) -> Result<Conn, LoadError> {
        let (mut conn, challenge) = Conn::connect(url).await?;
        conn.send(&id.register_frame(&challenge)).await?;
        id.user = conn.signed_in().await?;
        conn.user = Some(id.user);
        Ok(conn)
    }

    /// Signs a known device in on a new session.
    pub async fn sign_in(url: &str, id: &Identity) -> Result<Conn, LoadError> {
        let (mut conn, challenge) = Conn::connect(url).await?;
        conn.send(&id.signin_frame(&challenge)).await?;
        conn.user = Some(conn.signed_in().await?);
        Ok(conn)
    }

    /// After the connection broke (the relay crashed or restarted): signs in again on
    /// a new socket, retrying until `deadline`, and resubscribes every document from
    /// the last seq received. What was received before is kept; a push that was not
    /// acked must be sent again by the caller (pushes are idempotent).
    pub async fn reconnect(
        &mut self,
        url: &str,
        id: &Identity,
        deadline: Instant,
    ) -> Result<(), LoadError> {
        loop {
            match self.try_reconnect(url, id).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    async fn try_reconnect(&mut self, url: &str, id: &Identity) -> Result<(), LoadError> {
        let fresh = Conn::sign_in(url, id).await?;
        let old = std::mem::replace(&mut self.ws, fresh.ws);
        drop(old);
        let docs: Vec<(DocId, Seq)> = self
            .docs
            .iter()
            .filter_map(|t| Some((t.doc, t.cursor?)))
            .collect();
        for (doc, since) in docs {
            self.subscribe(doc, since).await?;
        }
        Ok(())
    }

    async fn signed_in(&mut self) -> Result<UserId, LoadError> {
        self.wait("sign-in", |f| match f {
            ServerFrame::SignedIn { user, .. } => Some(Wait::Done(*user)),
            _ => None,
        })
        .await
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), LoadError> {
        let bytes = codec::encode_client(frame).map_err(|e| LoadError::Protocol(e.to_string()))?;
        self.ws.send(&bytes).await?;
        Ok(())
    }

    /// Sends a request and waits for its answer; chunks arriving meanwhile are recorded.
    pub async fn request(&mut self, body: Request) -> Result<Response, LoadError> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.send(&ClientFrame::Request { id, body }).await?;
        self.wait("a response", |f| match f {
            ServerFrame::Response { id: got, body } if *got == id => Some(Wait::Done(body.clone())),
            ServerFrame::Error(e) if e.request == Some(id) => {
                Some(Wait::Refused(LoadError::from(e.clone())))
            }
            _ => None,
        })
        .await
    }

    /// Pushes a chunk and waits for its ack; returns the seq.
    pub async fn push(&mut self, doc: DocId, bytes: Vec<u8>) -> Result<Seq, LoadError> {
        self.push_encoded(&EncodedPush::new(doc, bytes)?).await
    }

    /// Sends an encoded push and waits for its ack; returns the seq.
    pub async fn push_encoded(&mut self, push: &EncodedPush) -> Result<Seq, LoadError> {
        let (doc, chunk) = (push.doc, push.chunk);
        // Its own chunk, if a catch-up after a reconnect brings it back, was not
        // received from anyone.
        self.pushed.push(chunk);
        self.ws.send(&push.frame).await?;
        self.wait("an ack", |f| match f {
            ServerFrame::Ack {
                doc: d,
                chunk: c,
                seq,
            } if *d == doc && *c == chunk => Some(Wait::Done(*seq)),
            ServerFrame::Error(e) if e.chunk == Some(chunk) => {
                Some(Wait::Refused(LoadError::from(e.clone())))
            }
            _ => None,
        })
        .await
    }

    /// Subscribes to `doc` from `since` and waits for `CaughtUp`; returns the head.
    pub async fn subscribe(&mut self, doc: DocId, since: Seq) -> Result<Seq, LoadError> {
        let track = self.track(doc);
        track.cursor.get_or_insert(since);
        self.send(&ClientFrame::Subscribe {
            docs: vec![Subscription { doc, since }],
        })
        .await?;
        self.wait("caught-up", |f| match f {
            ServerFrame::CaughtUp { doc: d, seq } if *d == doc => Some(Wait::Done(*seq)),
            ServerFrame::Error(e) if e.doc == Some(doc) => {
                Some(Wait::Refused(LoadError::from(e.clone())))
            }
            _ => None,
        })
        .await
    }

    /// Reads frames until `n` chunks of `doc` have arrived in total.
    pub async fn until_received(&mut self, doc: DocId, n: usize) -> Result<(), LoadError> {
        while self.track(doc).received < n {
            self.next_frame("chunks").await?;
        }
        Ok(())
    }

    /// Reads and records the next frame, failing after [`ANSWER_TIMEOUT`].
    pub async fn next_frame(&mut self, what: &'static str) -> Result<ServerFrame, LoadError> {
        tokio::time::timeout(ANSWER_TIMEOUT, self.next_frame_idle())
            .await
            .map_err(|_| LoadError::Timeout(what))?
    }

    /// Reads and records the next frame, however long it takes (an idle device).
    /// Cancel-safe: a frame is either fully read and recorded or not taken at all.
    /// A new chunk's bytes are moved into [`received`](Self::received): the `Chunk`
    /// frame returned has them empty.
    pub async fn next_frame_idle(&mut self) -> Result<ServerFrame, LoadError> {
        let mut frame = self.ws.next().await?;
        match &mut frame {
            // A chunk can come twice (catch-up racing live delivery); count it once.
            // The relay sends a document's chunks in seq order, so a chunk at or
            // below the highest seq received is one already had.
            ServerFrame::Chunk {
                doc,
                chunk,
                bytes,
                seq,
                author,
            } => {
                let own = author.is_some() && *author == self.user && self.pushed.contains(chunk);
                let track = self.track(*doc);
                let new = track.cursor.is_none_or(|c| *seq > c);
                if let Some(cursor) = &mut track.cursor {
                    *cursor = (*cursor).max(*seq);
                }
                if new && !own {
                    track.received += 1;
                    self.received.push(Received {
                        chunk: *chunk,
                        bytes: std::mem::take(bytes),
                        at: Instant::now(),
                    });
                }
            }
            ServerFrame::CaughtUp { doc, seq } => {
                if let Some(cursor) = &mut self.track(*doc).cursor {
                    *cursor = (*cursor).max(*seq);
                }
            }
            ServerFrame::Event(ServerEvent::InviteReceived(info)) => self.invites.push(info.invite),
            ServerFrame::HttpSessionKey(key) => self.http_session = Some(*key),
            ServerFrame::Goodbye {
                reason, message, ..
            } => {
                return Err(LoadError::Refused(*reason, message.clone()));
            }
            _ => {}
        }
        Ok(frame)
    }

    /// Reads frames until `pick` takes one, within [`ANSWER_TIMEOUT`] for the whole
    /// wait (one timer per answer, not one per frame read on the way).
    async fn wait<T>(
        &mut self,
        what: &'static str,
        mut pick: impl FnMut(&ServerFrame) -> Option<Wait<T>>,
    ) -> Result<T, LoadError> {
        let waiting = async {
            loop {
                let frame = self.next_frame_idle().await?;
                match pick(&frame) {
                    Some(Wait::Done(t)) => return Ok(t),
                    Some(Wait::Refused(e)) => return Err(e),
                    None => {}
                }
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, waiting)
            .await
            .map_err(|_| LoadError::Timeout(what))?
    }

    /// What this session knows of `doc` (added, empty, if nothing yet).
    fn track(&mut self, doc: DocId) -> &mut DocTrack {
        let at = match self.docs.iter().position(|t| t.doc == doc) {
            Some(at) => at,
            None => {
                self.docs.push(DocTrack {
                    doc,
                    received: 0,
                    cursor: None,
                });
                self.docs.len() - 1
            }
        };
        &mut self.docs[at]
    }

    /// Makes room for `pushes` more pushes and `chunks` more chunks received, so a
    /// run's bookkeeping does not grow (and copy) as it goes.
    pub fn reserve(&mut self, pushes: usize, chunks: usize) {
        self.pushed.reserve(pushes);
        self.received.reserve(chunks);
    }

    /// Forgets what was received so far (set-up traffic is not measured).
    pub fn reset_received(&mut self) {
        self.received.clear();
        self.pushed.clear();
        for track in &mut self.docs {
            track.received = 0;
        }
    }

    /// Closes the session politely.
    pub async fn close(mut self) {
        let _ = self.ws.close().await;
    }
}
