//! Slow uploads against the real relay, over real sockets (issue 12, item 4): one
//! account's trickling uploads — or many free accounts' from one address — cannot
//! take every upload slot, and are cut off once they fall below the minimum rate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use doran_protocol::{BlobHash, ErrorCode, FamilyId};
use support::{
    Client, HttpResponse, Identity, Server, parse_response, signed_headers, signed_http,
    until_metric,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

/// Four upload slots on the relay, two per account; an upload gets one second, then
/// must keep up 1 KiB/s.
const CONFIG: &str = r#"{"limits":{
    "max_concurrent_uploads": 4,
    "max_uploads_per_account": 2,
    "upload_grace_secs": 1,
    "upload_min_bytes_per_second": 1024
}}"#;

/// Bytes a trickling upload announces (it sends far fewer).
const DECLARED: usize = 100_000;

/// Starts an upload that sends its headers, then one byte every 300 ms, and returns
/// the relay's answer once it comes.
async fn trickle(
    server: &Server,
    id: &Identity,
    family: FamilyId,
    n: u8,
) -> JoinHandle<HttpResponse> {
    trickle_from(server, id, family, n, None).await
}

/// The head of a signed upload of `len` bytes to `family`, as if from the client
/// address `from` (an `X-Forwarded-For` a relay trusting the loopback proxy reads).
fn upload_head(
    id: &Identity,
    family: FamilyId,
    hash: BlobHash,
    len: usize,
    from: Option<&str>,
) -> String {
    let path = format!("/blobs/{hash}?family={family}");
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nhost: relay\r\nconnection: close\r\ncontent-length: {len}\r\n"
    );
    for (name, value) in signed_headers(id, "PUT", &path) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(from) = from {
        head.push_str(&format!("x-forwarded-for: {from}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// [`trickle`] from the client address `from`.
async fn trickle_from(
    server: &Server,
    id: &Identity,
    family: FamilyId,
    n: u8,
    from: Option<&str>,
) -> JoinHandle<HttpResponse> {
    // The attacker's pace: a byte every 300 ms (2 bytes/s) until the relay answers.
    drip(server, id, family, n, from, (1, Duration::from_millis(300))).await
}

/// An upload from `from` that sends its headers, then `piece` bytes every `every`
/// until the relay answers, and returns that answer.
async fn drip(
    server: &Server,
    id: &Identity,
    family: FamilyId,
    n: u8,
    from: Option<&str>,
    (piece, every): (usize, Duration),
) -> JoinHandle<HttpResponse> {
    let hash = BlobHash::of(&[n; DECLARED]);
    let head = upload_head(id, family, hash, DECLARED, from);
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    tokio::spawn(async move {
        let (mut read, mut write) = stream.into_split();
        write.write_all(head.as_bytes()).await.expect("headers");
        let dribble = tokio::spawn(async move {
            for _ in 0..DECLARED / piece {
                if write.write_all(&vec![n; piece]).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        });
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut raw)).await;
        dribble.abort();
        parse_response(&raw)
    })
}

async fn member_with_family(server: &Server, name: &str) -> (Identity, FamilyId) {
    let mut id = Identity::new(&format!("{name}@example.com"), name);
    let mut c = Client::register(server, &mut id).await;
    let family = c.create_family().await;
    (id, family)
}

/// Answers of uploads started together, as they come.
type Answers = tokio::sync::mpsc::UnboundedReceiver<HttpResponse>;

/// Starts `uploads` (each a trickle's handle) and returns their answers as they come.
fn answers_of(uploads: Vec<JoinHandle<HttpResponse>>) -> Answers {
    let (tx, answers) = tokio::sync::mpsc::unbounded_channel();
    for upload in uploads {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(upload.await.expect("an upload task"));
        });
    }
    answers
}

