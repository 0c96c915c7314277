//! Several relays on one PostgreSQL database and one S3 bucket (issue 16): whatever a
//! device does through one relay reaches the devices on the others, live.
//!
//! Each test starts two real relays on a schema and a prefix of their own (see
//! `support::shared_backend`); without a test database (`DORAN_TEST_DATABASE`) they
//! pass without running, unless `DORAN_REQUIRE_BACKENDS` is set (`scripts/test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use doran_protocol::{
    ClientFrame, DeviceId, ErrorCode, FamilyId, InviteId, MembershipChange, Request, Response,
    ServerEvent, ServerFrame,
};
use doran_server::store::{BlobStore as _, S3BlobStore, S3Options};
use support::{
    CLUSTER_SECRET, Client, Identity, Server, http, link_and_confirm, maced_get, metric,
    session_key, shared_backend, signed_http,
};

/// Two relays sharing a fresh schema and prefix, or `None` without the backends.
fn two_relays(dir: &std::path::Path) -> Option<(Server, Server)> {
    two_relays_on(dir, &format!("cluster-{:016x}", rand::random::<u64>()))
}

/// Two relays sharing the schema and prefix named by `key`.
fn two_relays_on(dir: &std::path::Path, key: &str) -> Option<(Server, Server)> {
    let one = Server::start_shared(&dir.join("one"), key, &[])?;
    let two = Server::start_shared(&dir.join("two"), key, &[])?;
    Some((one, two))
}

/// `bytes` uploaded to `family` by `who` through `relay`; the blob's download path.
async fn upload(relay: &Server, who: &Identity, family: FamilyId, bytes: &[u8]) -> String {
    let hash = doran_protocol::BlobHash::of(bytes);
    let put = format!("/blobs/{hash}?family={family}");
    assert_eq!(
        signed_http(relay, who, "PUT", &put, bytes).await.status,
        201
    );
    format!("/blobs/{hash}")
}

/// Alice (on `a`, host) and Bob (on `b`) in one family, Bob having joined through an
/// invite that reached him live on his relay.
async fn family_across(
    one: &Server,
    two: &Server,
) -> (Identity, Client, Identity, Client, FamilyId) {
    family_across_as(one, two, FamilyId::random()).await
}

