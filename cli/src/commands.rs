//! One function per command group: parse ids, call the engine, print.

use std::{path::Path, str::FromStr, time::Duration};

use doran_client_core::{
    EventInput, EventPatch,
    engine::{Engine, EngineError},
    model::{Family, Mood},
    time_util::{Lang, YearMonth, local_date, relative},
    views,
};
use doran_protocol::{
    FamilyId, InviteId, UserId,
    frame::{Request, Response},
};
use serde_json::{Value, json};
use time::UtcOffset;

use crate::{
    args::{
        AccountCmd, AlbumCmd, AudioCmd, Command, DeviceCmd, EventCmd, FamilyCmd, InviteCmd,
        MissionCmd, PhotoCmd, ProfileCmd, VoiceCmd,
    },
    print::Out,
};

/// A command's failure, shown on stderr.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// The viewer's UTC offset (the machine's, else Korea's).
fn offset() -> UtcOffset {
    UtcOffset::current_local_offset().unwrap_or(time::macros::offset!(+9))
}

fn parse<T: FromStr>(what: &str, s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.trim()
        .parse::<T>()
        .map_err(|e| format!("bad {what} {s:?}: {e}"))
}

fn family_id(s: &str) -> Result<FamilyId, String> {
    parse("family id", s)
}

/// Runs one command against the device at `home`.
pub async fn run(home: &Path, json: bool, command: Command) -> CmdResult {
    let out = Out { json };
    if let Command::Audio(AudioCmd::Convert { input, output }) = &command {
        return convert(out, input, output);
    }
    let mut engine = Engine::open(home)?;
    match command {
        Command::Account(c) => account(&mut engine, out, c).await,
        Command::Device(c) => device(&mut engine, out, c).await,
        Command::Family(c) => family(&engine, out, c).await,
        Command::Invite(c) => invite(&engine, out, c).await,
        Command::Mission(c) => mission(&engine, out, c),
        Command::Event(c) => event(&engine, out, c),
        Command::Album(AlbumCmd::Create { family, name }) => {
            let f = family_id(&family)?;
            let id = engine.edit_family(f, |fd| fd.create_album(&name, now_ms()))?;
            created(&engine, out, &id)
        }
        Command::Photo(c) => photo(&engine, out, c).await,
        Command::Voice(VoiceCmd::Add {
            family,
            album,
            file,
            title,
        }) => {
            let recording = std::fs::read(&file)?;
            let (id, converted) =
                engine.add_voice(family_id(&family)?, &album, &recording, &title, now_ms())?;
            let pending = engine.pending()?;
            if json {
                println!(
                    "{}",
                    json!({ "id": id, "duration_ms": converted.duration_ms, "saved": true, "pending": pending })
                );
            } else {
                println!("{id}");
                eprintln!(
                    "{} ms; saved on this device; {pending} change(s) queued for `doran sync`",
                    converted.duration_ms
                );
            }
            Ok(())
        }
        Command::Voice(VoiceCmd::Get {
            family,
            voice,
            out: path,
        }) => {
            let mp3 = engine.voice_mp3(family_id(&family)?, &voice).await?;
            std::fs::write(&path, &mp3)?;
            out.show(json!({ "bytes": mp3.len() }), || {
                vec![path.display().to_string()]
            });
            Ok(())
        }
        // Converting needs no account: handled before the device is opened.
        Command::Audio(AudioCmd::Convert { input, output }) => convert(out, &input, &output),
        Command::Voice(VoiceCmd::Album {
            family,
            name,
            cover,
        }) => {
            let f = family_id(&family)?;
            let id = engine.edit_family(f, |fd| fd.create_voice_album(&name, cover, now_ms()))?;
            created(&engine, out, &id)
        }
        Command::Badges { family } => badges(&engine, out, &family),
        Command::Home { family } => home_screen(&engine, out, &family),
        Command::Notifications => notifications(&engine, out),
        Command::Profile(c) => profile(&engine, out, c).await,
        Command::Sync { timeout } => {
            let pending = engine.sync(Duration::from_secs(timeout)).await?;
            out.show(
                json!({ "up_to_date": pending == 0, "pending": pending }),
                || {
                    vec![if pending == 0 {
                        "up to date".to_owned()
                    } else {
                        format!("{pending} change(s) still waiting")
                    }]
                },
            );
            Ok(())
        }
        Command::Watch => {
            engine
                .watch(|family, note| {
                    let line = note.latest.text(family, Lang::Ko);
                    if json {
                        println!("{}", json!({ "id": note.latest.id, "text": line, "count": note.count, "at": note.latest.at }));
                    } else {
                        println!("{line}");
                    }
                })
                .await?;
            Ok(())
        }
        Command::Export { family } => {
            let f = engine.family(family_id(&family)?)?;
            println!("{}", export(&f)?);
            Ok(())
        }
    }
}

