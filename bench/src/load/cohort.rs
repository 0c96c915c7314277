//! A cohort: virtual devices registered, grouped into families, joined through real
//! invites, subscribed to their family document and caught up — all before a
//! benchmark's clock starts.
//!
//! The family document is a real one made with client-core: the host creates it, adds
//! each member who accepted, and adds an album with a photo and a mission, so the
//! edits a benchmark makes later (ticks, likes, comments, events) are the same
//! Automerge changes an app would push.

use std::sync::Arc;

use doran_client_core::{
    Actor, FamilyDoc,
    family_doc::{EventInput, PhotoInput},
    group::KeyRing,
    store::BlobOwner,
};
use doran_protocol::{BlobHash, DeviceId, DocId, FamilyId, Request, UserId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::Semaphore;

use super::{
    LoadError,
    device::{Conn, Identity},
    relay::Relay,
};

/// The 호칭 members are invited as.
const NAMES: [&str; 6] = ["엄마", "아빠", "첫째", "둘째", "할머니", "할아버지"];

/// Bytes of an invite's card: a device seals the family's title and two 호칭 once,
/// and the key that opens them to each of the invitee's devices and to the family;
/// about this much for a family of a few devices. Opaque to the relay.
const CARD_BYTES: usize = 300;

/// A card as the relay sees one: random bytes.
fn invite_card() -> Vec<u8> {
    (0..CARD_BYTES).map(|_| rand::random::<u8>()).collect()
}

/// Families set up at once.
const SETUP_PARALLEL: usize = 32;

/// Bytes of each family's small blob (a thumbnail's size).
pub const SMALL_BLOB: usize = 16 * 1024;

/// A device of the cohort, signed in and subscribed to its family document.
#[derive(Debug)]
pub struct Device {
    pub id: Identity,
    pub conn: Conn,
    /// Index into [`Cohort::families`].
    pub family: usize,
}

/// A family of the cohort.
#[derive(Debug, Clone)]
pub struct Family {
    pub doc: DocId,
    /// Devices (indices into [`Cohort::devices`]), host first.
    pub devices: Vec<usize>,
    /// The family document's changes so far, in order (what a joining device loads).
    pub setup_chunks: Vec<Vec<u8>>,
    /// The blob uploaded for the family (the photo's thumbnail).
    pub blob: BlobHash,
    /// The photo and mission the edits refer to.
    pub photo: String,
    pub mission: String,
    /// A sealed family's key group, saved (each device restores its own copy: the
    /// same epoch's secret, as the devices of one group hold); `None` when clear.
    pub ring: Option<Vec<u8>>,
}

/// Devices in families, ready for load.
#[derive(Debug)]
pub struct Cohort {
    pub devices: Vec<Device>,
    pub families: Vec<Family>,
}

/// Family sizes: all `fixed` when given, else 4, 5, 6 in turn (families of 4–6).
pub fn family_sizes(devices: usize, fixed: Option<usize>) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = devices;
    let mut turn = 0;
    while left > 0 {
        let want = fixed.unwrap_or(4 + turn % 3).clamp(1, NAMES.len());
        let size = want.min(left);
        sizes.push(size);
        left -= size;
        turn += 1;
    }
    sizes
}

impl Cohort {
    /// Registers `devices` devices in families of the given sizes, concurrently.
    /// Families of `sizes`; `sealed`: their ids say so and every chunk of their
    /// document is an envelope, from the first (as a sealed family's devices push).
    pub async fn build(relay: &Relay, sizes: &[usize], sealed: bool) -> Result<Cohort, LoadError> {
        let gate = Arc::new(Semaphore::new(SETUP_PARALLEL));
        // Emails are unique to this run: a relay that kept an earlier run's accounts
        // (a cluster's database survives `scripts/cluster down`) refuses none of them.
        let run: u32 = rand::random();
        let mut tasks = tokio::task::JoinSet::new();
        for (index, &size) in sizes.iter().enumerate() {
            let gate = Arc::clone(&gate);
            let ws = relay.ws_url();
            let http = relay.http_url();
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let built = set_up_family(&ws, &http, (run, index), size, sealed).await;
                (index, built)
            });
        }
        let mut built: Vec<Option<SetUp>> = (0..sizes.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (index, family) =
                joined.map_err(|e| LoadError::Setup(format!("a setup task failed: {e}")))?;
            if let Some(slot) = built.get_mut(index) {
                *slot = Some(family?);
            }
        }
        let mut cohort = Cohort {
            devices: Vec::new(),
            families: Vec::new(),
        };
        for (index, entry) in built.into_iter().enumerate() {
            let Some((mut family, members)) = entry else {
                return Err(LoadError::Setup(format!("family {index} was not set up")));
            };
            for (id, mut conn) in members {
                // What arrived during set-up is not part of any measurement.
                conn.reset_received();
                family.devices.push(cohort.devices.len());
                cohort.devices.push(Device {
                    id,
                    conn,
                    family: index,
                });
            }
            cohort.families.push(family);
        }
        Ok(cohort)
    }
}