/// [`family_across`] with the family's id given (a sealed family's, say).
async fn family_across_as(
    one: &Server,
    two: &Server,
    family: FamilyId,
) -> (Identity, Client, Identity, Client, FamilyId) {
    let mut alice = Identity::new("alice@example.com", "alice");
    let mut bob = Identity::new("bob@example.com", "bob_");
    let mut a = Client::register(one, &mut alice).await;
    let mut b = Client::register(two, &mut bob).await;
    a.request(Request::CreateFamily { family })
        .await
        .expect("family created");

    // Step 1: the invite, sent through relay one, reaches Bob on relay two live.
    let invite = InviteId::random();
    a.request(alice.invite_request(invite, family, bob.user()))
        .await
        .expect("invite sent");
    let received = b
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::InviteReceived(i)) => Some(i.invite),
            _ => None,
        })
        .await;
    assert_eq!(received, invite);

    // Step 2: Bob accepts on relay two; Alice hears it on relay one.
    b.request(bob.answer_request(invite, true))
        .await
        .expect("accepted");
    let joined = a
        .until(|f| match f {
            ServerFrame::Event(ServerEvent::MembershipChanged {
                change: MembershipChange::Joined { user },
                ..
            }) => Some(*user),
            _ => None,
        })
        .await;
    assert_eq!(joined, bob.user());
    (alice, a, bob, b, family)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_pushed_through_one_relay_reaches_a_device_on_another_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (alice, mut a, bob, mut b, family) = family_across(&one, &two).await;
    let doc = doran_protocol::DocId::from(family);
    let view = b.subscribe_view(doc, 0).await.expect("Bob reads");
    assert_eq!(view.head, 0);
    a.subscribe_view(doc, 0).await.expect("Alice reads");

    // Step 3: Alice's change, acked by relay one, arrives at Bob on relay two.
    let seq = a.push_ack(doc, b"a change".to_vec()).await.expect("acked");
    let (got, bytes, author) = b
        .until(|f| match f {
            ServerFrame::Chunk {
                doc: d,
                seq,
                bytes,
                author,
                ..
            } if *d == doc => Some((*seq, bytes.clone(), *author)),
            _ => None,
        })
        .await;
    assert_eq!((got, bytes.as_slice()), (seq, b"a change".as_slice()));
    assert_eq!(author, Some(alice.user()), "the author crosses relays");

    // Step 4: and back.
    let seq = b.push_ack(doc, b"an answer".to_vec()).await.expect("acked");
    let got = a
        .until(|f| match f {
            ServerFrame::Chunk {
                doc: d,
                seq,
                author,
                ..
            } if *d == doc => Some((*seq, *author)),
            _ => None,
        })
        .await;
    assert_eq!(got, (seq, Some(bob.user())));

    // Step 5: presence is the cluster's: each sees the other online.
    for (c, other) in [(&mut a, &bob), (&mut b, &alice)] {
        match c.request(Request::ListPresence { family }).await {
            Ok(Response::Presence(list)) => {
                let p = list
                    .iter()
                    .find(|p| p.user == other.user())
                    .expect("listed");
                assert!(p.online, "{list:?}");
            }
            other => panic!("expected Presence, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_through_two_relays_to_one_document_get_gapless_ordered_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (alice, mut a, bob, mut b, family) = family_across(&one, &two).await;
    let doc = doran_protocol::DocId::from(family);
    // Readers that push nothing, one on each relay.
    let mut readers = Vec::new();
    for (server, who) in [(&one, &alice), (&two, &bob)] {
        let mut r = Client::sign_in(server, who).await;
        r.subscribe_view(doc, 0).await.expect("reads");
        readers.push(r);
    }
    a.subscribe_view(doc, 0).await.expect("reads");
    b.subscribe_view(doc, 0).await.expect("reads");

    // Step 1: both relays append to the document at once, as fast as they ack.
    const EACH: usize = 60;
    let pushes = |mut c: Client, tag: &'static str| async move {
        let mut seqs = Vec::new();
        for i in 0..EACH {
            let bytes = format!("{tag} {i}").into_bytes();
            seqs.push(c.push_ack(doc, bytes).await.expect("acked"));
        }
        (c, seqs)
    };
    let ((_, from_a), (_, from_b)) = tokio::join!(pushes(a, "a"), pushes(b, "b"));

    // Step 2: the acks are the seqs 1..=120, each once.
    let all: HashSet<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(all, (1..=2 * EACH as u64).collect::<HashSet<_>>());
    assert!(from_a.windows(2).all(|w| w[0] < w[1]));
    assert!(from_b.windows(2).all(|w| w[0] < w[1]));

    // Step 3: each reader got every seq once, in order, with no gap.
    for r in &mut readers {
        let mut seen = Vec::new();
        while seen.len() < 2 * EACH {
            let seq = r
                .until(|f| match f {
                    ServerFrame::Chunk { doc: d, seq, .. } if *d == doc => Some(*seq),
                    _ => None,
                })
                .await;
            seen.push(seq);
        }
        assert_eq!(seen, (1..=2 * EACH as u64).collect::<Vec<_>>());
    }
}

/// A session key one relay gave proves requests at the other when the relays share
/// their secret; relays sharing a database without one give no keys (a key from one
/// would be refused by the others), and devices sign every request there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_key_from_one_relay_works_at_another_sharing_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let key = format!("cluster-{:016x}", rand::random::<u64>());
    let secret = ["--http-session-secret", CLUSTER_SECRET];
    let Some(one) = Server::start_shared(&dir.join("one"), &key, &secret) else {
        return;
    };
    let two = Server::start_shared(&dir.join("two"), &key, &secret).expect("the second relay");
    let mut mom = Identity::new("mom@example.com", "mom");
    Client::register(&one, &mut mom).await;
    let path = format!("/blobs/{}", doran_protocol::BlobHash::of(b"anything"));
    let r = signed_http(&one, &mom, "GET", &path, b"").await;
    let given = session_key(&r).expect("a key from the first relay");
    let r = maced_get(&two, mom.device, given, &path).await;
    assert_eq!(r.status, 404, "served at the second: {r:?}");

    let without = Server::start_shared(&dir.join("three"), &key, &[]).expect("a third relay");
    let r = signed_http(&without, &mom, "GET", &path, b"").await;
    assert_eq!((r.status, r.header("x-doran-session-key")), (404, None));
    let r = maced_get(&without, mom.device, given, &path).await;
    assert_eq!(r.error_code(), Some(ErrorCode::BadSignature));
}