fn created(engine: &Engine, out: Out, id: &str) -> CmdResult {
    out.created(id, engine.pending()?);
    Ok(())
}

fn saved(engine: &Engine, out: Out) -> CmdResult {
    out.saved(engine.pending()?);
    Ok(())
}

/// A user id, or `me`.
fn user_id(engine: &Engine, s: &str) -> Result<UserId, Box<dyn std::error::Error>> {
    if s.trim().eq_ignore_ascii_case("me") {
        Ok(engine.me()?)
    } else {
        Ok(parse("user id", s)?)
    }
}

async fn profile(engine: &Engine, out: Out, c: ProfileCmd) -> CmdResult {
    match c {
        ProfileCmd::Set {
            name,
            mood,
            avatar,
            no_avatar,
        } => {
            // Read and check everything before the first edit, so a bad argument
            // changes nothing.
            let mood: Option<Mood> = mood.map(|m| m.parse()).transpose()?;
            let photo = avatar.map(std::fs::read).transpose()?;
            if let Some(n) = name {
                engine.edit_profile(|p| p.set_nickname(&n, now_ms()))?;
            }
            if let Some(mood) = mood {
                engine.edit_profile(|p| p.set_mood(mood, now_ms()))?;
            }
            if let Some(photo) = photo {
                let hash = engine.set_avatar(&photo, now_ms())?;
                if out.json {
                    println!(
                        "{}",
                        json!({ "avatar": hash.to_hex(), "saved": true, "pending": engine.pending()? })
                    );
                    return Ok(());
                }
                println!("{hash}");
            } else if no_avatar {
                engine.clear_avatar(now_ms())?;
            }
            saved(engine, out)?;
        }
        ProfileCmd::Show { user } => {
            let user = match user {
                Some(u) => user_id(engine, &u)?,
                None => engine.me()?,
            };
            let p = engine.profile(user)?;
            let mood = p.mood.map(Mood::name);
            out.show(
                json!({
                    "user": p.user, "nickname": p.nickname, "avatar": p.avatar,
                    "default_avatar": p.default_avatar, "mood": mood, "mood_at": p.mood_at,
                }),
                || {
                    vec![
                        format!("user      {}", p.user),
                        format!("nickname  {}", p.nickname),
                        format!(
                            "avatar    {}",
                            p.avatar
                                .clone()
                                .unwrap_or_else(|| format!("default {}", p.default_avatar))
                        ),
                        format!("mood      {}", mood.unwrap_or("-")),
                    ]
                },
            );
        }
        ProfileCmd::Avatar { user, out: path } => {
            let user = user_id(engine, &user)?;
            let Some(jpeg) = engine.avatar(user).await? else {
                return Err(format!("{user} has no profile photo (the default avatar)").into());
            };
            std::fs::write(&path, &jpeg)?;
            out.show(json!({ "bytes": jpeg.len() }), || {
                vec![path.display().to_string()]
            });
        }
    }
    Ok(())
}

