//! A virtual device: its own keys, one websocket session, the wire protocol spoken
//! directly (no local store), and a record of every chunk the relay delivered to it.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use doran_protocol::{
    Challenge, ChunkId, ClientFrame, DeviceId, DocId, FamilyId, InviteId, PROTOCOL_VERSION,
    PublicKey, Request, RequestId, Response, Seq, ServerEvent, ServerFrame, Signature,
    Subscription, UserId, codec, signing,
};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

use super::{ANSWER_TIMEOUT, LoadError};

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

    /// A signed `SendInvite` request.
    pub fn invite(
        &self,
        server_id: &str,
        family: FamilyId,
        invitee: UserId,
        name: &str,
    ) -> Request {
        let invite = InviteId::random();
        let msg = signing::invite_message(
            server_id,
            &invite,
            &family,
            &self.user,
            &self.device,
            &invitee,
            name,
        );
        Request::SendInvite {
            invite,
            family,
            invitee,
            proposed_name: name.into(),
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

/// A chunk the relay delivered.
#[derive(Debug, Clone)]
pub struct Received {
    pub doc: DocId,
    pub chunk: ChunkId,
    pub bytes: Vec<u8>,
    /// When this device read it off the socket.
    pub at: Instant,
}

/// One signed-in websocket session.
pub struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
    /// Every distinct chunk delivered so far, in arrival order.
    pub received: Vec<Received>,
    seen: HashSet<ChunkId>,
    /// Invites announced by the relay.
    pub invites: Vec<InviteId>,
    /// The relay's id from the challenge (signed into invites).
    pub server_id: String,
    /// Per subscribed document, the highest seq received: where to resume after a
    /// reconnect.
    cursors: HashMap<DocId, Seq>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("received", &self.received.len())
            .finish_non_exhaustive()
    }
}

/// What an awaited frame turned out to be.
enum Wait<T> {
    Done(T),
    Refused(LoadError),
}

impl Conn {
    async fn connect(url: &str) -> Result<(Conn, Challenge), LoadError> {
        // A small read buffer: tungstenite zero-fills it before every read (see the
        // relay's WS_READ_BUFFER), and thousands of devices share two cores. No Nagle
        // delay, as in the app.
        let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
        let mut conn = Conn {
            ws,
            next_id: 1,
            received: Vec::new(),
            seen: HashSet::new(),
            invites: Vec::new(),
            server_id: String::new(),
            cursors: HashMap::new(),
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
        Ok(conn)
    }

    /// Signs a known device in on a new session.
    pub async fn sign_in(url: &str, id: &Identity) -> Result<Conn, LoadError> {
        let (mut conn, challenge) = Conn::connect(url).await?;
        conn.send(&id.signin_frame(&challenge)).await?;
        conn.signed_in().await?;
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
        let docs: Vec<(DocId, Seq)> = self.cursors.iter().map(|(d, s)| (*d, *s)).collect();
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
        self.ws.send(Message::Binary(bytes.into())).await?;
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
        let chunk = ChunkId::of(&bytes);
        // Its own chunk, if a catch-up after a reconnect brings it back, was not
        // received from anyone.
        self.seen.insert(chunk);
        self.send(&ClientFrame::push(doc, bytes)).await?;
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
        self.cursors.entry(doc).or_insert(since);
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
        while self.received.iter().filter(|r| r.doc == doc).count() < n {
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
    pub async fn next_frame_idle(&mut self) -> Result<ServerFrame, LoadError> {
        let frame = loop {
            match self.ws.next().await {
                None => return Err(LoadError::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Binary(bytes))) => {
                    break codec::decode_server(&bytes)
                        .map_err(|e| LoadError::Protocol(e.to_string()))?;
                }
                Some(Ok(Message::Close(_))) => return Err(LoadError::Closed),
                Some(Ok(_)) => continue,
            }
        };
        match &frame {
            // A chunk can come twice (catch-up racing live delivery); count it once.
            ServerFrame::Chunk {
                doc,
                chunk,
                bytes,
                seq,
                ..
            } if self.seen.insert(*chunk) => {
                if let Some(cursor) = self.cursors.get_mut(doc) {
                    *cursor = (*cursor).max(*seq);
                }
                self.received.push(Received {
                    doc: *doc,
                    chunk: *chunk,
                    bytes: bytes.clone(),
                    at: Instant::now(),
                });
            }
            ServerFrame::CaughtUp { doc, seq } => {
                if let Some(cursor) = self.cursors.get_mut(doc) {
                    *cursor = (*cursor).max(*seq);
                }
            }
            ServerFrame::Event(ServerEvent::InviteReceived(info)) => self.invites.push(info.invite),
            ServerFrame::Goodbye {
                reason, message, ..
            } => {
                return Err(LoadError::Refused(*reason, message.clone()));
            }
            _ => {}
        }
        Ok(frame)
    }

    async fn wait<T>(
        &mut self,
        what: &'static str,
        mut pick: impl FnMut(&ServerFrame) -> Option<Wait<T>>,
    ) -> Result<T, LoadError> {
        loop {
            let frame = self.next_frame(what).await?;
            match pick(&frame) {
                Some(Wait::Done(t)) => return Ok(t),
                Some(Wait::Refused(e)) => return Err(e),
                None => {}
            }
        }
    }

    /// Forgets what was received so far (set-up traffic is not measured).
    pub fn reset_received(&mut self) {
        self.received.clear();
        self.seen.clear();
    }

    /// Closes the session politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
