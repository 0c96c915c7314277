//! Two devices sync through the real relay binary (`doran-server`): accounts, a
//! family, an invite, edits both ways, and a relay restart in the middle.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use doran_client_core::{
    account::Account,
    store::{LocalStore, SqliteStore},
    sync::{SignInAs, StoreHost, SyncConfig, SyncDriver, SyncError, create_account},
};
use doran_protocol::{FamilyId, Request, Response};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The relay binary next to this test binary (built by `cargo test --workspace`), or
/// built now.
fn relay_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let name = format!("doran-server{}", std::env::consts::EXE_SUFFIX);
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return candidate;
        }
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "doran-server", "--bin", "doran-server"])
        .status()
        .expect("run cargo build for the relay");
    assert!(status.success(), "building doran-server failed");
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .expect("doran-server was built next to the test binary")
}

/// A running relay process, killed on drop.
struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Relay {
    fn start(data_dir: &Path, listen: &str) -> Relay {
        let mut child = Command::new(relay_binary())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen, "--server-id", "test-relay"])
            .env("DORAN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start doran-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        Relay { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        let home = tempfile::tempdir().expect("a home");
        let store: Arc<dyn LocalStore> =
            Arc::new(SqliteStore::open(home.path().join("store.db")).expect("store"));
        let account = create_account(&store, server, email, nickname, TIMEOUT)
            .await
            .expect("account created");
        let host = Arc::new(StoreHost::new(store, account.actor()));
        let driver = Arc::new(Device::driver(&host, &account, server));
        Device {
            _home: home,
            account,
            host,
            driver,
        }
    }

    fn driver(host: &Arc<StoreHost>, account: &Account, server: &str) -> SyncDriver {
        SyncDriver::new(
            host.clone(),
            server,
            account.keys(),
            SignInAs::Known { user: account.user },
            SyncConfig::default(),
        )
        .expect("a driver")
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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_through_the_relay_and_a_restart() {
    let data = tempfile::tempdir().expect("relay data");
    let relay = Relay::start(data.path(), "127.0.0.1:0");
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
                .request(Request::CreateFamily {
                    family,
                    title: "우리집".into(),
                    my_name: "엄마".into(),
                })
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
            match d.send_invite(family, b_user, "아들").await {
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
    let listen = relay.addr.to_string();
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
    let relay = Relay::start(data.path(), &listen);
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
