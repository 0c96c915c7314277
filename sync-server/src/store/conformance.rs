//! The conformance suites every backend must pass: one for [`AccountStore`] +
//! [`LogStore`] (memory, SQLite in memory, SQLite in a file, PostgreSQL) and one for
//! [`BlobStore`] (memory, folder, S3).
//!
//! Each test is a function over a fixture; the macros expand them as `#[test]`s for
//! one backend, given a factory. A new backend adds one line below. A test function
//! that a macro does not list is dead code, so the compiler points out a forgotten one.
//!
//! The PostgreSQL and S3 backends need a server: the test database named by
//! `DORAN_TEST_DATABASE` (each test gets a schema of its own) and the bucket of
//! `DORAN_TEST_S3` (`s3://bucket`, with `AWS_ENDPOINT`, `AWS_REGION` and the keys in the
//! environment; each test gets a prefix of its own). `scripts/test` starts PostgreSQL
//! and Garage and sets them; without them those tests pass without running, unless
//! `DORAN_REQUIRE_BACKENDS` is set (as `scripts/test` does).

use std::{any::Any, error::Error, sync::Arc};

use doran_protocol::{DeviceId, DocId, FamilyId, InviteId, PublicKey, UserId};

use super::{
    AccountStore, BlobStore, CachedBlobs, FsBlobStore, LogStore, MemoryBlobStore, MemoryStore,
    NewDevice, NewInvite, NewUser, S3BlobStore, S3Options, SqliteStore, postgres::testing::TestPg,
};

mod accounts;
mod blobs;
mod families;
mod invites;
mod links;
mod logs;

pub(crate) use self::{accounts::*, blobs::*, families::*, invites::*, links::*, logs::*};

/// Whoever uploads blobs in tests that do not care who.
pub(crate) const UPLOADER: UserId = UserId([0xee; 16]);

/// What a conformance test returns.
pub(crate) type TestResult = Result<(), Box<dyn Error>>;

/// An account and log store under test (one object behind both traits), and whatever
/// must live as long as it (a temporary directory, a database schema).
pub(crate) struct Fixture {
    pub(crate) accounts: Arc<dyn AccountStore>,
    pub(crate) logs: Arc<dyn LogStore>,
    _keep: Option<Box<dyn Any>>,
}

impl Fixture {
    fn new<S: AccountStore + LogStore + 'static>(store: S, keep: Option<Box<dyn Any>>) -> Self {
        Self::shared(Arc::new(store), keep)
    }

    fn shared<S: AccountStore + LogStore + 'static>(
        store: Arc<S>,
        keep: Option<Box<dyn Any>>,
    ) -> Self {
        Self {
            accounts: store.clone(),
            logs: store,
            _keep: keep,
        }
    }
}

/// A blob store under test, and whatever must live as long as it.
pub(crate) struct BlobFixture {
    pub(crate) blobs: Arc<dyn BlobStore>,
    _keep: Option<Box<dyn Any>>,
}

/// A PostgreSQL store in a schema of its own, if there is a test database.
fn postgres_fixture() -> Option<Fixture> {
    let pg = TestPg::new()?;
    Some(Fixture::shared(Arc::clone(&pg.store), Some(Box::new(pg))))
}

/// An S3 blob store under a prefix of its own in the test bucket, if there is one
/// (`DORAN_TEST_S3`); its objects are left to the bucket, which is the test run's.
fn s3_fixture() -> Option<BlobFixture> {
    let url = match std::env::var("DORAN_TEST_S3") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var_os("DORAN_REQUIRE_BACKENDS").is_none(),
                "DORAN_TEST_S3 is not set but DORAN_REQUIRE_BACKENDS is"
            );
            return None;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut options = S3Options::from_url(&url).expect("an s3:// URL");
    options.prefix = format!("t{:016x}", rand::random::<u64>());
    options.endpoint = std::env::var("DORAN_S3_ENDPOINT").ok();
    options.region = std::env::var("DORAN_S3_REGION").ok();
    let store = S3BlobStore::open(&options, rt.handle().clone()).expect("open the bucket");
    Some(BlobFixture {
        blobs: Arc::new(store),
        _keep: Some(Box::new(rt)),
    })
}

