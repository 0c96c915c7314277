//! `doran mission …`, `doran event …`, `doran badges`, `doran home`.

use doran_device::{
    Device, MissionChanges, MissionInput,
    core::{EventInput, EventPatch, views::MissionCard},
};

use super::{CmdResult, created, saved};
use crate::{
    args::{EventCmd, MissionCmd},
    print::Out,
};

/// "가족 사진 찍기  [아들✓ 엄마·]  완료"
fn card_line(m: &MissionCard) -> String {
    let ticks: Vec<String> = m
        .ticks
        .iter()
        .map(|t| format!("{}{}", t.name, if t.done_at.is_some() { "✓" } else { "·" }))
        .collect();
    format!(
        "{}  {}  [{}]{}{}",
        m.id,
        m.title,
        ticks.join(" "),
        m.due
            .as_ref()
            .map(|d| format!("  ~{d}"))
            .unwrap_or_default(),
        if m.completed_at.is_some() {
            "  완료"
        } else {
            ""
        }
    )
}

pub async fn mission(device: &Device, out: Out, c: MissionCmd) -> CmdResult {
    match c {
        MissionCmd::Add {
            family,
            title,
            members,
            due,
        } => {
            let input = MissionInput {
                title,
                participants: members,
                due,
            };
            let id = device.add_mission(&family, input).await?;
            created(device, out, &id).await
        }
        MissionCmd::Edit {
            family,
            mission,
            title,
            members,
            due,
            no_due,
        } => {
            let changes = MissionChanges {
                title,
                participants: (!members.is_empty()).then_some(members),
                due: if no_due { Some(None) } else { due.map(Some) },
            };
            device.edit_mission(&family, &mission, changes).await?;
            saved(device, out).await
        }
        MissionCmd::Done { family, mission } => {
            device.set_mission_done(&family, &mission, true).await?;
            saved(device, out).await
        }
        MissionCmd::Undone { family, mission } => {
            device.set_mission_done(&family, &mission, false).await?;
            saved(device, out).await
        }
        MissionCmd::List {
            family,
            past,
            month,
        } => {
            let v = device.missions(&family, month.as_deref()).await?;
            if past {
                out.view(&v.past, || v.past.iter().map(card_line).collect());
            } else {
                out.view(&v.month, || {
                    let d = &v.month;
                    let mut lines: Vec<String> = d.missions.iter().map(card_line).collect();
                    lines.push(format!(
                        "{}/{} · {}% · {}",
                        d.completed, d.total, d.rate, d.label
                    ));
                    lines
                });
            }
            Ok(())
        }
        MissionCmd::Delete { family, mission } => {
            device.delete_mission(&family, &mission).await?;
            saved(device, out).await
        }
    }
}

pub async fn event(device: &Device, out: Out, c: EventCmd) -> CmdResult {
    match c {
        EventCmd::Add {
            family,
            title,
            start,
            end,
            at,
            until,
            notes,
            color,
        } => {
            let input = EventInput {
                title,
                notes,
                start,
                end,
                start_time: at,
                end_time: until,
                color,
            };
            let id = device.add_event(&family, input).await?;
            created(device, out, &id).await
        }
        EventCmd::Edit {
            family,
            event,
            title,
            start,
            end,
            notes,
            color,
        } => {
            let patch = EventPatch {
                title,
                notes,
                start,
                end,
                color,
                ..EventPatch::default()
            };
            device.edit_event(&family, &event, patch).await?;
            saved(device, out).await
        }
        EventCmd::Delete { family, event } => {
            device.delete_event(&family, &event).await?;
            saved(device, out).await
        }
        EventCmd::List { family, month } => {
            let cal = device.calendar(&family, month.as_deref()).await?;
            out.view(&cal, || {
                cal.events
                    .iter()
                    .map(|e| {
                        format!(
                            "{}  {} – {}  {}  ({})",
                            e.id, e.event.start, e.event.end, e.event.title, e.owner_name
                        )
                    })
                    .collect()
            });
            Ok(())
        }
        EventCmd::Memories { family, month } => {
            let days = device.memories(&family, month.as_deref()).await?;
            out.view(&days, || {
                days.iter()
                    .map(|d| format!("{}  {} photo(s)", d.date, d.photos.len()))
                    .collect()
            });
            Ok(())
        }
    }
}

pub async fn badges(device: &Device, out: Out, family: &str) -> CmdResult {
    let board = device.badges(family).await?;
    out.view(&board, || {
        let mut lines: Vec<String> = board
            .family
            .iter()
            .map(|b| {
                format!(
                    "{} {} {}/{}  ({})",
                    if b.earned { "●" } else { "○" },
                    b.name,
                    b.progress,
                    b.goal,
                    b.rule
                )
            })
            .collect();
        for m in &board.members {
            let earned: Vec<&str> = m
                .badges
                .iter()
                .filter(|b| b.earned)
                .map(|b| b.name)
                .collect();
            lines.push(format!("  {}: {}", m.name, earned.join(", ")));
        }
        lines
    });
    Ok(())
}

pub async fn home(device: &Device, out: Out, family: &str) -> CmdResult {
    let h = device.home(family).await?;
    out.view(&h, || {
        let mut lines = vec![format!("{} — {}", h.family_name, h.warm_message)];
        lines.extend(h.members.iter().map(|m| {
            format!(
                "  {} {}{}",
                m.name,
                m.mood.as_ref().map_or("", |m| m.emoji),
                m.status
                    .as_ref()
                    .map(|s| format!("  · {s}"))
                    .unwrap_or_default()
            )
        }));
        if let Some(m) = &h.mission {
            lines.push(format!("mission: {}", card_line(m)));
        }
        lines.push(format!("this month: {}% · {}", h.month_rate, h.month_label));
        if let Some(b) = &h.badge {
            lines.push(format!("badge: {}", b.name));
        }
        if let Some(v) = &h.latest_voice {
            lines.push(v.headline.clone());
        }
        lines
    });
    Ok(())
}
