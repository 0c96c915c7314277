//! `doran account …` and `doran device …`.

use doran_device::{Device, DeviceEvent};

use super::{CmdResult, confirm};
use crate::{
    args::{AccountCmd, DeviceCmd},
    print::Out,
};

pub async fn account(device: &Device, out: Out, c: AccountCmd) -> CmdResult {
    match c {
        AccountCmd::Create(a) => {
            let acc = device.create_account(&a.server, &a.email, &a.name).await?;
            first_sync(device).await;
            out.view(&acc, || vec![acc.user.clone()]);
        }
        AccountCmd::Show => {
            let Some(acc) = device.account().await? else {
                return Err(doran_device::Error::code(
                    doran_device::ErrorCode::NoAccount,
                    device.language(),
                )
                .into());
            };
            let families = device.families().await?;
            let pending = device.pending().await?;
            let mut v = serde_json::to_value(&acc).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "families".into(),
                    serde_json::to_value(&families).unwrap_or_default(),
                );
                obj.insert("pending".into(), pending.into());
            }
            out.view(&v, || {
                vec![
                    format!("user      {}", acc.user),
                    format!("device    {}", acc.device),
                    format!("email     {}", acc.email),
                    format!("nickname  {}", acc.nickname),
                    format!("server    {}", acc.server),
                    format!(
                        "families  {}",
                        families
                            .iter()
                            .map(|f| format!("{} ({})", f.family, f.title))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("pending   {pending}"),
                ]
            });
        }
        AccountCmd::RecoveryPhrase => {
            let phrase = device.recovery_phrase()?;
            out.view(&serde_json::json!({ "phrase": phrase }), || {
                vec![phrase.clone()]
            });
        }
        AccountCmd::Restore { server, phrase } => {
            let acc = device.restore_account(&server, &phrase).await?;
            first_sync(device).await;
            out.view(&acc, || vec![acc.user.clone()]);
        }
        AccountCmd::SignOut => {
            device.sign_out().await?;
            out.done("signed out", "");
        }
    }
    Ok(())
}

/// A new device's first sync, as the command that made it ends: its profile reaches
/// the relay, and so does its key package — a member's device inviting this user (or
/// seeing this device linked) lets it into sealed families at once, while this
/// command line is not running. The account is made whatever this finds; what did
/// not go now goes with the next `doran sync`.
async fn first_sync(device: &Device) {
    // Not an error of the command: the account exists either way.
    let _ = device.sync_now(FIRST_SYNC).await;
}

/// How long a new device's first sync may take.
const FIRST_SYNC: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn device(device: &Device, out: Out, c: DeviceCmd) -> CmdResult {
    match c {
        DeviceCmd::LinkCode => {
            let code = device.issue_link_code().await?;
            out.view(&code, || vec![code.code.clone()]);
        }
        DeviceCmd::Link { server, code } => {
            // The relay holds the link until another device of the account confirms
            // it: say so while waiting, with the fingerprint to compare.
            let mut events = device.subscribe();
            let told = tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    if let DeviceEvent::LinkWaiting { fingerprint } = event {
                        eprintln!(
                            "waiting for confirmation on your other device \
                             (`doran device links` there; this device is {fingerprint})…"
                        );
                        return;
                    }
                }
            });
            let linked = device.link_device(&server, &code).await;
            told.abort();
            let acc = linked?;
            first_sync(device).await;
            out.view(&acc, || vec![acc.device.clone()]);
        }
        DeviceCmd::Links => {
            let list = device.pending_links().await?;
            out.view(&list, || {
                list.iter()
                    .map(|l| format!("{}  {}  key {}", l.link, l.name, l.fingerprint))
                    .collect()
            });
        }
        DeviceCmd::Confirm { link, reject } => {
            device.confirm_link(&link, !reject).await?;
            out.done(if reject { "rejected" } else { "confirmed" }, &link);
        }
        DeviceCmd::List => {
            let list = device.devices().await?;
            out.view(&list, || {
                list.iter()
                    .map(|d| {
                        format!(
                            "{}  {}{}{}{}",
                            d.device,
                            d.name,
                            if d.this_device { "  (this device)" } else { "" },
                            if d.online { "  online" } else { "" },
                            if d.revoked_at.is_some() {
                                "  (revoked)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect()
            });
        }
        DeviceCmd::Revoke { device: id, yes } => {
            confirm(
                yes,
                &format!("Revoke device {id}? It will no longer sign in or sync."),
            )?;
            device.revoke_device(&id).await?;
            out.done("revoked", &id);
        }
    }
    Ok(())
}