async fn account(engine: &mut Engine, out: Out, c: AccountCmd) -> CmdResult {
    match c {
        AccountCmd::Create(a) => {
            let acc = engine.create_account(&a.server, &a.email, &a.name).await?;
            out.id(
                &acc.user.to_hex(),
                json!({ "device": acc.device.to_hex(), "email": acc.email }),
            );
        }
        AccountCmd::Show => {
            let acc = engine.account()?;
            let families: Vec<String> = engine.families()?.iter().map(|f| f.to_hex()).collect();
            let pending = engine.pending()?;
            let v = json!({
                "user": acc.user.to_hex(), "device": acc.device.to_hex(), "email": acc.email,
                "nickname": acc.nickname, "server": acc.server, "families": families, "pending": pending,
                "has_recovery_key": acc.user_key.is_some(),
            });
            out.show(v, || {
                vec![
                    format!("user      {}", acc.user),
                    format!("device    {}", acc.device),
                    format!("email     {}", acc.email),
                    format!("server    {}", acc.server),
                    format!("families  {}", families.join(" ")),
                    format!("pending   {pending}"),
                ]
            });
        }
        AccountCmd::RecoveryPhrase => {
            let phrase = engine.account()?.recovery_phrase()?;
            out.show(json!({ "phrase": phrase }), || vec![phrase.clone()]);
        }
        AccountCmd::Restore { server, phrase } => {
            let acc = engine.restore_account(&server, &phrase).await?;
            out.id(&acc.user.to_hex(), json!({ "device": acc.device.to_hex() }));
        }
        AccountCmd::SignOut => {
            engine.sign_out()?;
            out.show(json!({ "signed_out": true }), || vec!["signed out".into()]);
        }
    }
    Ok(())
}

