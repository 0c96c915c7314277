//! Two devices sync through the real relay binary (`doran-server`): accounts, a
//! family, an invite, edits both ways, and a relay restart in the middle.

use std::{path::Path, sync::Arc, time::Duration};

use automerge::transaction::Transactable;

use doran_device::{
    account::{Account, Enrolment, StoreSecrets, create_account},
    core::{
        Actor, PersonalDoc,
        model::Mood,
        store::{LocalStore, OutboxEntry, SqliteStore},
        sync::{
            DocChange, DocCursor, DocKind, HostResult, IncomingChunk, SignInAs, SignedIn,
            SnapshotCheck, StoreHost, SyncConfig, SyncHost,
        },
    },
    driver::{SyncDriver, enroll},
    relay::{Relay as RelayAddress, Trust},
    sync_error::SyncError,
};
use doran_e2e::Relay;
use doran_protocol::{
    BlobHash, ChunkId, DeviceId, DocId, FamilyId, InviteId, Request, Response, Seq, UserId,
};

const TIMEOUT: Duration = Duration::from_secs(30);

fn start_relay(data: &Path, listen: &str) -> Relay {
    Relay::start_with(data, listen, &["--server-id", "test-relay"])
}

fn relay_address(server: &str) -> RelayAddress {
    RelayAddress::new(server, &Trust::default()).expect("a relay address")
}

/// One device: its home folder, store, account, host and driver.
struct Device {
    _home: tempfile::TempDir,
    account: Account,
    host: Arc<StoreHost>,
    driver: Arc<SyncDriver>,
}

impl Device {
    async fn create(server: &str, email: &str, nickname: &str) -> Device {
        Device::create_with(server, email, nickname, SyncConfig::default()).await
    }

    /// A device of a new account as builds before sealed personal documents made it
    /// (its personal document's id carries no sealed mark), with a host that keeps no
    /// keys: these tests run in the clear — clear families, co-members reading and
    /// confirming each other's personal documents. (The relay takes clear chunks of
    /// such a personal document only; a marked one takes envelopes.)
    async fn create_with(server: &str, email: &str, nickname: &str, config: SyncConfig) -> Device {
        let home = tempfile::tempdir().expect("a home");
        let store: Arc<dyn LocalStore> =
            Arc::new(SqliteStore::open(home.path().join("store.db")).expect("store"));
        let secrets = StoreSecrets(Arc::clone(&store));
        let user_key = doran_device::core::keys::random_key().expect("a user key");
        let keys = doran_device::core::keys::DeviceKeys::for_new_device(Some(user_key))
            .expect("device keys");
        let sign_in = SignInAs::Register {
            email: email.to_owned(),
            nickname: nickname.to_owned(),
            personal_doc: DocId::random(),
        };
        let relay_at = relay_address(server);
        let at = Enrolment {
            relay: &relay_at,
            client: "sync_relay test",
            timeout: TIMEOUT,
        };
        let (info, _) = enroll(at, keys.clone(), sign_in)
            .await
            .expect("account created");
        let account = Account {
            user: info.user,
            device: keys.device,
            email: email.to_owned(),
            nickname: nickname.to_owned(),
            server: server.to_owned(),
            personal_doc: info.personal_doc,
            device_key: keys.device_key,
            user_key: keys.user_key,
        };
        account.save(&*store, &secrets).expect("account kept");
        let (_, first) = PersonalDoc::create(&account.actor(), nickname, Some(email), 1, now())
            .expect("a personal document");
        store
            .commit_local(account.personal_doc, &first)
            .expect("kept");
        let host = Arc::new(StoreHost::new(store, account.actor()));
        let driver = Arc::new(Device::driver(&host, &account, server, config));
        Device {
            _home: home,
            account,
            host,
            driver,
        }
    }

    /// A member's device whose snapshots of a family hold a change written as
    /// `as_user` (a modified client); everything else it does honestly.
    async fn create_forging(
        server: &str,
        email: &str,
        nickname: &str,
        (config, as_user): (SyncConfig, UserId),
    ) -> Device {
        let mut d = Device::create_with(server, email, nickname, config.clone()).await;
        let forging: Arc<dyn SyncHost> = Arc::new(ForgingSnapshots {
            host: d.host.clone(),
            as_user,
        });
        d.driver = Arc::new(SyncDriver::new(
            forging,
            relay_address(server),
            d.account.keys(),
            SignInAs::Known {
                user: d.account.user,
            },
            config,
        ));
        d
    }

