//! Live events: [`EventListener`], implemented by the app, receives the facade's
//! [`DeviceEvent`]s from [`Device::listen`] until the returned [`ListenerHandle`] is
//! cancelled or dropped.

use std::sync::Arc;

use doran_device::events::{self as facade};

use crate::{
    account::PendingLinkView, device::Device, error::DoranError, invites::InviteView,
    notifications::NotificationView, sync::SyncView,
};

/// Which part of a family changed, so a screen refreshes only what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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

impl From<facade::Part> for Part {
    fn from(p: facade::Part) -> Self {
        match p {
            facade::Part::Family => Part::Family,
            facade::Part::Members => Part::Members,
            facade::Part::Missions => Part::Missions,
            facade::Part::Calendar => Part::Calendar,
            facade::Part::Gallery => Part::Gallery,
            facade::Part::Voice => Part::Voice,
        }
    }
}

/// Why this device no longer belongs to a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RemovedReason {
    /// The host removed the user.
    Removed,
    /// The host deleted the family.
    Deleted,
}

/// Something that changed. Ids are hex strings, as in the views.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
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
    Sync {
        /// The new state.
        state: SyncView,
    },
    /// A notification was added to the bell.
    Notification {
        /// The notification.
        notification: NotificationView,
    },
    /// Someone invited this user.
    InviteReceived {
        /// The invite.
        invite: InviteView,
    },
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
        /// When last connected (Unix ms).
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
    /// A new device asks to join this account: ask the person to confirm or reject it.
    LinkRequested {
        /// The request.
        link: PendingLinkView,
    },
    /// A link request was confirmed or rejected: drop its prompt.
    LinkAnswered {
        /// The request.
        link: String,
        /// Whether the device was added.
        accepted: bool,
    },
    /// This new device waits for the account's other device to confirm it.
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
    /// Events were missed (the app was too slow to take them): refresh every screen.
    Resync,
    /// Something the user should know failed (a change the relay refused, a full
    /// quota); syncing goes on.
    Failed {
        /// What failed, with the message to show.
        error: DoranError,
    },
}

impl From<facade::DeviceEvent> for DeviceEvent {
    fn from(e: facade::DeviceEvent) -> Self {
        use facade::DeviceEvent as E;
        match e {
            E::FamilyChanged {
                family,
                parts,
                local,
            } => DeviceEvent::FamilyChanged {
                family,
                parts: parts.into_iter().map(Part::from).collect(),
                local,
            },
            E::Saved { family, pending } => DeviceEvent::Saved { family, pending },
            E::Sync(state) => DeviceEvent::Sync {
                state: state.into(),
            },
            E::Notification(n) => DeviceEvent::Notification {
                notification: n.into(),
            },
            E::InviteReceived(i) => DeviceEvent::InviteReceived { invite: i.into() },
            E::InviteAnswered {
                invite,
                family,
                invitee,
                accepted,
            } => DeviceEvent::InviteAnswered {
                invite,
                family,
                invitee,
                accepted,
            },
            E::InviteWithdrawn { invite } => DeviceEvent::InviteWithdrawn { invite },
            E::FamilyJoined { family } => DeviceEvent::FamilyJoined { family },
            E::MembersChanged { family } => DeviceEvent::MembersChanged { family },
            E::RemovedFromFamily {
                family,
                title,
                reason,
            } => DeviceEvent::RemovedFromFamily {
                family,
                title,
                reason: match reason {
                    facade::RemovedReason::Removed => RemovedReason::Removed,
                    facade::RemovedReason::Deleted => RemovedReason::Deleted,
                },
            },
            E::PresenceChanged {
                user,
                online,
                last_seen,
            } => DeviceEvent::PresenceChanged {
                user,
                online,
                last_seen,
            },
            E::ProfileChanged { user } => DeviceEvent::ProfileChanged { user },
            E::BlobArrived { hash } => DeviceEvent::BlobArrived { hash },
            E::DevicesChanged => DeviceEvent::DevicesChanged,
            E::LinkRequested(link) => DeviceEvent::LinkRequested { link: link.into() },
            E::LinkAnswered { link, accepted } => DeviceEvent::LinkAnswered { link, accepted },
            E::LinkWaiting { fingerprint } => DeviceEvent::LinkWaiting { fingerprint },
            E::SignedOut { message } => DeviceEvent::SignedOut { message },
            E::Resync => DeviceEvent::Resync,
            E::Error(error) => DeviceEvent::Failed {
                error: error.into(),
            },
        }
    }
}

/// Receives a device's events. Called on a background thread, one event at a time, in
/// order: hand the event to the UI thread and return (a slow listener delays the
/// next events, never the sync). Must not throw.
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: DeviceEvent);
}

/// The app's listener as the facade's.
struct Forward(Arc<dyn EventListener>);

impl facade::EventListener for Forward {
    fn on_event(&self, event: facade::DeviceEvent) {
        self.0.on_event(event.into());
    }
}

/// Keeps an [`EventListener`] subscribed: [`cancel`](Self::cancel) it, or drop it (in
/// Kotlin `close()` it; in Swift release it), to stop.
#[derive(Debug, uniffi::Object)]
pub struct ListenerHandle(facade::ListenerHandle);

#[uniffi::export]
impl ListenerHandle {
    /// Unsubscribes now.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

#[uniffi::export]
impl Device {
    /// Calls `listener` for every event from now on, until the handle is cancelled or
    /// dropped. Subscribe before the calls whose events matter (e.g. at start-up).
    pub fn listen(&self, listener: Arc<dyn EventListener>) -> Arc<ListenerHandle> {
        Arc::new(ListenerHandle(
            self.inner.listen(Arc::new(Forward(listener))),
        ))
    }
}