async fn device(engine: &mut Engine, out: Out, c: DeviceCmd) -> CmdResult {
    match c {
        DeviceCmd::LinkCode => match engine.request(Request::IssueLinkCode).await? {
            Response::LinkCode { code, expires_at } => {
                out.show(json!({ "code": code, "expires_at": expires_at }), || {
                    vec![code.clone()]
                });
            }
            other => return Err(EngineError::Unexpected(format!("{other:?}")).into()),
        },
        DeviceCmd::Link { server, code } => {
            let acc = engine.link_device(&server, &code).await?;
            out.id(&acc.device.to_hex(), json!({ "user": acc.user.to_hex() }));
        }
        DeviceCmd::List => match engine.request(Request::ListDevices).await? {
            Response::Devices(list) => {
                let v: Vec<Value> = list
                    .iter()
                    .map(|d| json!({ "device": d.device.to_hex(), "client": d.client, "online": d.online, "revoked": d.revoked_at.is_some() }))
                    .collect();
                out.show(Value::Array(v), || {
                    list.iter()
                        .map(|d| {
                            format!(
                                "{}  {}{}",
                                d.device,
                                d.client,
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
            other => return Err(EngineError::Unexpected(format!("{other:?}")).into()),
        },
    }
    Ok(())
}

async fn family(engine: &Engine, out: Out, c: FamilyCmd) -> CmdResult {
    match c {
        FamilyCmd::Create { title, my_name } => {
            let f = engine.create_family(&title, &my_name, now_ms()).await?;
            out.id(&f.to_hex(), json!({ "title": title }));
        }
        FamilyCmd::List => {
            let mut rows = Vec::new();
            for f in engine.families()? {
                let view = engine.family(f)?;
                rows.push((f, view.name.clone(), view.members.len()));
            }
            let v: Vec<Value> = rows
                .iter()
                .map(|(f, name, n)| json!({ "family": f.to_hex(), "title": name, "members": n }))
                .collect();
            out.show(Value::Array(v), || {
                rows.iter()
                    .map(|(f, name, n)| format!("{f}  {name}  ({n} members)"))
                    .collect()
            });
        }
        FamilyCmd::Show { family } => {
            let view = engine.family(family_id(&family)?)?;
            let members: Vec<Value> = view
                .members
                .iter()
                .map(|(u, m)| json!({ "user": u, "name": m.name, "role": format!("{:?}", m.role).to_lowercase() }))
                .collect();
            out.show(
                json!({ "family": view.id, "title": view.name, "members": members }),
                || {
                    let mut lines = vec![format!("{}  ({})", view.name, view.id)];
                    for (u, m) in &view.members {
                        lines.push(format!("  {}  {:?}  {u}", m.name, m.role));
                    }
                    lines
                },
            );
        }
        FamilyCmd::Rename { family, title } => {
            engine
                .rename_family(family_id(&family)?, &title, now_ms())
                .await?;
            saved(engine, out)?;
        }
        FamilyCmd::Leave { family } => {
            engine.leave_family(family_id(&family)?, now_ms()).await?;
            out.show(json!({ "left": family }), || vec![format!("left {family}")]);
        }
        FamilyCmd::Delete { family } => {
            engine.delete_family(family_id(&family)?).await?;
            out.show(json!({ "deleted": family }), || {
                vec![format!("deleted {family}")]
            });
        }
        FamilyCmd::Remove { family, user } => {
            let user: UserId = parse("user id", &user)?;
            engine
                .remove_member(family_id(&family)?, user, now_ms())
                .await?;
            saved(engine, out)?;
        }
    }
    Ok(())
}

async fn invite(engine: &Engine, out: Out, c: InviteCmd) -> CmdResult {
    match c {
        InviteCmd::Send {
            family,
            email,
            name,
        } => {
            let info = engine.invite(family_id(&family)?, &email, &name).await?;
            out.id(
                &info.invite.to_hex(),
                json!({ "invitee": info.invitee.to_hex() }),
            );
        }
        InviteCmd::List => {
            let list = engine.invites().await?;
            let now = now_ms();
            let v: Vec<Value> = list
                .iter()
                .map(|i| json!({ "invite": i.invite.to_hex(), "family": i.family.to_hex(), "family_title": i.family_title, "from": i.inviter_name, "as": i.proposed_name }))
                .collect();
            out.show(Value::Array(v), || {
                list.iter()
                    .map(|i| {
                        let ago = relative(
                            i64::try_from(i.created_at).unwrap_or(i64::MAX),
                            now,
                            offset(),
                            Lang::Ko,
                        );
                        format!(
                            "{}  {} ({})님이 '{}' 가족에 '{}'(으)로 초대했어요 · {ago}",
                            i.invite,
                            i.inviter_name,
                            i.inviter_nickname,
                            i.family_title,
                            i.proposed_name
                        )
                    })
                    .collect()
            });
        }
        InviteCmd::Accept { invite } => {
            let id: InviteId = parse("invite id", &invite)?;
            let family = engine.answer_invite(id, true, now_ms()).await?;
            let f = family.map(|f| f.to_hex()).unwrap_or_default();
            out.show(json!({ "accepted": invite, "family": f }), || {
                vec![f.clone()]
            });
        }
        InviteCmd::Reject { invite } => {
            let id: InviteId = parse("invite id", &invite)?;
            engine.answer_invite(id, false, now_ms()).await?;
            out.show(json!({ "rejected": invite }), || {
                vec![format!("rejected {invite}")]
            });
        }
    }
    Ok(())
}

fn mission(engine: &Engine, out: Out, c: MissionCmd) -> CmdResult {
    match c {
        MissionCmd::Add {
            family,
            title,
            members,
            due,
        } => {
            let users = members
                .iter()
                .map(|m| parse::<UserId>("user id", m))
                .collect::<Result<Vec<_>, _>>()?;
            let id = engine.edit_family(family_id(&family)?, |fd| {
                fd.add_mission(&title, &users, due.as_deref(), now_ms())
            })?;
            created(engine, out, &id)
        }
        MissionCmd::Done { family, mission } => tick(engine, out, &family, &mission, true),
        MissionCmd::Undone { family, mission } => tick(engine, out, &family, &mission, false),
        MissionCmd::List { family, past } => {
            let view = engine.family(family_id(&family)?)?;
            let month = YearMonth::of(local_date(now_ms(), offset()));
            let (cards, status) = if past {
                (views::past_missions(&view, month, offset()), None)
            } else {
                let d = views::mission_dashboard(&view, month, offset());
                let status = (d.total, d.completed, d.rate, d.label_ko);
                (d.missions, Some(status))
            };
            let v: Vec<Value> = cards
                .iter()
                .map(|m| json!({ "id": m.id, "title": m.title, "complete": m.completed_at.is_some(),
                    "ticks": m.ticks.iter().map(|t| json!({ "user": t.user, "name": t.name, "done": t.done_at.is_some() })).collect::<Vec<_>>() }))
                .collect();
            let body = match status {
                Some((total, completed, rate, label)) => {
                    json!({ "missions": v, "total": total, "completed": completed, "rate": rate, "label": label })
                }
                None => json!({ "missions": v }),
            };
            out.show(body, || {
                let mut lines: Vec<String> = cards
                    .iter()
                    .map(|m| {
                        let ticks: Vec<String> = m
                            .ticks
                            .iter()
                            .map(|t| {
                                format!("{}{}", t.name, if t.done_at.is_some() { "✓" } else { "·" })
                            })
                            .collect();
                        format!(
                            "{}  {}  [{}]{}",
                            m.id,
                            m.title,
                            ticks.join(" "),
                            if m.completed_at.is_some() {
                                "  완료"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect();
                if let Some((total, completed, rate, label)) = status {
                    lines.push(format!("{completed}/{total} · {rate}% · {label}"));
                }
                lines
            });
            Ok(())
        }
        MissionCmd::Delete { family, mission } => {
            engine.edit_family(family_id(&family)?, |fd| {
                fd.delete_mission(&mission, now_ms())
            })?;
            saved(engine, out)
        }
    }
}

fn tick(engine: &Engine, out: Out, family: &str, mission: &str, done: bool) -> CmdResult {
    engine.edit_family(family_id(family)?, |fd| {
        fd.set_mission_done(mission, done, now_ms())
    })?;
    saved(engine, out)
}

fn event(engine: &Engine, out: Out, c: EventCmd) -> CmdResult {
    match c {
        EventCmd::Add {
            family,
            title,
            start,
            end,
            color,
        } => {
            let input = EventInput {
                title,
                start,
                end,
                color,
                ..Default::default()
            };
            let id = engine.edit_family(family_id(&family)?, |fd| fd.add_event(input, now_ms()))?;
            created(engine, out, &id)
        }
        EventCmd::Edit {
            family,
            event,
            title,
            start,
            end,
            color,
        } => {
            let patch = EventPatch {
                title,
                start,
                end,
                color,
                ..Default::default()
            };
            engine.edit_family(family_id(&family)?, |fd| {
                fd.edit_event(&event, patch, now_ms())
            })?;
            saved(engine, out)
        }
        EventCmd::Delete { family, event } => {
            engine.edit_family(family_id(&family)?, |fd| fd.delete_event(&event, now_ms()))?;
            saved(engine, out)
        }
        EventCmd::List { family, month } => {
            let view = engine.family(family_id(&family)?)?;
            let m = YearMonth::parse(&month)?;
            let cal = views::calendar_month(&view, m);
            let v: Vec<Value> = cal
                .events
                .iter()
                .map(|e| json!({ "id": e.id, "title": e.event.title, "start": e.event.start, "end": e.event.end, "color": e.event.color, "owner": e.owner_name }))
                .collect();
            out.show(Value::Array(v), || {
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
    }
}

async fn photo(engine: &Engine, out: Out, c: PhotoCmd) -> CmdResult {
    match c {
        PhotoCmd::Add {
            family,
            album,
            file,
            caption,
        } => {
            let f = family_id(&family)?;
            let original = std::fs::read(&file)?;
            let id = engine.add_photo(f, &album, &original, &caption, now_ms())?;
            let (width, height) = engine
                .family(f)?
                .photos
                .get(&id)
                .map_or((0, 0), |p| (p.width, p.height));
            let pending = engine.pending()?;
            if out.json {
                println!(
                    "{}",
                    json!({ "id": id, "saved": true, "pending": pending, "width": width, "height": height })
                );
            } else {
                println!("{id}");
                eprintln!(
                    "{width}×{height}; saved on this device; {pending} change(s) queued for `doran sync`"
                );
            }
            Ok(())
        }
        PhotoCmd::Get {
            family,
            photo,
            out: path,
            thumb,
        } => {
            let bytes = engine
                .photo_bytes(family_id(&family)?, &photo, thumb)
                .await?;
            std::fs::write(&path, &bytes)?;
            out.show(json!({ "bytes": bytes.len() }), || {
                vec![path.display().to_string()]
            });
            Ok(())
        }
        PhotoCmd::Like { family, photo } => {
            engine.edit_family(family_id(&family)?, |fd| {
                fd.set_like(&photo, true, now_ms())
            })?;
            saved(engine, out)
        }
        PhotoCmd::Unlike { family, photo } => {
            engine.edit_family(family_id(&family)?, |fd| {
                fd.set_like(&photo, false, now_ms())
            })?;
            saved(engine, out)
        }
        PhotoCmd::Comment {
            family,
            photo,
            text,
        } => {
            let id = engine.edit_family(family_id(&family)?, |fd| {
                fd.add_comment(&photo, &text, now_ms())
            })?;
            created(engine, out, &id)
        }
    }
}

fn badge_json(b: &views::Badge) -> Value {
    json!({ "badge": b.kind.key(), "name": b.kind.name_ko(), "progress": b.progress, "goal": b.goal, "earned": b.earned() })
}

fn badges(engine: &Engine, out: Out, family: &str) -> CmdResult {
    let view = engine.family(family_id(family)?)?;
    let list = views::badges(&view);
    out.show(Value::Array(list.iter().map(badge_json).collect()), || {
        list.iter()
            .map(|b| {
                format!(
                    "{} {} {}/{}",
                    if b.earned() { "●" } else { "○" },
                    b.kind.name_ko(),
                    b.progress,
                    b.goal
                )
            })
            .collect()
    });
    Ok(())
}

fn home_screen(engine: &Engine, out: Out, family: &str) -> CmdResult {
    let view = engine.family(family_id(family)?)?;
    let now = now_ms();
    let day = u64::try_from(now / 86_400_000).unwrap_or(0);
    let h = views::home(&view, &Default::default(), now, offset(), day);
    let v = json!({
        "family": h.family_name,
        "members": h.members.iter().map(|m| json!({ "user": m.user, "name": m.name, "mood": m.mood.map(Mood::name) })).collect::<Vec<_>>(),
        "message": h.warm_message,
        "mission": h.mission.as_ref().map(|m| json!({ "id": m.id, "title": m.title })),
        "month_rate": h.month_rate,
        "month_label": h.month_label,
        "badge": h.badge.as_ref().map(badge_json),
        "latest_voice": h.latest_voice.as_ref().map(|v| v.headline.clone()),
        "month_events": h.month_events.len(),
    });
    out.show(v, || {
        let mut lines = vec![format!("{} — {}", h.family_name, h.warm_message)];
        lines.extend(
            h.members
                .iter()
                .map(|m| format!("  {} {}", m.name, m.mood.map(Mood::emoji).unwrap_or(""))),
        );
        if let Some(m) = &h.mission {
            lines.push(format!("mission: {}", m.title));
        }
        lines.push(format!("this month: {}% · {}", h.month_rate, h.month_label));
        if let Some(v) = &h.latest_voice {
            lines.push(v.headline.clone());
        }
        lines
    });
    Ok(())
}

fn notifications(engine: &Engine, out: Out) -> CmdResult {
    let list = engine.notifications()?;
    let now = now_ms();
    let v: Vec<Value> = list
        .iter()
        .map(|n| json!({ "id": n.id, "family": n.family, "text": n.text, "count": n.count, "at": n.at }))
        .collect();
    out.show(Value::Array(v), || {
        list.iter()
            .map(|n| format!("{} · {}", n.text, relative(n.at, now, offset(), Lang::Ko)))
            .collect()
    });
    Ok(())
}

/// The whole family as JSON: state plus derived badges.
fn export(f: &Family) -> Result<String, serde_json::Error> {
    let badges: Vec<Value> = views::badges(f).iter().map(badge_json).collect();
    let mut v = serde_json::to_value(f)?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("badges".into(), Value::Array(badges));
    }
    serde_json::to_string_pretty(&v)
}

/// `doran audio convert IN OUT.mp3`: no account, no store.
fn convert(out: Out, input: &Path, output: &Path) -> CmdResult {
    let bytes = std::fs::read(input)?;
    let (mp3, c) = doran_audio::convert_bytes(&bytes, &doran_audio::ConvertOptions::default())?;
    std::fs::write(output, &mp3)?;
    out.show(
        json!({ "duration_ms": c.duration_ms, "peaks": c.peaks, "bytes": mp3.len() }),
        || vec![c.duration_ms.to_string()],
    );
    Ok(())
}