impl Cohort {
    /// `counts[i]` edits by device `i` ([`member_edits`], seeded `seed_base + i`), made
    /// on the blocking pool, in device order.
    pub async fn edits(
        &self,
        counts: &[usize],
        seed_base: u64,
    ) -> Result<Vec<Vec<Vec<u8>>>, LoadError> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, &n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let Some(device) = self.devices.get(index) else {
                break;
            };
            let family = self.families[device.family].clone();
            let id = device.id.clone();
            let seed = seed_base + index as u64;
            tasks.spawn_blocking(move || (index, member_edits(&family, &id, n, seed)));
        }
        let mut edits: Vec<Vec<Vec<u8>>> = vec![Vec::new(); self.devices.len()];
        while let Some(joined) = tasks.join_next().await {
            let (index, made) =
                joined.map_err(|e| LoadError::Setup(format!("an edit task failed: {e}")))?;
            edits[index] = made?;
        }
        Ok(edits)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn doc_error(e: impl std::fmt::Display) -> LoadError {
    LoadError::Doc(e.to_string())
}

/// The change an edit made (every setup edit makes one).
fn change<T>(edit: doran_client_core::Edit<T>) -> Result<(T, Vec<u8>), LoadError> {
    match edit.change {
        Some(c) => Ok((edit.value, c)),
        None => Err(LoadError::Doc("a setup edit changed nothing".into())),
    }
}

/// A family set up, with its members' identities and sessions (host first).
type SetUp = (Family, Vec<(Identity, Conn)>);

async fn set_up_family(
    ws: &str,
    http: &str,
    (run, index): (u32, usize),
    size: usize,
    sealed: bool,
) -> Result<SetUp, LoadError> {
    let mut members = Vec::with_capacity(size);
    for place in 0..size {
        let mut id = Identity::new(
            format!("r{run:08x}-f{index}-m{place}@bench.doran"),
            format!("bench {index}.{place}"),
        );
        let conn = Conn::register(ws, &mut id).await?;
        members.push((id, conn));
    }
    let family = if sealed {
        FamilyId::new_family(true)
    } else {
        FamilyId::random()
    };
    let doc = DocId::from(family);
    let ring = sealed.then(|| family_ring(family)).transpose()?;
    let now = now_ms();
    let (host_id, host_conn) = members
        .first_mut()
        .ok_or_else(|| LoadError::Setup("an empty family".into()))?;
    let host_actor = Actor {
        user: host_id.user,
        device: host_id.device,
    };
    host_conn.request(Request::CreateFamily { family }).await?;
    let (mut fdoc, first) =
        FamilyDoc::create(family, &format!("가족 {index}"), NAMES[0], &host_actor, now)
            .map_err(doc_error)?;
    let mut chunks = vec![first];

    // Invites, answered by each invitee's own device; the host writes them into the
    // document as the app does.
    let host = host_id.clone();
    for place in 1..size {
        let name = NAMES[place % NAMES.len()];
        let (invitee, _) = &members[place];
        let invitee_user = invitee.user;
        let request = host.invite(&members[0].1.server_id, family, invitee_user, invite_card());
        let Request::SendInvite { invite, .. } = &request else {
            return Err(LoadError::Setup("not an invite".into()));
        };
        let invite = *invite;
        members[0].1.request(request).await?;
        let (invitee, conn) = &mut members[place];
        let answer = invitee.answer(&conn.server_id, invite, true);
        conn.request(answer).await?;
        let ((), c) = change(
            fdoc.add_member(invitee_user, name, now)
                .map_err(doc_error)?,
        )?;
        chunks.push(c);
    }

    // Something to tick, like and comment on.
    let mut rng = StdRng::seed_from_u64(index as u64);
    let thumb: Vec<u8> = (0..SMALL_BLOB).map(|_| rng.random()).collect();
    let blob = BlobHash::of(&thumb);
    let client = crate::load::blob_client(http, host.device, host.device_key.clone())?;
    client.put(blob, BlobOwner::Family(family), thumb).await?;
    let (album, c) = change(fdoc.create_album("우리 가족", now).map_err(doc_error)?)?;
    chunks.push(c);
    let input = PhotoInput {
        blob: blob.into(),
        thumb: blob.into(),
        mime: "image/jpeg".into(),
        size: SMALL_BLOB as u64,
        width: 320,
        height: 240,
        taken_at: Some(now),
        caption: String::new(),
    };
    let (photo, c) = change(fdoc.add_photo(&album, input, now).map_err(doc_error)?)?;
    chunks.push(c);
    let (mission, c) = change(
        fdoc.add_mission("함께 산책하기", &[], None, now)
            .map_err(doc_error)?,
    )?;
    chunks.push(c);

    let sealer = ring.as_deref().map(ring_copy).transpose()?;
    for c in &chunks {
        let pushed = match &sealer {
            Some(ring) => ring
                .seal_chunk(family, doc, c)
                .map_err(|e| LoadError::Setup(format!("sealing a chunk: {e}")))?,
            None => c.clone(),
        };
        members[0].1.push(doc, pushed).await?;
    }
    for (_, conn) in &mut members {
        conn.subscribe(doc, 0).await?;
    }
    Ok((
        Family {
            doc,
            devices: Vec::new(),
            setup_chunks: chunks,
            blob,
            photo,
            mission,
            ring,
        },
        members,
    ))
}

