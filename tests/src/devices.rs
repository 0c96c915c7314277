//! Devices driven through the `Device` facade: open one, wait for an event, wait
//! until it is up to date — with one deadline, so a hang fails instead of stalling.

use std::{path::Path, time::Duration};

use doran_device::{
    Device, DeviceEvent, DeviceOptions, Subscription, core::sync::SyncStatus, screens::AccountView,
};

/// How long a test waits for anything a device should do.
pub const WAIT: Duration = Duration::from_secs(30);

/// Opens the device at `home` with the default options.
pub async fn open(home: &Path) -> Device {
    Device::open(home, DeviceOptions::default())
        .await
        .expect("the device opens")
}

/// Waits for the first event `pick` accepts, failing after [`WAIT`].
pub async fn wait_for<T>(
    events: &mut Subscription,
    what: &str,
    mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            if let Some(v) = pick(&event) {
                return Some(v);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(v)) => v,
        Ok(None) => panic!("the device closed before {what}"),
        Err(_) => panic!("no {what} within {WAIT:?}"),
    }
}

/// Waits until the device says it is up to date with nothing pending.
pub async fn up_to_date(device: &Device, events: &mut Subscription) {
    if device.sync_state().status == SyncStatus::UpToDate && device.sync_state().pending == 0 {
        return;
    }
    wait_for(events, "up to date", |e| match e {
        DeviceEvent::Sync(s) if s.status == SyncStatus::UpToDate && s.pending == 0 => Some(()),
        _ => None,
    })
    .await;
}

/// Links `new` (a device with no account) to the account signed in on `first`, with
/// the relay at `server`, as a person does on two screens: a code from `first`, typed
/// on `new`, which waits; `first` is asked, both show the same fingerprint, and
/// `first` confirms. Returns the new device's account.
pub async fn link_and_confirm(first: &Device, new: &Device, server: &str) -> AccountView {
    let mut asked = first.subscribe();
    let mut waiting = new.subscribe();
    let code = first.issue_link_code().await.expect("a link code");
    let confirm = async {
        let request = wait_for(&mut asked, "a link request", |e| match e {
            DeviceEvent::LinkRequested(l) => Some(l.clone()),
            _ => None,
        })
        .await;
        let shown = wait_for(&mut waiting, "the new device waiting", |e| match e {
            DeviceEvent::LinkWaiting { fingerprint } => Some(fingerprint.clone()),
            _ => None,
        })
        .await;
        assert_eq!(shown, request.fingerprint, "both screens show one key");
        first
            .confirm_link(&request.link, true)
            .await
            .expect("confirmed");
    };
    let (linked, ()) = tokio::join!(new.link_device(server, &code.code), confirm);
    linked.expect("linked once confirmed")
}
