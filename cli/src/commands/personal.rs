//! `doran profile …`, `doran notifications …`, `doran sync`, `doran watch`,
//! `doran export`.

use std::time::Duration;

use doran_device::{Device, DeviceEvent, ProfileChanges};

use super::{CmdError, CmdResult, on_off};
use crate::{
    args::{NotificationsCmd, ProfileCmd},
    print::Out,
};

pub async fn profile(device: &Device, out: Out, c: ProfileCmd) -> CmdResult {
    match c {
        ProfileCmd::Set {
            name,
            mood,
            avatar,
            no_avatar,
        } => {
            device
                .update_profile(ProfileChanges {
                    nickname: name,
                    mood,
                    avatar_file: avatar,
                    clear_avatar: no_avatar,
                })
                .await?;
            let p = device.profile(None).await?;
            if out.json {
                let mut v = serde_json::to_value(&p).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("saved".into(), true.into());
                    obj.insert("pending".into(), device.pending().await?.into());
                }
                println!("{v}");
            } else {
                if let Some(a) = &p.avatar {
                    println!("{a}");
                }
                eprintln!("saved on this device; `doran sync` sends it");
            }
        }
        ProfileCmd::Show { user } => {
            let p = device.profile(user.as_deref()).await?;
            out.view(&p, || {
                vec![
                    format!("user      {}", p.user),
                    format!("nickname  {}", p.nickname),
                    format!(
                        "avatar    {}",
                        p.avatar
                            .clone()
                            .unwrap_or_else(|| format!("default {}", p.default_avatar))
                    ),
                    format!(
                        "mood      {}",
                        p.mood
                            .as_ref()
                            .map_or("-".to_owned(), |m| format!("{} {}", m.emoji, m.label))
                    ),
                ]
            });
        }
        ProfileCmd::Avatar { user, out: path } => {
            let Some(file) = device.avatar_file(Some(&user)).await? else {
                return Err(CmdError::Local(format!(
                    "{user} has no profile photo (the default avatar)"
                )));
            };
            let bytes = std::fs::copy(&file, &path)?;
            out.view(&serde_json::json!({ "bytes": bytes }), || {
                vec![path.display().to_string()]
            });
        }
        ProfileCmd::Settings {
            language,
            family_news,
            reactions,
        } => {
            let mut s = device.settings().await?;
            let changed = language.is_some() || family_news.is_some() || reactions.is_some();
            if let Some(l) = language {
                s.language = l;
            }
            if let Some(v) = family_news {
                s.notify_family = on_off(&v)?;
            }
            if let Some(v) = reactions {
                s.notify_reactions = on_off(&v)?;
            }
            if changed {
                device.set_settings(s).await?;
            }
            let s = device.settings().await?;
            out.view(&s, || {
                vec![
                    format!("language      {}", s.language),
                    format!(
                        "family news   {}",
                        if s.notify_family { "on" } else { "off" }
                    ),
                    format!(
                        "reactions     {}",
                        if s.notify_reactions { "on" } else { "off" }
                    ),
                ]
            });
        }
    }
    Ok(())
}

pub async fn notifications(device: &Device, out: Out, c: NotificationsCmd) -> CmdResult {
    match c {
        NotificationsCmd::List => {
            let bell = device.notifications().await?;
            out.view(&bell, || {
                bell.items
                    .iter()
                    .map(|n| {
                        format!(
                            "{}{} · {}{}",
                            if n.read { "  " } else { "● " },
                            n.text,
                            n.ago,
                            n.invite
                                .as_ref()
                                .map(|i| format!("  (doran invite accept {i})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect()
            });
        }
        NotificationsCmd::Read { id } => {
            device.mark_notifications_read(id.as_deref()).await?;
            out.done("read", id.as_deref().unwrap_or("all"));
        }
        NotificationsCmd::Dismiss { id } => {
            device.dismiss_notification(&id).await?;
            out.done("dismissed", &id);
        }
    }
    Ok(())
}

pub async fn sync(device: &Device, out: Out, timeout: u64) -> CmdResult {
    let report = device.sync_now(Duration::from_secs(timeout)).await?;
    out.view(&report, || {
        vec![if report.up_to_date {
            "up to date".to_owned()
        } else {
            format!(
                "{} change(s) and {} file(s) still waiting",
                report.pending, report.pending_blobs
            )
        }]
    });
    Ok(())
}

/// Stays connected and prints notifications (every event, as JSON lines, with
/// `--json`) and errors (on stderr) until the device is signed out, its sync stops
/// for good (the error says why), or the process is stopped.
pub async fn watch(device: &Device, out: Out) -> CmdResult {
    let mut events = device.subscribe();
    device.start_sync();
    while let Some(event) = events.next().await {
        if out.json {
            if let Ok(line) = serde_json::to_string(&event) {
                println!("{line}");
            }
        } else if let DeviceEvent::Notification(n) = &event {
            println!("{}", crate::print::plain(&n.text));
        } else if let DeviceEvent::RemovedFromFamily { title, .. } = &event {
            println!("{}: you are no longer a member", crate::print::plain(title));
        } else if let DeviceEvent::Error(e) = &event {
            eprintln!("{}", crate::print::plain(&e.message));
        }
        if let DeviceEvent::SignedOut { message } = event {
            return Err(CmdError::Local(message));
        }
        if let Some(stopped) = device.sync_stopped() {
            return Err(stopped.into());
        }
    }
    Ok(())
}

pub async fn export(device: &Device, family: &str) -> CmdResult {
    let f = device.export(family).await?;
    match serde_json::to_string_pretty(&f) {
        Ok(s) => println!("{s}"),
        Err(e) => return Err(CmdError::Local(e.to_string())),
    }
    Ok(())
}