/// A thumbnail in the shared bucket: each relay reads its bytes from the bucket once
/// and keeps them, but asks the bucket whether it is there every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_relay_reads_a_thumbnail_s_bytes_from_the_bucket_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (alice, _a, bob, _b, family) = family_across(&one, &two).await;
    let thumb: Vec<u8> = (0..12_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let get = upload(&one, &alice, family, &thumb).await;
    for (relay, who) in [(&one, &alice), (&two, &bob), (&one, &alice), (&two, &bob)] {
        let r = signed_http(relay, who, "GET", &get, b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, thumb.as_slice()));
    }
    for relay in [&one, &two] {
        assert_eq!(metric(relay, "doran_blob_cache_misses_total").await, 1);
        assert_eq!(metric(relay, "doran_blob_cache_hits_total").await, 1);
    }
}

/// A blob gone from the bucket (another relay's sweep, an operator's clean-up) is gone at
/// a relay that keeps it in memory too: whether a blob is there is the bucket's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_gone_from_the_bucket_is_gone_at_a_relay_that_kept_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let key = format!("cluster-{:016x}", rand::random::<u64>());
    let Some((one, two)) = two_relays_on(dir, &key) else {
        return;
    };
    let (alice, _a, bob, _b, family) = family_across(&one, &two).await;
    let thumb = vec![9u8; 8_000];
    let hash = doran_protocol::BlobHash::of(&thumb);
    let get = upload(&one, &alice, family, &thumb).await;
    for _ in 0..2 {
        let r = signed_http(&two, &bob, "GET", &get, b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, thumb.as_slice()));
    }
    assert_eq!(metric(&two, "doran_blob_cache_hits_total").await, 1, "kept");

    // The object is deleted from the bucket, past both relays.
    let blobs = shared_backend(&key)
        .windows(2)
        .find(|w| w[0] == "--blobs")
        .map(|w| w[1].clone())
        .expect("the bucket's URL");
    let runtime = tokio::runtime::Handle::current();
    let deleted = tokio::task::spawn_blocking(move || {
        let mut options = S3Options::from_url(&blobs)?;
        options.endpoint = std::env::var("DORAN_S3_ENDPOINT").ok();
        options.region = std::env::var("DORAN_S3_REGION").ok();
        S3BlobStore::open(&options, runtime)?.delete(hash)
    })
    .await
    .expect("the delete ran")
    .expect("deleted");
    assert!(deleted);

    assert_eq!(signed_http(&two, &bob, "GET", &get, b"").await.status, 404);
    assert_eq!(signed_http(&two, &bob, "HEAD", &get, b"").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_relay_closes_the_device_on_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let mut owner = Identity::new("owner@example.com", "owner");
    let mut o = Client::register(&one, &mut owner).await;
    let code = match o.request(Request::IssueLinkCode).await {
        Ok(Response::LinkCode { code, .. }) => code,
        other => panic!("expected a link code, got {other:?}"),
    };
    // The laptop links itself through relay two; the owner, on relay one, is asked
    // (the request crosses relays) and confirms.
    let laptop = owner.another_device();
    let mut l = link_and_confirm(&two, &mut o, &owner, &laptop, &code).await;

    // The owner, on relay one, revokes it: relay two says goodbye to it at once.
    o.request(Request::RevokeDevice {
        device: laptop.device,
    })
    .await
    .expect("revoked");
    assert_eq!(l.goodbye().await, ErrorCode::DeviceRevoked);

    // Signing in again anywhere is refused.
    for server in [&one, &two] {
        let mut again = Client::connect(server).await;
        let challenge = again.hello().await;
        again.send(&laptop.signin_frame(&challenge)).await;
        assert_eq!(again.error().await.code, ErrorCode::DeviceRevoked);
    }
    let devices: Vec<DeviceId> = o.devices().await.into_iter().map(|d| d.0).collect();
    assert!(devices.contains(&laptop.device));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_through_one_relay_loses_the_document_on_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (_alice, mut a, bob, mut b, family) = family_across(&one, &two).await;
    let doc = doran_protocol::DocId::from(family);
    b.subscribe_view(doc, 0).await.expect("Bob reads");

    a.request(Request::RemoveMember {
        family,
        user: bob.user(),
    })
    .await
    .expect("removed");
    // Relay two ends Bob's subscription, then refuses his pushes.
    let ended = b
        .until(|f| match f {
            ServerFrame::Error(e) if e.doc == Some(doc) => Some(e.code),
            _ => None,
        })
        .await;
    assert_eq!(ended, ErrorCode::Forbidden);
    b.send(&ClientFrame::push(doc, b"still here?".to_vec()))
        .await;
    let refused = b
        .until(|f| match f {
            ServerFrame::Error(e) if e.doc == Some(doc) => Some(e.code),
            ServerFrame::Ack { .. } => panic!("a removed member's push was acked"),
            _ => None,
        })
        .await;
    assert_eq!(refused, ErrorCode::Forbidden);
}