    /// A member's device whose snapshots hold only the first half of the document's
    /// changes (a modified client); everything else it does honestly.
    async fn create_partial(
        server: &str,
        email: &str,
        nickname: &str,
        config: SyncConfig,
    ) -> Device {
        let mut d = Device::create_with(server, email, nickname, config.clone()).await;
        let partial: Arc<dyn SyncHost> = Arc::new(PartialSnapshots(d.host.clone()));
        d.driver = Arc::new(SyncDriver::new(
            partial,
            relay_address(server),
            d.account.keys(),
            SignInAs::Known {
                user: d.account.user,
            },
            config,
        ));
        d
    }

    fn driver(
        host: &Arc<StoreHost>,
        account: &Account,
        server: &str,
        config: SyncConfig,
    ) -> SyncDriver {
        SyncDriver::new(
            host.clone(),
            relay_address(server),
            account.keys(),
            SignInAs::Known { user: account.user },
            config,
        )
    }

    async fn sync(&self) {
        let pending = self
            .driver
            .run_until_up_to_date(TIMEOUT)
            .await
            .expect("synced");
        assert_eq!(pending, 0, "everything was pushed");
    }

    /// Runs `f` with the driver connected (for requests).
    async fn online<T>(&self, f: impl AsyncFnOnce(&SyncDriver) -> T) -> T {
        let driver = self.driver.clone();
        let run = tokio::spawn(async move { driver.run().await });
        let out = f(&self.driver).await;
        run.abort();
        let _ = run.await;
        out
    }

    fn heads(&self, family: FamilyId) -> Vec<automerge::ChangeHash> {
        self.host
            .read_family(family, |fd| fd.replica_mut().heads())
            .expect("the family is here")
    }
}

/// A host whose snapshots leave out the later half of the document's changes.
struct PartialSnapshots(Arc<StoreHost>);

impl SyncHost for PartialSnapshots {
    fn doc_cursors(&self) -> HostResult<Vec<DocCursor>> {
        self.0.doc_cursors()
    }
    fn outbox(&self, after: Option<u64>, limit: usize) -> HostResult<Vec<OutboxEntry>> {
        self.0.outbox(after, limit)
    }
    fn pending_count(&self) -> HostResult<u64> {
        self.0.pending_count()
    }
    fn apply(
        &self,
        doc: DocId,
        kind: DocKind,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
        cursor: Seq,
    ) -> HostResult<DocChange> {
        self.0.apply(doc, kind, snapshot, chunks, cursor)
    }
    fn acked(&self, doc: DocId, chunk: ChunkId) -> HostResult<()> {
        self.0.acked(doc, chunk)
    }
    fn acked_at(&self, doc: DocId, chunk: ChunkId, seq: Seq) -> HostResult<()> {
        self.0.acked_at(doc, chunk, seq)
    }
    fn save(&self, doc: DocId, kind: DocKind) -> HostResult<Option<Vec<u8>>> {
        let Some(full) = self.0.save(doc, kind)? else {
            return Ok(None);
        };
        let whole = automerge::Automerge::load(&full).expect("its own save loads");
        let changes: Vec<automerge::Change> = whole.get_changes(&[]);
        // Changes come in causal order: a prefix is a document of its own.
        let mut partial = automerge::Automerge::new();
        partial
            .apply_changes(changes[..changes.len() / 2].iter().cloned())
            .expect("a prefix applies");
        Ok(Some(partial.save()))
    }
    fn snapshot_accepted(&self, doc: DocId, covers_seq: Seq) -> HostResult<()> {
        self.0.snapshot_accepted(doc, covers_seq)
    }
    fn reset_cursor(&self, doc: DocId) -> HostResult<()> {
        self.0.reset_cursor(doc)
    }
    fn signed_in(
        &self,
        info: &SignedIn,
        now_ms: i64,
    ) -> HostResult<Vec<(FamilyId, doran_device::core::store::Membership)>> {
        self.0.signed_in(info, now_ms)
    }
    fn check_snapshot(
        &self,
        doc: DocId,
        kind: DocKind,
        offer: (Seq, UserId),
        snapshot: &[u8],
    ) -> HostResult<SnapshotCheck> {
        self.0.check_snapshot(doc, kind, offer, snapshot)
    }
}