/// A new key group for a sealed family, saved.
fn family_ring(family: FamilyId) -> Result<Vec<u8>, LoadError> {
    let key = doran_client_core::keys::random_key().map_err(|e| LoadError::Setup(e.to_string()))?;
    let mut ring = KeyRing::new(UserId::random(), DeviceId::random(), key);
    ring.create(family)
        .map_err(|e| LoadError::Setup(e.to_string()))?;
    ring.save().map_err(|e| LoadError::Setup(e.to_string()))
}

/// A device's own copy of a family's key group (see [`Family::ring`]).
pub fn ring_copy(saved: &[u8]) -> Result<KeyRing, LoadError> {
    let key = doran_client_core::keys::random_key().map_err(|e| LoadError::Setup(e.to_string()))?;
    KeyRing::restore(UserId::random(), DeviceId::random(), key, saved)
        .map_err(|e| LoadError::Setup(e.to_string()))
}

/// `n` edits by one member, made with client-core as the app makes them (one change
/// per user action): ticks and unticks of the mission, likes and unlikes, comments and
/// calendar events. CPU work; run it off the async threads.
pub fn member_edits(
    family: &Family,
    id: &Identity,
    n: usize,
    seed: u64,
) -> Result<Vec<Vec<u8>>, LoadError> {
    let actor = Actor {
        user: id.user,
        device: id.device,
    };
    let mut doc = FamilyDoc::load(None, family.setup_chunks.iter().map(Vec::as_slice), &actor)
        .map_err(doc_error)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut done, mut liked) = (false, false);
    let mut out = Vec::with_capacity(n);
    let start = now_ms();
    for i in 0..n {
        let now = start + i as i64;
        let change = match rng.random_range(0..4) {
            0 => {
                done = !done;
                doc.set_mission_done(&family.mission, done, now)
                    .map(|e| e.change)
            }
            1 => {
                liked = !liked;
                doc.set_like(&family.photo, liked, now).map(|e| e.change)
            }
            2 => doc
                .add_comment(&family.photo, &format!("좋아요 {i}"), now)
                .map(|e| e.change),
            _ => doc
                .add_event(
                    EventInput {
                        title: format!("약속 {i}"),
                        notes: String::new(),
                        start: "2026-12-01".into(),
                        end: None,
                        start_time: None,
                        end_time: None,
                        color: None,
                    },
                    now,
                )
                .map(|e| e.change),
        }
        .map_err(doc_error)?
        .ok_or_else(|| LoadError::Doc("an edit changed nothing".into()))?;
        out.push(change);
    }
    Ok(out)
}

/// Whether the chunks each device holds make one document: every device's own
/// changes plus what it received load into documents with the same heads.
pub fn converged(family: &Family, holdings: &[Vec<&[u8]>]) -> bool {
    let heads: Vec<_> = holdings
        .iter()
        .map(|chunks| {
            let mut doc = automerge::AutoCommit::new();
            for c in family
                .setup_chunks
                .iter()
                .map(Vec::as_slice)
                .chain(chunks.iter().copied())
            {
                if doc.load_incremental(c).is_err() {
                    return None;
                }
            }
            let mut heads = doc.get_heads();
            heads.sort();
            Some(heads)
        })
        .collect();
    heads
        .first()
        .is_some_and(|first| first.is_some() && heads.iter().all(|h| h == first))
}
