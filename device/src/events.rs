//! Live events from a [`Device`](crate::Device): what changed, as it happens.
//!
//! [`Device::subscribe`](crate::Device::subscribe) returns a [`Subscription`] to read
//! events from (`next().await`); [`Device::listen`](crate::Device::listen) calls an
//! [`EventListener`] for each instead (bindings and the desktop shell forward them to
//! their UI). Dropping either unsubscribes.

use std::sync::Arc;

use serde::Serialize;
use tokio::{sync::broadcast, task::JoinHandle};

use crate::{
    error::Error,
    screens::{InviteView, NotificationView, PendingLinkView, SyncView},
};

/// Which part of a family changed, so a screen refreshes only what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The family itself (its title).
    Family,
    /// Members and their 호칭.
    Members,
    /// Missions and their ticks.
    Missions,
    /// The calendar.
    Calendar,
    /// Albums, photos, likes and comments.
    Gallery,
    /// Voice albums and messages.
    Voice,
}

impl Part {
    /// The part a document collection belongs to.
    pub fn of_collection(collection: &str) -> Option<Part> {
        Some(match collection {
            "name" | "family" => Part::Family,
            "members" => Part::Members,
            "missions" => Part::Missions,
            "calendar" => Part::Calendar,
            "albums" | "photos" => Part::Gallery,
            "voice_albums" | "voices" => Part::Voice,
            _ => return None,
        })
    }

    /// The parts these touched entities belong to, each once, in order.
    pub fn of_touched(touched: &[doran_client_core::Touched]) -> Vec<Part> {
        let parts: std::collections::BTreeSet<Part> = touched
            .iter()
            .filter_map(|t| match t {
                doran_client_core::Touched::Root(_) => Some(Part::Family),
                doran_client_core::Touched::Entity(c, _) => Part::of_collection(c),
            })
            .collect();
        parts.into_iter().collect()
    }
}

/// Why this device no longer belongs to a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedReason {
    /// The host removed the user.
    Removed,
    /// The host deleted the family.
    Deleted,
}

/// Something that changed. Ids are hex strings, as in the views.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceEvent {
    /// A family's content changed (incoming changes, or an edit on this device).
    FamilyChanged {
        /// The family.
        family: String,
        /// What changed.
        parts: Vec<Part>,
        /// Whether the change was made on this device.
        local: bool,
    },
    /// An edit made on this device is saved (it survives a crash) and queued.
    Saved {
        /// The family it was made in (`None`: the profile).
        family: Option<String>,
        /// Changes waiting for the relay.
        pending: u64,
    },
    /// The connection status or the number of waiting changes changed.
    Sync(SyncView),
    /// A notification was added to the bell.
    Notification(NotificationView),
    /// Someone invited this user.
    InviteReceived(InviteView),
    /// An invite this user's family sent was answered.
    InviteAnswered {
        /// The invite.
        invite: String,
        /// Its family.
        family: String,
        /// Who answered.
        invitee: String,
        /// Accepted (수락) or rejected (거절).
        accepted: bool,
    },
    /// An invite was withdrawn (or its family deleted).
    InviteWithdrawn {
        /// The invite.
        invite: String,
    },
    /// This user joined a family (accepted here or on another device).
    FamilyJoined {
        /// The family.
        family: String,
    },
    /// The family's members changed (someone joined, left or was removed).
    MembersChanged {
        /// The family.
        family: String,
    },
    /// This user is no longer a member of a family. Its copy on this device stays
    /// readable; edits are refused.
    RemovedFromFamily {
        /// The family.
        family: String,
        /// Its title, as last known.
        title: String,
        /// Removed by the host, or the family was deleted.
        reason: RemovedReason,
    },
    /// A family member came online or went offline.
    PresenceChanged {
        /// The member.
        user: String,
        /// Connected now.
        online: bool,
        /// When last connected (ms).
        last_seen: Option<i64>,
    },
    /// A member's profile (nickname, avatar, mood) changed.
    ProfileChanged {
        /// The user.
        user: String,
    },
    /// A photo, thumbnail, avatar or voice message is now on this device (a
    /// placeholder can fill in).
    BlobArrived {
        /// The blob (blake3 hex), as the views name it.
        hash: String,
    },
    /// The user's devices changed (one added or revoked).
    DevicesChanged,
    /// A new device asks to join this account (also on connect while it waits): ask
    /// the person to confirm or reject it ([`Device::confirm_link`](crate::Device::confirm_link)).
    LinkRequested(PendingLinkView),
    /// A link request was confirmed or rejected (here or on another device): drop its
    /// prompt.
    LinkAnswered {
        /// The request.
        link: String,
        /// Whether the device was added.
        accepted: bool,
    },
    /// This new device presented its link code and waits for the account's other
    /// device to confirm it; show the fingerprint to compare.
    LinkWaiting {
        /// This device's key fingerprint, as the other device shows it.
        fingerprint: String,
    },
    /// This device was signed out by the relay (revoked from another device): the
    /// account is gone from it; the app shows its onboarding.
    SignedOut {
        /// Why, for the user.
        message: String,
    },
    /// Events were missed (the app was too slow to read them): refresh every screen.
    Resync,
    /// Something the user should know failed (a change the relay refused, a full
    /// quota); syncing goes on.
    Error(Error),
}

/// Events, read one at a time. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<DeviceEvent>,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<DeviceEvent>) -> Self {
        Subscription { rx }
    }

    /// The next event; `None` once the device is closed. If the reader fell behind and
    /// events were dropped, it gets [`DeviceEvent::Resync`] first.
    pub async fn next(&mut self) -> Option<DeviceEvent> {
        match self.rx.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(DeviceEvent::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<DeviceEvent> {
        match self.rx.try_recv() {
            Ok(event) => Some(event),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(DeviceEvent::Resync),
            Err(_) => None,
        }
    }
}

/// Receives a device's events (the desktop shell and the mobile bindings forward them
/// to their UI). Called from a background task, one event at a time, in order.
pub trait EventListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: DeviceEvent);
}

/// Keeps an [`EventListener`] subscribed; dropping it (or [`cancel`](Self::cancel))
/// unsubscribes.
#[derive(Debug)]
pub struct ListenerHandle {
    task: JoinHandle<()>,
}

impl ListenerHandle {
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Handle,
        mut sub: Subscription,
        listener: Arc<dyn EventListener>,
    ) -> Self {
        let task = runtime.spawn(async move {
            while let Some(event) = sub.next().await {
                // A listener that panics (a foreign one whose exception the FFI turns
                // into a panic) loses that event, not the rest of the subscription.
                let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    listener.on_event(event);
                }));
                if delivered.is_err() {
                    tracing::error!("an event listener failed; it keeps receiving events");
                }
            }
        });
        ListenerHandle { task }
    }

    pub(crate) fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }

    /// Unsubscribes now.
    pub fn cancel(&self) {
        self.task.abort();
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