/// A family deleted through one relay ends its members' subscriptions to its volumes
/// on another (a deleted family's volumes are listed nowhere any more: the other relay
/// finds them by the family's id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_deleted_through_one_relay_ends_its_volumes_on_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((one, two)) = two_relays(dir.path()) else {
        return;
    };
    let (_alice, mut a, _bob, mut b, family) =
        family_across_as(&one, &two, FamilyId::new_family(true)).await;
    let volume = family.volume(2024);
    a.request(Request::OpenVolume { family, year: 2024 })
        .await
        .expect("opened");
    b.subscribe_view(volume, 0)
        .await
        .expect("Bob reads the volume");

    a.request(Request::DeleteFamily { family })
        .await
        .expect("deleted");
    let ended = b
        .until(|f| match f {
            ServerFrame::Error(e) if e.doc == Some(volume) => Some(e.code),
            _ => None,
        })
        .await;
    assert!(
        matches!(ended, ErrorCode::Forbidden | ErrorCode::NotFound),
        "{ended:?}"
    );
}

/// A TCP proxy in front of PostgreSQL that the test can cut (every connection
/// through it closed, new ones refused) and restore: a relay losing its database
/// without disturbing the other tests' relays on the same server.
struct DbLink {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl DbLink {
    async fn start(target: String) -> DbLink {
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, conns) = (Arc::clone(&cut), Arc::clone(&conns));
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(std::sync::atomic::Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().expect("lock").push(task);
                }
            }
        });
        DbLink {
            addr,
            cut,
            conns,
            accept,
        }
    }

    /// Closes every connection through the link and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.conns.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for DbLink {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `postgres://USER@HOST:PORT/DB` → (`HOST:PORT`, the URL with `addr` instead).
fn through(url: &str, addr: std::net::SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    (host.to_owned(), format!("{scheme}://{at}{addr}/{path}"))
}

/// The relay's `/healthz` status.
async fn health(server: &Server) -> u16 {
    http(server, "GET", "/healthz", &[], b"").await.status
}

/// Polls `/healthz` (every 50 ms, up to 20 s) until it answers `status`.
async fn until_health(server: &Server, status: u16) {
    for _ in 0..400 {
        if health(server).await == status {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("/healthz never answered {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_loses_its_database_stops_acking_and_recovers_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("dblost-{:016x}", rand::random::<u64>());
    let mut args = shared_backend(&key);
    if args.is_empty() {
        return;
    }
    // The relay reaches PostgreSQL only through the link.
    let i = args
        .iter()
        .position(|a| a == "--database")
        .expect("--database")
        + 1;
    let pg_url = args[i].clone();
    let link = DbLink::start(through(&pg_url, "127.0.0.1:1".parse().unwrap()).0).await;
    args[i] = through(&pg_url, link.addr).1;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_exactly(&dir.path().join("relay"), &args);
    until_health(&server, 200).await;

    let mut alice = Identity::new("alice@example.com", "alice");
    let mut a = Client::register(&server, &mut alice).await;
    let doc = alice.personal_doc;
    a.subscribe_view(doc, 0).await.expect("reads");
    let before = a.push_ack(doc, b"before".to_vec()).await.expect("acked");

    // Step 1: the database goes away. A push sent now is never acked: the relay
    // says goodbye (`unavailable`) and closes the session.
    link.cut();
    a.send(&ClientFrame::push(doc, b"during".to_vec())).await;
    loop {
        match a.next().await {
            Some(ServerFrame::Ack { .. }) => panic!("a push was acked without its database"),
            Some(ServerFrame::Goodbye { reason, .. }) => {
                assert_eq!(reason, ErrorCode::Unavailable);
            }
            Some(_) => {}
            None => break,
        }
    }

    // Step 2: while it is cut off, the relay says it cannot serve and refuses devices.
    assert_eq!(health(&server).await, 503);
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
        }
        other => panic!("expected a refused websocket, got {:?}", other.map(|_| ())),
    }

    // Step 3: the database is back; the relay recovers by itself, and what it acked
    // before is there.
    link.restore();
    until_health(&server, 200).await;
    let mut again = Client::sign_in(&server, &alice).await;
    let view = again.subscribe_view(doc, 0).await.expect("reads");
    assert!(view.head >= before, "{} < {before}", view.head);
    let after = again.push_ack(doc, b"after".to_vec()).await.expect("acked");
    assert_eq!(after, view.head + 1);
}