/// Expands every account and log test for one backend:
/// `relay_store_conformance_tests!(name, || -> Option<Fixture>)` (`None`: the backend
/// is not available here, the tests pass without running).
macro_rules! relay_store_conformance_tests {
    ($backend:ident, $factory:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            relay_store_conformance_tests!(@tests $factory;
                // users and devices
                create_user_then_read_it_back,
                a_taken_email_is_refused_and_changes_nothing,
                racing_sign_ups_of_one_email_make_one_account,
                taken_ids_and_keys_are_conflicts,
                unknown_users_and_devices_read_as_none,
                set_profile_updates_nickname_and_avatar,
                add_device_lists_devices_oldest_first,
                add_device_errors_change_nothing,
                revoke_device_is_idempotent_and_per_user,
                devices_revoking_each_other_leave_one_standing,
                touch_device_only_moves_forward,
                key_packages_are_one_per_device_oldest_first,
                revoked_devices_key_packages_are_not_served,
                // link codes
                a_link_code_is_taken_once,
                link_codes_expire,
                link_codes_of_revoked_devices_do_not_work,
                put_link_code_errors,
                // link requests
                a_claim_waits_and_adds_no_device,
                a_second_claimant_is_refused,
                unusable_codes_are_not_claimed,
                confirming_adds_the_device,
                rejecting_spends_the_code,
                expired_requests_cannot_be_answered,
                only_the_users_live_devices_answer,
                a_refused_confirmation_changes_nothing,
                pending_links_are_oldest_first,
                a_new_code_replaces_the_unclaimed_ones,
                expired_codes_and_requests_are_purged,
                // families
                create_family_makes_the_host_a_member_and_owns_the_doc,
                create_family_errors,
                device_certs_are_kept_once_and_capped,
                a_familys_key_log_is_the_familys,
                a_familys_volumes_are_the_familys_and_taken_by_nothing_else,
                families_and_members_are_in_join_order,
                remove_member_removes_access,
                the_host_cannot_be_removed,
                delete_family_removes_members_invites_and_grants,
                blob_grants_follow_membership,
                a_devices_record_comes_with_its_users_grant,
                a_downloads_check_follows_every_change,
                personal_blobs_are_read_by_everyone_sharing_a_family,
                family_and_personal_grants_are_independent,
                a_replaced_snapshot_is_released_and_counted_in_its_grace,
                a_snapshot_never_takes_over_someone_elses_upload,
                a_pending_snapshot_adopts_only_its_pushers_upload,
                a_refused_snapshot_reference_is_dropped,
                a_deleted_familys_blobs_are_released,
                an_upload_is_granted_only_if_still_allowed,
                an_upload_must_fit_the_quota_when_granted,
                racing_uploads_share_the_quota,
                families_per_user_are_capped,
                racing_accepts_respect_the_family_cap,
                // invites
                an_invite_reads_back_with_its_card,
                create_invite_errors_change_nothing,
                an_expired_invite_reads_as_expired_and_allows_a_new_one,
                accept_adds_the_membership,
                reject_adds_nothing,
                an_expired_invite_cannot_be_answered,
                the_relay_keeps_no_names,
                accept_fails_for_a_member,
                withdraw_closes_an_invite,
                unknown_invites,
                an_inviter_who_left_keeps_their_nickname,
                invite_lists_are_oldest_first,
                the_invite_list_is_mine_then_each_familys_once,
                the_invite_list_follows_every_change,
                finished_invites_are_purged,
                pending_invites_are_capped,
                racing_invites_respect_the_cap,
                sending_and_withdrawing_in_a_loop_is_capped,
                // logs
                appends_get_gapless_seqs_per_document,
                append_is_idempotent_by_chunk_id,
                read_since_pages_in_order,
                a_snapshot_drops_the_chunks_it_covers,
                a_snapshot_of_the_whole_log_keeps_seqs_growing,
                stale_snapshots_are_ignored,
                pending_snapshots_drop_nothing_until_confirmed,
                newer_pending_snapshots_replace_older_ones,
                pending_snapshots_expire,
                invalid_snapshots_are_refused,
                drop_doc_forgets_the_log,
                concurrent_appends_get_distinct_seqs,
                a_batch_appends_like_one_by_one,
                a_bad_chunk_does_not_sink_its_batch,
                a_log_sealed_by_its_host_takes_envelopes_only,
                chunks_keep_their_authors,
                log_quotas_count_what_is_stored,
                // both
                out_of_range_numbers_are_invalid,
            );
        }
    };
    (@tests $factory:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() -> $crate::store::conformance::TestResult {
                let fixture: Option<$crate::store::conformance::Fixture> = ($factory)();
                let Some(fixture) = fixture else { return Ok(()) };
                $crate::store::conformance::$test(&fixture)
            }
        )*
    };
}

/// Expands every blob test for one backend:
/// `blob_store_conformance_tests!(name, || -> Option<BlobFixture>)`.
macro_rules! blob_store_conformance_tests {
    ($backend:ident, $factory:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            blob_store_conformance_tests!(@tests $factory;
                an_upload_reads_back,
                a_large_upload_reads_back_and_a_large_mismatch_publishes_nothing,
                an_empty_blob_is_a_blob,
                uploading_twice_is_deduplicated,
                a_hash_mismatch_publishes_nothing,
                a_dropped_upload_leaves_nothing,
                range_reads_are_clamped,
                unknown_blobs,
                whole_reads_are_the_blob_and_follow_deletes,
                concurrent_uploads_of_the_same_blob,
                concurrent_uploads_of_different_blobs,
                blobs_list_in_hash_order_by_pages,
                a_deleted_blob_is_gone_and_can_come_back,
                storing_a_blob_again_renews_its_time,
            );
        }
    };
    (@tests $factory:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() -> $crate::store::conformance::TestResult {
                let fixture: Option<$crate::store::conformance::BlobFixture> = ($factory)();
                let Some(fixture) = fixture else { return Ok(()) };
                $crate::store::conformance::$test(&fixture.blobs)
            }
        )*
    };
}