/// The next `n` answers are all `status` with `code`.
async fn next_answers(answers: &mut Answers, n: usize, status: u16, code_: ErrorCode) {
    for _ in 0..n {
        let r = answers.recv().await.expect("an answer");
        assert_eq!((r.status, r.error_code()), (status, Some(code_)), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_uploads_of_one_account_lock_no_one_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A grace of 3 s: the honest upload of step 2 happens while the attacker's
    // uploads still hold their slots.
    let config = CONFIG.replace(r#""upload_grace_secs": 1"#, r#""upload_grace_secs": 3"#);
    let server = Server::start_with_config(dir.path(), &config, &[]);
    let (attacker, their_family) = member_with_family(&server, "attacker").await;
    let (honest, family) = member_with_family(&server, "honest").await;

    // Step 1: the attacker starts four trickling uploads at once: only two get a slot,
    // the other two are refused at once (too many uploads for one account).
    let mut uploads = Vec::new();
    for n in 0..4 {
        uploads.push(trickle(&server, &attacker, their_family, n).await);
    }
    let mut answers = answers_of(uploads);
    next_answers(&mut answers, 2, 429, ErrorCode::RateLimited).await;

    // Step 2: meanwhile an honest member of another family uploads a photo.
    let photo = vec![7u8; 20_000];
    let hash = BlobHash::of(&photo);
    let path = format!("/blobs/{hash}?family={family}");
    let r = signed_http(&server, &honest, "PUT", &path, &photo).await;
    assert_eq!(r.status, 201, "{r:?}");

    // Step 3: the attacker's two held uploads are cut off after their grace.
    next_answers(&mut answers, 2, 408, ErrorCode::TooSlow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_below_the_minimum_rate_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(dir.path(), CONFIG, &[]);
    let (attacker, family) = member_with_family(&server, "attacker").await;

    // Step 1: a trickling upload is answered 408 too_slow once its grace is over.
    let started = std::time::Instant::now();
    let r = trickle(&server, &attacker, family, 1)
        .await
        .await
        .expect("an upload task");
    assert_eq!(
        (r.status, r.error_code()),
        (408, Some(ErrorCode::TooSlow)),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut off after the grace"
    );

    // Step 2: its slot is free again: a normal upload by the same account works, and
    // the trickled blob was never stored.
    let photo = vec![9u8; 50_000];
    let hash = BlobHash::of(&photo);
    let path = format!("/blobs/{hash}?family={family}");
    let r = signed_http(&server, &attacker, "PUT", &path, &photo).await;
    assert_eq!(r.status, 201, "{r:?}");
    let trickled = BlobHash::of(&[1u8; DECLARED]);
    let r = signed_http(
        &server,
        &attacker,
        "GET",
        &format!("/blobs/{trickled}"),
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
}

/// A whole upload of `body` to `family` from the client address `from`.
async fn upload_from(
    server: &Server,
    id: &Identity,
    family: FamilyId,
    body: &[u8],
    from: &str,
) -> HttpResponse {
    let mut request =
        upload_head(id, family, BlobHash::of(body), body.len(), Some(from)).into_bytes();
    request.extend_from_slice(body);
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(&request).await.expect("the upload");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw)).await;
    parse_response(&raw)
}

/// Accounts are free: two of them from one address hold that address's upload slots
/// and no more, while a member at another address still uploads (the relay trusts
/// the loopback proxy here, so `X-Forwarded-For` names the client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_uploads_from_one_address_lock_no_other_address_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"trusted_proxies":["127.0.0.1"],"limits":{
        "max_concurrent_uploads": 8,
        "max_uploads_per_account": 2,
        "max_uploads_per_address": 2,
        "upload_grace_secs": 3,
        "upload_min_bytes_per_second": 1024
    }}"#;
    let server = Server::start_with_config(dir.path(), config, &[]);
    let attacker_address = "203.0.113.7";
    let (one, one_family) = member_with_family(&server, "attacker1").await;
    let (two, two_family) = member_with_family(&server, "attacker2").await;
    let (honest, family) = member_with_family(&server, "honest").await;

    // Step 1: two accounts at one address start two trickling uploads each: the
    // address holds two slots, the other two uploads are refused at once.
    let mut uploads = Vec::new();
    for (n, (who, their)) in [
        (&one, one_family),
        (&one, one_family),
        (&two, two_family),
        (&two, two_family),
    ]
    .into_iter()
    .enumerate()
    {
        let n = u8::try_from(n).expect("a small number");
        uploads.push(trickle_from(&server, who, their, n, Some(attacker_address)).await);
    }
    let mut answers = answers_of(uploads);
    next_answers(&mut answers, 2, 429, ErrorCode::RateLimited).await;

    // Step 2: meanwhile the honest member uploads from another address; from the
    // attacker's address even they would be turned away.
    let photo = vec![7u8; 20_000];
    let r = upload_from(&server, &honest, family, &photo, attacker_address).await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, Some(ErrorCode::RateLimited)),
        "{r:?}"
    );
    let r = upload_from(&server, &honest, family, &photo, "198.51.100.9").await;
    assert_eq!(r.status, 201, "{r:?}");

    // Step 3: the two held uploads are cut off after their grace.
    next_answers(&mut answers, 2, 408, ErrorCode::TooSlow).await;
}

/// Uploads kept just above the minimum rate used to hold every slot of the relay for
/// as long as a largest blob takes at that rate; now, when all are taken, the slowest
/// one past its grace gives way to a new upload (and is told so: `too_slow`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_just_above_the_minimum_give_way_when_the_relay_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"limits":{
        "max_concurrent_uploads": 2,
        "max_uploads_per_account": 2,
        "upload_grace_secs": 1,
        "upload_min_bytes_per_second": 1024,
        "upload_yield_bytes_per_second": 65536
    }}"#;
    let server = Server::start_with_config(dir.path(), config, &[]);
    let (attacker, their_family) = member_with_family(&server, "attacker").await;
    let (honest, family) = member_with_family(&server, "honest").await;

    // Step 1: the attacker holds both slots with uploads of 2 KB/s, twice the
    // minimum: the minimum rate alone would let each run for 50 s.
    let started = std::time::Instant::now();
    let mut uploads = Vec::new();
    for n in 0..2 {
        let pace = (200, Duration::from_millis(100));
        uploads.push(drip(&server, &attacker, their_family, n, None, pace).await);
    }
    let mut answers = answers_of(uploads);
    until_metric(&server, "doran_uploads_in_progress", |n| n == 2).await;

    // Step 2: an honest member's upload gets a slot once one of them is past its
    // grace (refused before that, as before, and retried like a device does).
    let photo = vec![7u8; 20_000];
    let hash = BlobHash::of(&photo);
    let path = format!("/blobs/{hash}?family={family}");
    let stored = loop {
        let r = signed_http(&server, &honest, "PUT", &path, &photo).await;
        if r.status == 201 {
            break r;
        }
        assert_eq!(
            (r.status, r.error_code()),
            (429, Some(ErrorCode::RateLimited)),
            "{r:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no slot came within 20 s: the slow uploads kept them"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored.status, 201);

    // Step 3: the upload that gave way was told so, long before it would have ended.
    next_answers(&mut answers, 1, 408, ErrorCode::TooSlow).await;
    assert!(started.elapsed() < Duration::from_secs(25));
}