/// A host whose snapshots hold one more change: written as another user (`as_user`,
/// on a device of its own), renaming the family — a change no other device has, since
/// pushed as a chunk it would be refused as written by someone else.
struct ForgingSnapshots {
    host: Arc<StoreHost>,
    as_user: UserId,
}

impl SyncHost for ForgingSnapshots {
    fn doc_cursors(&self) -> HostResult<Vec<DocCursor>> {
        self.host.doc_cursors()
    }
    fn outbox(&self, after: Option<u64>, limit: usize) -> HostResult<Vec<OutboxEntry>> {
        self.host.outbox(after, limit)
    }
    fn pending_count(&self) -> HostResult<u64> {
        self.host.pending_count()
    }
    fn apply(
        &self,
        doc: DocId,
        kind: DocKind,
        snapshot: Option<&[u8]>,
        chunks: &[IncomingChunk],
        cursor: Seq,
    ) -> HostResult<DocChange> {
        self.host.apply(doc, kind, snapshot, chunks, cursor)
    }
    fn acked(&self, doc: DocId, chunk: ChunkId) -> HostResult<()> {
        self.host.acked(doc, chunk)
    }
    fn acked_at(&self, doc: DocId, chunk: ChunkId, seq: Seq) -> HostResult<()> {
        self.host.acked_at(doc, chunk, seq)
    }
    fn save(&self, doc: DocId, kind: DocKind) -> HostResult<Option<Vec<u8>>> {
        let Some(full) = self.host.save(doc, kind)? else {
            return Ok(None);
        };
        let mut forged = automerge::AutoCommit::load(&full)
            .expect("its own save loads")
            .with_actor(
                Actor {
                    user: self.as_user,
                    device: DeviceId::random(),
                }
                .actor_id(),
            );
        if matches!(kind, DocKind::Family(_)) {
            forged
                .put(automerge::ROOT, "name", "아들 가족")
                .expect("a raw write");
            forged.commit();
        }
        Ok(Some(forged.save()))
    }
    fn snapshot_accepted(&self, doc: DocId, covers_seq: Seq) -> HostResult<()> {
        self.host.snapshot_accepted(doc, covers_seq)
    }
    fn reset_cursor(&self, doc: DocId) -> HostResult<()> {
        self.host.reset_cursor(doc)
    }
    fn signed_in(
        &self,
        info: &SignedIn,
        now_ms: i64,
    ) -> HostResult<Vec<(FamilyId, doran_device::core::store::Membership)>> {
        self.host.signed_in(info, now_ms)
    }
}

/// `(covers_seq, blob, pushed by)` of the relay's pending snapshot of `doc`.
fn relay_pending(data: &Path, doc: DocId) -> Option<(i64, BlobHash, UserId)> {
    relay_db(data)
        .query_row(
            "SELECT covers_seq, blob, by_user FROM pending_snapshots WHERE doc = ?1",
            [doc.0],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    BlobHash(r.get::<_, [u8; 32]>(1)?),
                    UserId(r.get::<_, [u8; 16]>(2)?),
                ))
            },
        )
        .ok()
}

/// Invites `to` into `family` from `host` and has it accept.
async fn invite_into(host: &Device, to: &Device, family: FamilyId, name: &str) {
    let email = to.account.email.clone();
    let invite = host
        .online(async |d| {
            let found = d
                .request(Request::LookupUser { email })
                .await
                .expect("lookup");
            let Response::UserFound(Some(entry)) = found else {
                panic!("in the directory: {found:?}");
            };
            match d
                .send_invite(
                    InviteId::random(),
                    family,
                    entry.user,
                    name.as_bytes().to_vec(),
                )
                .await
            {
                Ok(Response::InviteSent(info)) => info.invite,
                other => panic!("invite sent: {other:?}"),
            }
        })
        .await;
    to.online(async |d| {
        d.answer_invite(invite, true).await.expect("accepted");
    })
    .await;
}

/// A family "우리집" that `a` hosts as 엄마: made on the relay, its document written
/// and pushed.
async fn host_family(a: &Device) -> FamilyId {
    let family = FamilyId::random();
    a.online(async |d| {
        d.request(Request::CreateFamily { family })
            .await
            .expect("family created");
    })
    .await;
    a.host
        .create_family(family, "우리집", "엄마", now())
        .expect("family document");
    a.sync().await;
    family
}

