//! [`Engine`]: one device, as an app or the command line uses it — the local store,
//! the account, the open documents and the sync driver, behind one value.
//!
//! Every edit is durable on this device when it returns (and queued for the relay);
//! operations that need the relay (creating an account or a family, invites,
//! directory lookups) say so with [`SyncError::Unreachable`] when it cannot be reached.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use doran_protocol::{
    BlobHash, FamilyId, InviteId, UserId,
    frame::{Request, Response},
    model::{FamilySummary, InviteInfo},
};

use crate::{
    DocError, Edit, FamilyDoc,
    account::Account,
    model::{Family, Personal},
    store::{LocalStore, SqliteStore},
    sync::{
        self, BlobCache, BlobOwner, SignInAs, StoreHost, SyncConfig, SyncDriver, SyncError,
        SyncEvent,
    },
    views::{self, Notification},
};

/// How long a one-shot network operation may take.
pub const NETWORK_TIMEOUT: Duration = Duration::from_secs(15);
/// The blob cache's size limit (pending uploads are never evicted).
pub const BLOB_CACHE_BYTES: u64 = 512 * 1024 * 1024;
/// How many notifications a device keeps.
const KEEP_NOTIFICATIONS: usize = 200;
const NOTIFICATIONS_KEY: &str = "engine/notifications";

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// There is no account on this device yet.
    #[error("no account on this device: create one (`account create`) or restore it")]
    NoAccount,
    /// There is already an account on this device.
    #[error("this device already has an account ({0})")]
    HasAccount(String),
    /// The family is not one of the user's.
    #[error("family {0} is not one of yours on this device")]
    UnknownFamily(FamilyId),
    /// This device has no profile of that user: they share no family with you, or
    /// their profile has not synced yet (`sync` first).
    #[error("no profile of {0} on this device: not in a family with you, or not synced yet")]
    UnknownProfile(UserId),
    /// The relay answered something unexpected.
    #[error("unexpected answer from the relay: {0}")]
    Unexpected(String),
    /// An edit was refused.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// Syncing, the relay or the store failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A recording could not be converted.
    #[error(transparent)]
    Audio(#[from] doran_audio::AudioError),
    /// A photo could not be prepared.
    #[error(transparent)]
    Photo(#[from] crate::photo::PhotoError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;

/// One device: its store, account, documents, blobs and sync driver.
#[derive(Debug)]
pub struct Engine {
    home: PathBuf,
    store: Arc<dyn LocalStore>,
    signed_in: Option<SignedInParts>,
}

#[derive(Debug)]
struct SignedInParts {
    account: Account,
    host: Arc<StoreHost>,
    driver: Arc<SyncDriver>,
    blobs: BlobCache,
}

impl Engine {
    /// Opens (creating if needed) the device at `home`: `home/device.sqlite` and the
    /// blob folder `home/blobs`.
    pub fn open(home: &Path) -> EngineResult<Engine> {
        std::fs::create_dir_all(home)?;
        let store: Arc<dyn LocalStore> = Arc::new(SqliteStore::open(home.join("device.sqlite"))?);
        let mut engine = Engine {
            home: home.to_owned(),
            store,
            signed_in: None,
        };
        if let Some(account) = Account::load(&*engine.store).map_err(SyncError::from)? {
            engine.attach(account)?;
        }
        Ok(engine)
    }

    fn attach(&mut self, account: Account) -> EngineResult<()> {
        let host = Arc::new(StoreHost::new(Arc::clone(&self.store), account.actor()));
        let driver = Arc::new(SyncDriver::new(
            Arc::clone(&host) as Arc<dyn sync::SyncHost>,
            &account.server,
            account.keys(),
            SignInAs::Known { user: account.user },
            SyncConfig::default(),
        )?);
        let blobs = BlobCache::open(
            self.home.join("blobs"),
            Arc::clone(&self.store),
            BLOB_CACHE_BYTES,
        )?;
        self.signed_in = Some(SignedInParts {
            account,
            host,
            driver,
            blobs,
        });
        Ok(())
    }

    fn parts(&self) -> EngineResult<&SignedInParts> {
        self.signed_in.as_ref().ok_or(EngineError::NoAccount)
    }

    fn refuse_second_account(&self) -> EngineResult<()> {
        match &self.signed_in {
            Some(p) => Err(EngineError::HasAccount(p.account.email.clone())),
            None => Ok(()),
        }
    }

    /// This device's account.
    pub fn account(&self) -> EngineResult<&Account> {
        Ok(&self.parts()?.account)
    }

    /// The local store.
    pub fn store(&self) -> &Arc<dyn LocalStore> {
        &self.store
    }

    /// The sync driver (status, events, requests), for apps that keep it running.
    pub fn driver(&self) -> EngineResult<&Arc<SyncDriver>> {
        Ok(&self.parts()?.driver)
    }

    // ----- accounts -----

    /// Creates an account (new keys) registered with the relay at `server`.
    pub async fn create_account(
        &mut self,
        server: &str,
        email: &str,
        nickname: &str,
    ) -> EngineResult<&Account> {
        self.refuse_second_account()?;
        let account =
            sync::create_account(&self.store, server, email, nickname, NETWORK_TIMEOUT).await?;
        self.attach(account)?;
        self.account()
    }

    /// Restores the account from its recovery phrase onto this device.
    pub async fn restore_account(&mut self, server: &str, phrase: &str) -> EngineResult<&Account> {
        self.refuse_second_account()?;
        let account = sync::recover_account(&self.store, server, phrase, NETWORK_TIMEOUT).await?;
        self.attach(account)?;
        self.account()
    }

    /// Links this device to an account with a code from one of its devices.
    pub async fn link_device(&mut self, server: &str, code: &str) -> EngineResult<&Account> {
        self.refuse_second_account()?;
        let account = sync::link_device(&self.store, server, code, NETWORK_TIMEOUT).await?;
        self.attach(account)?;
        self.account()
    }

    /// Removes the account's keys from this device (the documents stay).
    pub fn sign_out(&mut self) -> EngineResult<()> {
        Account::sign_out(&*self.store).map_err(SyncError::from)?;
        self.signed_in = None;
        Ok(())
    }

    // ----- talking to the relay -----

    /// Runs `f` while the driver is connected (for requests), then disconnects.
    pub async fn online<T>(&self, f: impl AsyncFnOnce(&SyncDriver) -> T) -> EngineResult<T> {
        let driver = Arc::clone(&self.parts()?.driver);
        let run = tokio::spawn({
            let driver = Arc::clone(&driver);
            async move { driver.run().await }
        });
        let out = f(&driver).await;
        run.abort();
        let _ = run.await;
        Ok(out)
    }

    /// A request to the relay, connecting for it.
    pub async fn request(&self, body: Request) -> EngineResult<Response> {
        let answer = self
            .online(async |d| tokio::time::timeout(NETWORK_TIMEOUT, d.request(body)).await)
            .await?;
        match answer {
            Ok(r) => Ok(r?),
            Err(_) => Err(SyncError::Timeout.into()),
        }
    }

    /// Connects, pushes every local change and blob, receives everything, records the
    /// notifications that arrived, and returns how many changes still wait.
    pub async fn sync(&self, timeout: Duration) -> EngineResult<u64> {
        let p = self.parts()?;
        let mut events = p.driver.subscribe();
        let pending = p.driver.run_until_up_to_date(timeout).await;
        self.record_events(&mut events)?;
        let pending = pending?;
        p.blobs.upload_pending(p.driver.blobs()).await?;
        Ok(pending)
    }

    /// Keeps the driver connected (reconnecting as needed), calling `on_note` for each
    /// notification as it arrives. Returns when the driver stops for good.
    pub async fn watch(&self, mut on_note: impl FnMut(&Family, &Notification)) -> EngineResult<()> {
        use tokio::sync::broadcast::error::RecvError;
        let p = self.parts()?;
        let mut events = p.driver.subscribe();
        let driver = Arc::clone(&p.driver);
        let mut run = tokio::spawn(async move { driver.run().await });
        loop {
            tokio::select! {
                ended = &mut run => {
                    return match ended {
                        Ok(r) => Ok(r?),
                        Err(e) => Err(EngineError::Unexpected(e.to_string())),
                    };
                }
                event = events.recv() => match event {
                    Ok(event) => {
                        for (family, view, note) in self.notes_of(&event)? {
                            self.keep_notification(family, &view, &note)?;
                            on_note(&view, &note);
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                },
            }
        }
        run.abort();
        Ok(())
    }

    // ----- families -----

    /// The user's families (as the relay last said, plus those created or joined here).
    pub fn families(&self) -> EngineResult<Vec<FamilyId>> {
        Ok(self.parts()?.host.families()?)
    }

    /// Creates a family on the relay (you become its host) and its document here.
    pub async fn create_family(
        &self,
        title: &str,
        my_name: &str,
        now_ms: i64,
    ) -> EngineResult<FamilyId> {
        let title = crate::validate::text(
            crate::validate::Field::FamilyTitle,
            title,
            crate::validate::FAMILY_TITLE,
        )?;
        let my_name = crate::validate::text(
            crate::validate::Field::MemberName,
            my_name,
            crate::validate::MEMBER_NAME,
        )?;
        let family = FamilyId::random();
        match self
            .request(Request::CreateFamily {
                family,
                title: title.clone(),
                my_name: my_name.clone(),
            })
            .await?
        {
            Response::FamilyCreated(_) | Response::Done => {}
            other => return Err(EngineError::Unexpected(format!("{other:?}"))),
        }
        self.parts()?
            .host
            .create_family(family, &title, &my_name, now_ms)?;
        Ok(family)
    }

    /// Renames a family (host): on the relay, then in its document.
    pub async fn rename_family(
        &self,
        family: FamilyId,
        title: &str,
        now_ms: i64,
    ) -> EngineResult<()> {
        self.check_family(family)?;
        self.expect_done(Request::RenameFamily {
            family,
            title: title.to_owned(),
        })
        .await?;
        self.edit_family(family, |fd| fd.rename(title, now_ms))?;
        Ok(())
    }

    /// Removes a member (host): on the relay (which ends their access), then from the
    /// family document.
    pub async fn remove_member(
        &self,
        family: FamilyId,
        user: UserId,
        now_ms: i64,
    ) -> EngineResult<()> {
        self.check_family(family)?;
        self.expect_done(Request::RemoveMember { family, user })
            .await?;
        self.edit_family(family, |fd| fd.remove_member(user, now_ms))?;
        Ok(())
    }

    /// Leaves a family: the member entry is removed from the document and pushed
    /// first (afterwards this device can no longer write it), then the relay is told.
    pub async fn leave_family(&self, family: FamilyId, now_ms: i64) -> EngineResult<()> {
        self.check_family(family)?;
        self.edit_family(family, |fd| fd.leave(now_ms))?;
        self.sync(NETWORK_TIMEOUT).await?;
        self.expect_done(Request::LeaveFamily { family }).await?;
        self.parts()?.host.remember_family(family, false)?;
        Ok(())
    }

    /// Deletes a family (host) on the relay; this device forgets it.
    pub async fn delete_family(&self, family: FamilyId) -> EngineResult<()> {
        self.check_family(family)?;
        self.expect_done(Request::DeleteFamily { family }).await?;
        self.parts()?.host.remember_family(family, false)?;
        Ok(())
    }

    async fn expect_done(&self, body: Request) -> EngineResult<()> {
        match self.request(body).await? {
            Response::Done => Ok(()),
            other => Err(EngineError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The relay's view of the user's families (title, members, roles).
    pub async fn family_summaries(&self) -> EngineResult<Vec<FamilySummary>> {
        match self.request(Request::ListFamilies).await? {
            Response::Families(list) => Ok(list),
            other => Err(EngineError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Reads a family's current state on this device.
    pub fn family(&self, family: FamilyId) -> EngineResult<Family> {
        self.check_family(family)?;
        Ok(self
            .parts()?
            .host
            .read_family(family, |fd| fd.view().clone())?)
    }

    /// Edits a family: the edit is durable here when this returns, and queued.
    pub fn edit_family<T>(
        &self,
        family: FamilyId,
        edit: impl FnOnce(&mut FamilyDoc) -> Result<Edit<T>, DocError>,
    ) -> EngineResult<T> {
        self.check_family(family)?;
        let p = self.parts()?;
        let value = p.host.edit_family(family, edit)?;
        p.driver.local_change();
        Ok(value)
    }

    fn check_family(&self, family: FamilyId) -> EngineResult<()> {
        if self.families()?.contains(&family) {
            Ok(())
        } else {
            Err(EngineError::UnknownFamily(family))
        }
    }

    /// Edits this user's personal document (nickname, mood, settings): durable here
    /// when this returns, and queued.
    pub fn edit_profile<T>(
        &self,
        edit: impl FnOnce(&mut crate::PersonalDoc) -> Result<Edit<T>, DocError>,
    ) -> EngineResult<T> {
        let p = self.parts()?;
        let value = p.host.edit_personal(p.account.personal_doc, edit)?;
        p.driver.local_change();
        Ok(value)
    }

    /// Sets the profile photo: prepares it on this device
    /// ([`crate::photo::prepare_avatar`]: upright, the centre cropped square, a JPEG of
    /// at most 512 px and 150 KB with no metadata), keeps it as a personal blob queued
    /// for upload (`?owner=me`: readable by everyone who shares a family with you, in
    /// families joined later too) and writes its hash into the personal document.
    /// Durable here when this returns; `sync` sends both. Returns the blob's hash.
    pub fn set_avatar(&self, original: &[u8], now_ms: i64) -> EngineResult<BlobHash> {
        let prepared = crate::photo::prepare_avatar(original)?;
        let p = self.parts()?;
        let hash = p
            .blobs
            .add_local(&prepared.jpeg, prepared.mime, BlobOwner::Me)?;
        self.edit_profile(|pd| pd.set_avatar(Some(hash), now_ms))?;
        Ok(hash)
    }

    /// Goes back to the default avatar.
    pub fn clear_avatar(&self, now_ms: i64) -> EngineResult<()> {
        self.edit_profile(|pd| pd.set_avatar(None, now_ms))
    }

    /// The profile of `user` — this user's own, or a family member's (read-only) — as
    /// this device has it. [`EngineError::UnknownProfile`] if it is not here.
    pub fn profile(&self, user: UserId) -> EngineResult<Personal> {
        let p = self.parts()?;
        if user == p.account.user {
            p.host.remember_personal_doc(user, p.account.personal_doc)?;
        }
        p.host
            .profile(user)?
            .ok_or(EngineError::UnknownProfile(user))
    }

    /// The profile photo of `user` (see [`profile`](Self::profile)): `None` for the
    /// default avatar, else the JPEG from the cache, or downloaded and verified.
    pub async fn avatar(&self, user: UserId) -> EngineResult<Option<Vec<u8>>> {
        let Some(hex) = self.profile(user)?.avatar else {
            return Ok(None);
        };
        let hash: BlobHash = hex
            .parse()
            .map_err(|e| EngineError::Unexpected(format!("avatar blob: {e}")))?;
        Ok(Some(self.blob(hash, "image/jpeg").await?))
    }

    /// How many local changes wait for the relay.
    pub fn pending(&self) -> EngineResult<u64> {
        Ok(self.store.pending_count()?)
    }

    // ----- invites -----

    /// Invites the person with exactly this email to `family` as `name` (호칭).
    pub async fn invite(
        &self,
        family: FamilyId,
        email: &str,
        name: &str,
    ) -> EngineResult<InviteInfo> {
        let email = email.to_owned();
        let name = name.to_owned();
        let answer = self
            .online(async |d| {
                let found = d.request(Request::LookupUser { email }).await?;
                let Response::UserFound(Some(entry)) = found else {
                    return Err(SyncError::Refused {
                        code: doran_protocol::ErrorCode::NotFound,
                        message: "no one with that exact email".into(),
                    });
                };
                d.send_invite(family, entry.user, &name).await
            })
            .await??;
        match answer {
            Response::InviteSent(info) => Ok(info),
            other => Err(EngineError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Invitations addressed to this user.
    pub async fn invites(&self) -> EngineResult<Vec<InviteInfo>> {
        match self.request(Request::ListInvites).await? {
            Response::Invites(list) => Ok(list),
            other => Err(EngineError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Accepts or rejects an invitation. On accept, the family is synced and this
    /// user's member entry (with the proposed 호칭) is written into its document.
    pub async fn answer_invite(
        &self,
        invite: InviteId,
        accept: bool,
        now_ms: i64,
    ) -> EngineResult<Option<FamilyId>> {
        let answer = self
            .online(async |d| d.answer_invite(invite, accept).await)
            .await??;
        let Response::InviteAnswered {
            family: Some(summary),
            ..
        } = answer
        else {
            return Ok(None);
        };
        if !accept {
            return Ok(None);
        }
        let p = self.parts()?;
        p.host.remember_family(summary.family, true)?;
        self.sync(NETWORK_TIMEOUT).await?;
        let me = p.account.user;
        if let Some(entry) = summary.member(&me) {
            let name = entry.name.clone();
            self.edit_family(summary.family, |fd| fd.add_member(me, &name, now_ms))?;
            self.sync(NETWORK_TIMEOUT).await?;
        }
        Ok(Some(summary.family))
    }

    // ----- blobs -----

    /// Keeps `bytes` as a blob of `family` on this device and queues its upload.
    pub fn add_blob(&self, family: FamilyId, bytes: &[u8], mime: &str) -> EngineResult<BlobHash> {
        Ok(self
            .parts()?
            .blobs
            .add_local(bytes, mime, BlobOwner::Family(family))?)
    }

    /// A blob's bytes: from the cache, or downloaded and verified.
    pub async fn blob(&self, hash: BlobHash, mime: &str) -> EngineResult<Vec<u8>> {
        let p = self.parts()?;
        let path = p.blobs.fetch(p.driver.blobs(), hash, mime).await?;
        Ok(std::fs::read(path)?)
    }

    // ----- voice messages -----

    /// Adds a voice message: converts the recording (WebM/Opus, Ogg/Opus, M4A/AAC,
    /// WAV or MP3) to MP3 on this device, keeps the MP3 as a blob queued for upload,
    /// and adds the entry with its duration and waveform to the family. Returns the
    /// voice message's id and what the conversion measured.
    pub fn add_voice(
        &self,
        family: FamilyId,
        album: &str,
        recording: &[u8],
        title: &str,
        now_ms: i64,
    ) -> EngineResult<(String, doran_audio::Converted)> {
        self.check_family(family)?;
        let title = crate::validate::text(
            crate::validate::Field::VoiceTitle,
            title,
            crate::validate::VOICE_TITLE,
        )?;
        let opts = doran_audio::ConvertOptions {
            title: Some(title.clone()),
            artist: Some(self.account()?.nickname.clone()).filter(|n| !n.is_empty()),
            ..Default::default()
        };
        let (mp3, converted) = doran_audio::convert_bytes(recording, &opts)?;
        let blob = self.add_blob(family, &mp3, "audio/mpeg")?;
        let input = crate::VoiceInput {
            title,
            blob,
            size: mp3.len() as u64,
            duration_ms: converted.duration_ms,
            peaks: converted.peaks.clone(),
        };
        let id = self.edit_family(family, |fd| fd.add_voice(album, input, now_ms))?;
        Ok((id, converted))
    }

    /// A voice message's MP3: from the cache, or downloaded and verified.
    pub async fn voice_mp3(&self, family: FamilyId, voice: &str) -> EngineResult<Vec<u8>> {
        let view = self.family(family)?;
        let entry = view.voices.get(voice).ok_or_else(|| DocError::NotFound {
            kind: "voice message",
            id: voice.to_owned(),
        })?;
        let hash: BlobHash = entry
            .blob
            .parse()
            .map_err(|e| EngineError::Unexpected(format!("voice blob: {e}")))?;
        self.blob(hash, "audio/mpeg").await
    }

    // ----- photos -----

    /// Adds a photo to an album: prepares it on this device ([`crate::photo::prepare`]:
    /// EXIF orientation applied, a JPEG display copy ≤ 1920 px and ≈ 0.9 MB and a
    /// ~320 px thumbnail, no location or other metadata), keeps both as blobs queued for
    /// upload, and adds the entry to the family. Returns the photo's id.
    ///
    /// The caption and the album are checked before the photo is prepared, so a refused
    /// edit leaves no blobs behind.
    pub fn add_photo(
        &self,
        family: FamilyId,
        album: &str,
        original: &[u8],
        caption: &str,
        now_ms: i64,
    ) -> EngineResult<String> {
        self.check_family(family)?;
        let caption = crate::validate::text(
            crate::validate::Field::PhotoCaption,
            caption,
            crate::validate::PHOTO_CAPTION,
        )?;
        if !self.family(family)?.albums.contains_key(album) {
            return Err(DocError::NotFound {
                kind: "album",
                id: album.to_owned(),
            }
            .into());
        }
        let prepared = crate::photo::prepare(original)?;
        let blob = self.add_blob(family, &prepared.display, prepared.mime)?;
        let thumb = self.add_blob(family, &prepared.thumb, prepared.mime)?;
        let input = crate::PhotoInput {
            blob,
            thumb,
            mime: prepared.mime.to_owned(),
            size: prepared.display.len() as u64,
            width: prepared.width,
            height: prepared.height,
            taken_at: prepared.taken_at,
            caption,
        };
        self.edit_family(family, |fd| fd.add_photo(album, input, now_ms))
    }

    /// A photo's display copy (or its thumbnail): from the cache, or downloaded and
    /// verified against its hash.
    pub async fn photo_bytes(
        &self,
        family: FamilyId,
        photo: &str,
        thumbnail: bool,
    ) -> EngineResult<Vec<u8>> {
        let view = self.family(family)?;
        let entry = view.photos.get(photo).ok_or_else(|| DocError::NotFound {
            kind: "photo",
            id: photo.to_owned(),
        })?;
        let (hex, mime) = if thumbnail {
            (&entry.thumb, "image/jpeg")
        } else {
            (&entry.blob, entry.mime.as_str())
        };
        let hash: BlobHash = hex
            .parse()
            .map_err(|e| EngineError::Unexpected(format!("photo blob: {e}")))?;
        self.blob(hash, mime).await
    }

    // ----- notifications -----

    /// The notifications this device kept, newest first.
    pub fn notifications(&self) -> EngineResult<Vec<StoredNotification>> {
        Ok(match self.store.get_meta(NOTIFICATIONS_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => Vec::new(),
        })
    }

    fn record_events(
        &self,
        events: &mut tokio::sync::broadcast::Receiver<SyncEvent>,
    ) -> EngineResult<()> {
        while let Ok(event) = events.try_recv() {
            for (family, view, note) in self.notes_of(&event)? {
                self.keep_notification(family, &view, &note)?;
            }
        }
        Ok(())
    }

    /// The bell notifications an event makes for this user.
    fn notes_of(&self, event: &SyncEvent) -> EngineResult<Vec<(FamilyId, Family, Notification)>> {
        let SyncEvent::DocChanged {
            doc, new_activity, ..
        } = event
        else {
            return Ok(Vec::new());
        };
        let family = FamilyId(doc.0);
        if new_activity.is_empty() || !self.families()?.contains(&family) {
            return Ok(Vec::new());
        }
        let view = self.family(family)?;
        let me = self.account()?.user.to_hex();
        Ok(views::notifications(new_activity, &me, true, true)
            .into_iter()
            .map(|n| (family, view.clone(), n))
            .collect())
    }

    fn keep_notification(
        &self,
        family: FamilyId,
        view: &Family,
        note: &Notification,
    ) -> EngineResult<()> {
        let text = note.latest.text(view, crate::time_util::Lang::Ko);
        let mut all = self.notifications()?;
        if all.iter().any(|n| n.id == note.latest.id) {
            return Ok(());
        }
        all.insert(
            0,
            StoredNotification {
                id: note.latest.id.clone(),
                family: family.to_hex(),
                actor: note.latest.actor.clone(),
                at: note.latest.at,
                count: note.count,
                text,
            },
        );
        all.truncate(KEEP_NOTIFICATIONS);
        let bytes = serde_json::to_vec(&all).map_err(|e| EngineError::Unexpected(e.to_string()))?;
        self.store.set_meta(NOTIFICATIONS_KEY, &bytes)?;
        Ok(())
    }

    /// The user id of this device's account, for filtering.
    pub fn me(&self) -> EngineResult<UserId> {
        Ok(self.account()?.user)
    }
}

/// A notification as a device keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredNotification {
    /// The activity item's stable id.
    pub id: String,
    /// The family (hex).
    pub family: String,
    /// Who did it (user hex).
    pub actor: String,
    /// When (ms).
    pub at: i64,
    /// How many items of the burst it stands for.
    pub count: usize,
    /// The sentence the bell shows (Korean).
    pub text: String,
}