relay_store_conformance_tests!(memory, || Some(Fixture::new(MemoryStore::new(), None)));
relay_store_conformance_tests!(sqlite_in_memory, || {
    Some(Fixture::new(
        SqliteStore::open_in_memory().expect("open in memory"),
        None,
    ))
});
relay_store_conformance_tests!(sqlite_file, || {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join(SqliteStore::FILE_NAME)).expect("open file");
    Some(Fixture::new(store, Some(Box::new(dir))))
});
relay_store_conformance_tests!(postgres, postgres_fixture);

blob_store_conformance_tests!(memory_blobs, || Some(BlobFixture {
    blobs: Arc::new(MemoryBlobStore::new()),
    _keep: None,
}));
blob_store_conformance_tests!(fs_blobs, || {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::open(dir.path().join("blobs")).expect("open folder");
    Some(BlobFixture {
        blobs: Arc::new(store),
        _keep: Some(Box::new(dir)),
    })
});
blob_store_conformance_tests!(s3_blobs, s3_fixture);
// The cache in front of the bucket, as a relay of a cluster runs it.
blob_store_conformance_tests!(cached_s3_blobs, || {
    s3_fixture().map(|f| BlobFixture {
        blobs: Arc::new(CachedBlobs::new(f.blobs, 40 * 1024, 20 * 1024).sizes_from_store()),
        _keep: f._keep,
    })
});
// The cache in front of the folder, as the relay runs it, small enough to evict.
blob_store_conformance_tests!(cached_fs_blobs, || {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::open(dir.path().join("blobs")).expect("open folder");
    Some(BlobFixture {
        blobs: Arc::new(CachedBlobs::new(Arc::new(store), 40 * 1024, 20 * 1024)),
        _keep: Some(Box::new(dir)),
    })
});

// ----- shared builders -----

/// User `n`: ids, email, keys and personal document all derived from `n`.
pub(crate) fn new_user(n: u8) -> (NewUser, NewDevice) {
    let user = NewUser {
        id: UserId([n; 16]),
        email: format!("user{n}@example.com"),
        nickname: format!("nick {n}"),
        user_key: PublicKey([n; 32]),
        personal_doc: personal_doc(n),
        created_at: 1_000 + u64::from(n),
    };
    (user, new_device(n, 0))
}

/// Device `k` of user `n`.
pub(crate) fn new_device(n: u8, k: u8) -> NewDevice {
    let mut id = [n; 16];
    id[0] = 0xde;
    id[1] = k;
    let mut key = [n; 32];
    key[0] = 0xde;
    key[1] = k;
    NewDevice {
        id: DeviceId(id),
        key: PublicKey(key),
        client: format!("test client {k}"),
        added_at: 2_000 + u64::from(k),
    }
}

/// The personal document of user `n`.
pub(crate) fn personal_doc(n: u8) -> DocId {
    let mut id = [n; 16];
    id[0] = 0xd0;
    DocId(id)
}

/// Family `n`.
pub(crate) fn family_id(n: u8) -> FamilyId {
    let mut id = [n; 16];
    id[0] = 0xfa;
    FamilyId(id)
}

/// Registers user `n`.
pub(crate) fn register(f: &Fixture, n: u8) -> Result<UserId, Box<dyn Error>> {
    let (user, device) = new_user(n);
    f.accounts.create_user(&user, &device)?;
    Ok(user.id)
}

/// Registers users `host` and creates family `n` with them as host.
pub(crate) fn family_with_host(f: &Fixture, n: u8, host: u8) -> Result<FamilyId, Box<dyn Error>> {
    let host = register(f, host)?;
    let family = family_id(n);
    f.accounts.create_family(family, host, 10, usize::MAX)?;
    Ok(family)
}

/// The card of invite `n`: opaque bytes, as a device seals them (never read by the
/// relay).
pub(crate) fn card(n: u8) -> Vec<u8> {
    vec![0xca, n, 0x00, 0xff, n]
}

/// Invite `n` to `family` with [`card`]`(n)`, sent at `at` and open for 100 ms.
pub(crate) fn new_invite(
    n: u8,
    family: FamilyId,
    inviter: UserId,
    invitee: UserId,
    at: u64,
) -> NewInvite {
    NewInvite {
        id: InviteId([n; 16]),
        family,
        inviter,
        invitee,
        card: card(n),
        created_at: at,
        expires_at: at + 100,
    }
}

/// Invites `invitee` to `family` (invite `n` at `at`) and accepts at `at + 1`.
pub(crate) fn join(
    f: &Fixture,
    n: u8,
    family: FamilyId,
    inviter: UserId,
    invitee: UserId,
    at: u64,
) -> TestResult {
    let invite = new_invite(n, family, inviter, invitee, at);
    f.accounts.create_invite(&invite)?;
    f.accounts
        .answer_invite(invite.id, true, at + 1, usize::MAX)?;
    Ok(())
}