/// `to` joins the family `host` invites it to, as `name`; both up to date.
async fn join(host: &Device, to: &Device, family: FamilyId, name: &str) {
    invite_into(host, to, family, name).await;
    host.host
        .edit_family(family, |fd| fd.add_member(to.account.user, name, now()))
        .expect("member added");
    host.sync().await;
    to.sync().await;
}

/// `d` adds `n` missions ("미션 0", …), one change each, and syncs.
async fn add_missions(d: &Device, family: FamilyId, n: usize) {
    for i in 0..n {
        d.host
            .edit_family(family, |fd| {
                fd.add_mission(&format!("미션 {i}"), &[], None, now())
            })
            .expect("mission added");
    }
    d.sync().await;
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_through_the_relay_and_a_restart() {
    let data = tempfile::tempdir().expect("relay data");
    let relay = start_relay(data.path(), "127.0.0.1:0");
    let server = relay.url();

    // Step 1: two accounts on two device homes.
    let a = Device::create(&server, "mom@example.com", "엄마").await;
    let b = Device::create(&server, "son@example.com", "아들").await;

    // Step 2: A creates a family and invites B.
    let family = FamilyId::random();
    let b_email = b.account.email.clone();
    let b_user = b.account.user;
    let invite = a
        .online(async |d| {
            let created = d
                .request(Request::CreateFamily { family })
                .await
                .expect("family created");
            assert!(matches!(created, Response::FamilyCreated(_)));
            let found = d
                .request(Request::LookupUser { email: b_email })
                .await
                .expect("lookup");
            let Response::UserFound(Some(entry)) = found else {
                panic!("B is in the directory: {found:?}");
            };
            assert_eq!(entry.user, b_user);
            match d
                .send_invite(InviteId::random(), family, b_user, b"opaque card".to_vec())
                .await
            {
                Ok(Response::InviteSent(info)) => info.invite,
                other => panic!("invite sent: {other:?}"),
            }
        })
        .await;
    a.host
        .create_family(family, "우리집", "엄마", now())
        .expect("family document");
    a.sync().await;

    // Step 3: B accepts, syncs the family document and adds itself as a member.
    b.online(async |d| {
        let answered = d.answer_invite(invite, true).await.expect("accepted");
        assert!(matches!(
            answered,
            Response::InviteAnswered {
                family: Some(_),
                ..
            }
        ));
    })
    .await;
    b.sync().await;
    assert_eq!(
        b.host
            .read_family(family, |fd| fd.view().name.clone())
            .expect("B has the family"),
        "우리집"
    );
    b.host
        .edit_family(family, |fd| fd.add_member(b_user, "아들", now()))
        .expect("B joins the document");
    b.sync().await;

    // Step 4: A sees B, adds a mission for everyone; B gets it.
    a.sync().await;
    let mission = a
        .host
        .edit_family(family, |fd| fd.add_mission("물 마시기", &[], None, now()))
        .expect("mission added");
    a.sync().await;
    b.sync().await;
    let b_has = b
        .host
        .read_family(family, |fd| fd.view().missions.contains_key(&mission))
        .expect("read");
    assert!(b_has, "B's document has A's mission");

    // Step 5: B ticks it while offline (a commit, no sync), then syncs; A sees it.
    b.host
        .edit_family(family, |fd| fd.set_mission_done(&mission, true, now()))
        .expect("ticked");
    b.sync().await;
    a.sync().await;
    let ticked = a
        .host
        .read_family(family, |fd| {
            fd.view().missions[&mission]
                .completions
                .contains_key(&b_user.to_hex())
        })
        .expect("read");
    assert!(ticked, "A sees B's tick");
    assert_eq!(a.heads(family), b.heads(family), "same heads on both");

    // Step 6: the relay dies; A edits meanwhile and cannot sync.
    let listen = relay.addr().to_string();
    drop(relay);
    let second = a
        .host
        .edit_family(family, |fd| fd.add_mission("산책", &[], None, now()))
        .expect("edited offline");
    let offline = a.driver.run_until_up_to_date(Duration::from_secs(2)).await;
    assert!(
        matches!(offline, Err(SyncError::Timeout)),
        "no relay: {offline:?}"
    );

    // Step 7: the relay comes back on the same data and address; both converge.
    let relay = start_relay(data.path(), &listen);
    assert_eq!(relay.url(), server);
    a.sync().await;
    b.sync().await;
    let b_has = b
        .host
        .read_family(family, |fd| fd.view().missions.contains_key(&second))
        .expect("read");
    assert!(b_has, "the edit made while the relay was down arrived");
    assert_eq!(
        a.heads(family),
        b.heads(family),
        "same heads after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_email_is_a_refusal_the_app_can_show() {
    let data = tempfile::tempdir().expect("relay data");
    let relay = start_relay(data.path(), "127.0.0.1:0");
    let server = relay.url();
    let _first = Device::create(&server, "mom@example.com", "엄마").await;

    // The same email (any case) again, from another device home.
    let home = tempfile::tempdir().expect("a home");
    let store: Arc<dyn LocalStore> =
        Arc::new(SqliteStore::open(home.path().join("store.db")).expect("store"));
    let secrets = StoreSecrets(Arc::clone(&store));
    let relay_at = relay_address(&server);
    let refused = create_account(
        &store,
        &secrets,
        Enrolment {
            relay: &relay_at,
            client: "sync_relay test",
            timeout: TIMEOUT,
        },
        "Mom@Example.com",
        "엄마곰",
    )
    .await;
    match refused {
        Err(SyncError::EmailTaken { email }) => assert_eq!(email, "mom@example.com"),
        other => panic!("expected EmailTaken, got {other:?}"),
    }
    // Nothing was kept on the device: no account, no personal document.
    assert!(
        Account::load(&*store, &secrets)
            .expect("readable")
            .is_none()
    );
    assert!(store.documents().expect("readable").is_empty());
    // Another email works from the same home.
    create_account(
        &store,
        &secrets,
        Enrolment {
            relay: &relay_at,
            client: "sync_relay test",
            timeout: TIMEOUT,
        },
        "aunt@example.com",
        "이모",
    )
    .await
    .expect("another email registers");
}

/// The relay's SQLite file, opened beside the running relay (WAL: it sees every
/// committed write).
fn relay_db(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("relay.sqlite")).expect("the relay's database")
}

/// `(covers_seq, blob)` of the relay's snapshot of `doc`, and how many chunks it keeps.
fn relay_log(data: &Path, doc: DocId) -> (Option<(i64, BlobHash)>, i64) {
    let db = relay_db(data);
    let snapshot = db
        .query_row(
            "SELECT covers_seq, blob FROM snapshots WHERE doc = ?1",
            [doc.0],
            |r| Ok((r.get::<_, i64>(0)?, BlobHash(r.get::<_, [u8; 32]>(1)?))),
        )
        .ok();
    let chunks = db
        .query_row("SELECT count(*) FROM chunks WHERE doc = ?1", [doc.0], |r| {
            r.get(0)
        })
        .expect("count chunks");
    (snapshot, chunks)
}

/// The heads of a personal document as `device` has it in its store.
fn personal_heads(device: &Device, doc: DocId) -> Vec<automerge::ChangeHash> {
    let stored = device
        .host
        .store()
        .load(doc)
        .expect("readable")
        .expect("the document is here");
    let mut pd = PersonalDoc::load(
        stored.snapshot.as_deref(),
        stored.changes.iter().map(Vec::as_slice),
        &device.account.actor(),
    )
    .expect("loads");
    pd.replica_mut().heads()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_gets_snapshot_and_tail_after_compaction() {
    let data = tempfile::tempdir().expect("relay data");
    let relay = start_relay(data.path(), "127.0.0.1:0");
    let server = relay.url();
    let config = SyncConfig {
        compact_after: 10,
        ..SyncConfig::default()
    };

    // Step 1: A makes a family (family doc seq 1; her personal doc has seq 1 too).
    let a = Device::create_with(&server, "mom@example.com", "엄마", config.clone()).await;
    let family = host_family(&a).await;
    let fdoc = DocId::from(family);
    let pdoc = a.account.personal_doc;
    assert_eq!(relay_log(data.path(), fdoc), (None, 1));

    // Step 2: twelve edits to each document (seqs 2..=13) in one sync. The push that
    // takes the log past 10 chunks makes A's device compact, covering seq 11; the
    // sync ends only once the relay has accepted both snapshots — as pending: no
    // other member's device has confirmed them, so the relay keeps every chunk.
    for i in 0..12 {
        a.host
            .edit_family(family, |fd| {
                fd.add_mission(&format!("미션 {i}"), &[], None, now())
            })
            .expect("mission added");
        let mood = Mood::ALL[i % Mood::ALL.len()];
        a.host
            .edit_personal(pdoc, |pd| pd.set_mood(mood, now()))
            .expect("mood set");
    }
    a.sync().await;
    let mut pending = Vec::new();
    for doc in [fdoc, pdoc] {
        assert_eq!(
            relay_log(data.path(), doc),
            (None, 13),
            "{doc}: nothing dropped"
        );
        let (covers, blob, by) = relay_pending(data.path(), doc).expect("pending");
        assert_eq!((covers, by), (11, a.account.user), "{doc}");
        pending.push(blob);
    }

    // Step 3: three more edits each: the tail after the snapshot (seqs 14..=16), not
    // enough for another snapshot.
    for i in 0..3 {
        a.host
            .edit_family(family, |fd| {
                fd.add_mission(&format!("나중 {i}"), &[], None, now())
            })
            .expect("mission added");
        a.host
            .edit_personal(pdoc, |pd| pd.set_mood(Mood::Love, now()))
            .expect("mood set");
    }
    a.sync().await;
    assert_eq!(relay_log(data.path(), fdoc), (None, 16));

    // Step 4: B, another member's new device, joins the family and syncs: it gets
    // every chunk, is offered A's pending snapshots, finds in each every change it
    // got up to seq 11, and confirms them (its sync ends once the relay answered).
    // Only then does the relay drop the chunks they cover.
    let b = Device::create(&server, "son@example.com", "아들").await;
    invite_into(&a, &b, family, "아들").await;
    b.sync().await;
    let (family_snapshot, chunks) = relay_log(data.path(), fdoc);
    let (covers, family_blob) = family_snapshot.expect("confirmed");
    assert_eq!(
        (covers, family_blob, chunks),
        (11, pending[0], 5),
        "chunks 12..=16"
    );
    let (personal_snapshot, chunks) = relay_log(data.path(), pdoc);
    let (covers, personal_blob) = personal_snapshot.expect("confirmed");
    assert_eq!((covers, personal_blob, chunks), (11, pending[1], 5));
    assert_eq!(relay_pending(data.path(), fdoc), None);

    // Step 5: C, a new device of a third member, receives each document as snapshot
    // + tail: its log holds the snapshot blob (downloaded and verified against its
    // hash) and the five later chunks, never the chunks the snapshot replaced.
    let c = Device::create(&server, "daughter@example.com", "큰딸").await;
    invite_into(&a, &c, family, "딸").await;
    c.sync().await;
    for (doc, blob) in [(fdoc, family_blob), (pdoc, personal_blob)] {
        let stored = c
            .host
            .store()
            .load(doc)
            .expect("readable")
            .expect("B has the document");
        assert_eq!(stored.changes.len(), 6, "{doc}: snapshot + 5 chunks");
        assert_eq!(
            BlobHash::of(&stored.changes[0]),
            blob,
            "{doc}: the snapshot"
        );
        assert_eq!(stored.cursor, 16, "{doc}");
    }

    // And ends with the same documents as A: same heads, same state.
    assert_eq!(a.heads(family), c.heads(family));
    assert_eq!(a.heads(family), b.heads(family));
    let view = |d: &Device| {
        d.host
            .read_family(family, |fd| fd.view().clone())
            .expect("read")
    };
    assert_eq!(view(&a), view(&b));
    assert_eq!(view(&a), view(&c));
    assert_eq!(view(&c).missions.len(), 15);
    assert_eq!(personal_heads(&a, pdoc), personal_heads(&c, pdoc));
    let a_profile = a.host.profile(a.account.user).expect("read");
    let b_copy = c.host.profile(a.account.user).expect("read");
    assert!(b_copy.is_some(), "C has A's profile");
    assert_eq!(b_copy, a_profile);
    assert_eq!(
        b_copy.and_then(|p| p.mood),
        Some(Mood::Love),
        "A's latest mood"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_partial_snapshot_is_never_confirmed() {
    let data = tempfile::tempdir().expect("relay data");
    let relay = start_relay(data.path(), "127.0.0.1:0");
    let server = relay.url();
    let config = SyncConfig {
        compact_after: 10,
        ..SyncConfig::default()
    };

    // Step 1: A hosts a family; H, a member whose modified client makes snapshots
    // holding only half of the document, joins.
    let a = Device::create_with(&server, "mom@example.com", "엄마", config.clone()).await;
    let h = Device::create_partial(&server, "son@example.com", "아들", config.clone()).await;
    let family = host_family(&a).await;
    join(&a, &h, family, "아들").await;
    let fdoc = DocId::from(family);

    // Step 2: H adds twelve missions (seqs 3..=14); its device compacts and pushes its partial
    // snapshot. The relay holds it as pending and drops nothing.
    add_missions(&h, family, 12).await;
    let (_, partial_blob, by) = relay_pending(data.path(), fdoc).expect("pending");
    assert_eq!(by, h.account.user);
    assert_eq!(relay_log(data.path(), fdoc), (None, 14));

    // Step 3: A's device is offered it, finds changes missing and never confirms
    // it; having caught up past 10 chunks, it pushes its own, honest snapshot,
    // which replaces H's as the pending one.
    a.sync().await;
    assert_eq!(relay_log(data.path(), fdoc), (None, 14), "nothing dropped");
    let (covers, honest_blob, by) = relay_pending(data.path(), fdoc).expect("pending");
    assert_eq!(by, a.account.user);
    assert_ne!(honest_blob, partial_blob);

    // Step 4: C, a third member's new device, gets the whole family, then checks
    // A's snapshot against it and confirms it: now the relay drops what it covers.
    let c = Device::create(&server, "daughter@example.com", "큰딸").await;
    invite_into(&a, &c, family, "딸").await;
    c.sync().await;
    let view = |d: &Device| {
        d.host
            .read_family(family, |fd| fd.view().clone())
            .expect("read")
    };
    assert_eq!(view(&c).missions.len(), 12);
    assert_eq!(view(&a), view(&c));
    assert_eq!(a.heads(family), c.heads(family));
    let (snapshot, chunks) = relay_log(data.path(), fdoc);
    assert_eq!(
        snapshot,
        Some((covers, honest_blob)),
        "A's snapshot, confirmed"
    );
    assert_eq!(chunks, 14 - covers);
    assert_eq!(relay_pending(data.path(), fdoc), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_holding_a_change_written_as_the_host_is_never_confirmed() {
    let data = tempfile::tempdir().expect("relay data");
    let relay = start_relay(data.path(), "127.0.0.1:0");
    let server = relay.url();
    let config = SyncConfig {
        compact_after: 10,
        ..SyncConfig::default()
    };

    // Step 1: A hosts a family (her device does not compact it); H, a member whose
    // modified client slips into its snapshots a rename of the family written as A,
    // joins.
    let a = Device::create(&server, "mom@example.com", "엄마").await;
    let family = host_family(&a).await;
    let h = Device::create_forging(
        &server,
        "son@example.com",
        "아들",
        (config.clone(), a.account.user),
    )
    .await;
    join(&a, &h, family, "아들").await;
    let fdoc = DocId::from(family);

    // Step 2: H adds twelve missions; its device compacts and pushes the snapshot
    // with the forged rename in it. The relay holds it as pending.
    add_missions(&h, family, 12).await;
    let (_, forged_blob, by) = relay_pending(data.path(), fdoc).expect("pending");
    assert_eq!(by, h.account.user);

    // Step 3: A's device is offered it: it holds every change A has, but also one A
    // does not have, written as A, not by H. A reports it and never confirms it.
    a.sync().await;
    let (confirmed, chunks) = relay_log(data.path(), fdoc);
    assert_eq!(confirmed, None, "nothing confirmed");
    assert_eq!(chunks, 14, "nothing dropped");
    let (_, pending, _) = relay_pending(data.path(), fdoc).expect("still pending");
    assert_eq!(pending, forged_blob);

    // Step 4: a third member's new device does not confirm it either, and gets the
    // family as the others have it, without the rename.
    let c = Device::create(&server, "daughter@example.com", "큰딸").await;
    invite_into(&a, &c, family, "딸").await;
    c.sync().await;
    let name = |d: &Device| {
        d.host
            .read_family(family, |fd| fd.view().name.clone())
            .expect("read")
    };
    assert_eq!(name(&a), "우리집");
    assert_eq!(name(&c), "우리집");
    assert_eq!(relay_log(data.path(), fdoc), (None, 14), "never confirmed");
}
