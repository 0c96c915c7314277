//! `doran family …`, `doran invite …`, `doran presence`.

use doran_device::Device;

use super::{CmdResult, confirm, saved};
use crate::{
    args::{FamilyCmd, InviteCmd},
    print::Out,
};

pub async fn family(device: &Device, out: Out, c: FamilyCmd) -> CmdResult {
    match c {
        FamilyCmd::Create {
            title,
            my_name,
            clear,
            sealed: _,
        } => {
            let f = device.create_family_with(&title, &my_name, !clear).await?;
            out.view(&serde_json::json!({ "id": f, "title": title }), || {
                vec![f.clone()]
            });
        }
        FamilyCmd::List => {
            let list = device.families().await?;
            out.view(&list, || {
                list.iter()
                    .map(|f| {
                        format!(
                            "{}  {}  ({} members){}",
                            f.family,
                            f.title,
                            f.members,
                            if f.member {
                                ""
                            } else {
                                "  (no longer a member)"
                            }
                        )
                    })
                    .collect()
            });
        }
        FamilyCmd::Show { family } => {
            let v = device.family(&family).await?;
            out.view(&v, || {
                let mut lines = vec![format!("{}  ({})", v.title, v.family)];
                if !v.member {
                    lines.push("  you are no longer a member: read-only".into());
                }
                for m in &v.members {
                    lines.push(
                        format!(
                            "  {}  {}{}  {}{}",
                            m.name,
                            if m.role == doran_device::core::model::Role::Host {
                                "host"
                            } else {
                                "member"
                            },
                            m.mood
                                .as_ref()
                                .map(|m| format!(" {}", m.emoji))
                                .unwrap_or_default(),
                            m.user,
                            m.status
                                .as_ref()
                                .map(|s| format!("  · {s}"))
                                .unwrap_or_default()
                        ) + if m.verified { "  · verified" } else { "" },
                    );
                }
                lines
            });
        }
        FamilyCmd::Seal { family } => {
            let what = if device.seal_family(&family).await? {
                "sealed"
            } else {
                "already sealed"
            };
            // Saved on this device; `doran sync` sends it.
            out.done(what, &family);
        }
        FamilyCmd::Rename { family, title } => {
            device.rename_family(&family, &title).await?;
            saved(device, out).await?;
        }
        FamilyCmd::SetName { family, name } => {
            device.set_my_name(&family, &name).await?;
            saved(device, out).await?;
        }
        FamilyCmd::Leave { family } => {
            device.leave_family(&family).await?;
            out.done("left", &family);
        }
        FamilyCmd::Delete { family, yes } => {
            confirm(
                yes,
                &format!("Delete the family {family} with all its photos, voices and missions?"),
            )?;
            device.delete_family(&family).await?;
            out.done("deleted", &family);
        }
        FamilyCmd::Remove { family, member } => {
            device.remove_member(&family, &member).await?;
            saved(device, out).await?;
        }
        FamilyCmd::SafetyCode { family, member } => {
            let v = device.safety_code(&family, &member).await?;
            out.view(&v, || safety_lines(&v));
        }
        FamilyCmd::Verify {
            family,
            member,
            code,
        } => {
            let v = device
                .verify_safety_code(&family, &member, &code.join(" "))
                .await?;
            out.view(&v, || safety_lines(&v));
        }
    }
    Ok(())
}

pub async fn invite(device: &Device, out: Out, c: InviteCmd) -> CmdResult {
    match c {
        InviteCmd::Send {
            family,
            email,
            name,
        } => {
            let v = device.invite(&family, &email, &name).await?;
            out.view(&v, || vec![v.invite.clone()]);
        }
        InviteCmd::List { sent } => {
            let v = device.invites().await?;
            if sent {
                out.view(&v, || {
                    let mut lines: Vec<String> = v
                        .received
                        .iter()
                        .map(|i| format!("{}  {}", i.invite, i.text))
                        .collect();
                    lines.extend(v.sent.iter().map(|i| format!("{}  {}", i.invite, i.text)));
                    lines
                });
            } else {
                out.view(&v.received, || {
                    v.received
                        .iter()
                        .map(|i| format!("{}  {}", i.invite, i.text))
                        .collect()
                });
            }
        }
        InviteCmd::Accept { invite, name } => {
            let family = match name {
                Some(name) => device.accept_invite_as(&invite, &name).await?,
                None => device
                    .answer_invite(&invite, true)
                    .await?
                    .unwrap_or_default(),
            };
            out.view(
                &serde_json::json!({ "accepted": invite, "family": family }),
                || vec![family.clone()],
            );
        }
        InviteCmd::Reject { invite } => {
            device.answer_invite(&invite, false).await?;
            out.done("rejected", &invite);
        }
        InviteCmd::Withdraw { invite } => {
            device.withdraw_invite(&invite).await?;
            out.done("withdrew", &invite);
        }
    }
    Ok(())
}

pub async fn presence(device: &Device, out: Out, family: &str) -> CmdResult {
    let list = device.presence(family).await?;
    out.view(&list, || {
        list.iter()
            .map(|p| format!("{}  {}", p.name, p.status.as_deref().unwrap_or("-")))
            .collect()
    });
    Ok(())
}

/// A safety code in three rows of four groups, as the apps show it.
fn safety_lines(v: &doran_device::screens::SafetyCodeView) -> Vec<String> {
    let mut lines = vec![format!(
        "{} ({}){}",
        v.name,
        v.user,
        if v.verified { "  · verified" } else { "" }
    )];
    lines.extend(v.groups.chunks(4).map(|row| format!("  {}", row.join(" "))));
    lines
}
