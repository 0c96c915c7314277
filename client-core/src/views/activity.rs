//! The activity feed (who did what, when) and the notifications derived from it.
//!
//! Every item is read from the document's state — a like carries who and when, a
//! comment its author and time — so the feed is a pure function of the document and
//! merges like everything else. Items have stable ids, so "what is new" after an
//! incoming change is a set difference over the entities it touched.

use crate::{model::Family, replica::Touched, time_util::Lang, views::member_name};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActivityKind {
    /// Someone joined the family.
    MemberJoined,
    /// A mission was created.
    MissionCreated {
        /// Mission id.
        mission: String,
    },
    /// A participant ticked their part of a mission.
    MissionTicked {
        /// Mission id.
        mission: String,
    },
    /// Everyone ticked: the mission is complete.
    MissionCompleted {
        /// Mission id.
        mission: String,
    },
    /// A calendar event was added.
    EventAdded {
        /// Event id.
        event: String,
    },
    /// A photo album was created.
    AlbumCreated {
        /// Album id.
        album: String,
    },
    /// A photo was added.
    PhotoAdded {
        /// Photo id.
        photo: String,
    },
    /// Someone liked a photo.
    PhotoLiked {
        /// Photo id.
        photo: String,
        /// The photo's uploader.
        owner: String,
    },
    /// Someone commented on a photo.
    PhotoCommented {
        /// Photo id.
        photo: String,
        /// Comment id.
        comment: String,
        /// The photo's uploader.
        owner: String,
    },
    /// A voice message was sent.
    VoiceAdded {
        /// Voice id.
        voice: String,
    },
}

/// One feed item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Activity {
    /// Stable id (the same item has the same id on every device).
    pub id: String,
    /// Who did it (user id).
    pub actor: String,
    /// When (ms).
    pub at: i64,
    /// What.
    pub kind: ActivityKind,
}

impl Activity {
    /// The entity the item comes from: `(collection, key)` in the document.
    pub fn entity(&self) -> (&'static str, &str) {
        use ActivityKind as K;
        match &self.kind {
            K::MemberJoined => ("members", self.actor.as_str()),
            K::MissionCreated { mission }
            | K::MissionTicked { mission }
            | K::MissionCompleted { mission } => ("missions", mission),
            K::EventAdded { event } => ("calendar", event),
            K::AlbumCreated { album } => ("albums", album),
            K::PhotoAdded { photo }
            | K::PhotoLiked { photo, .. }
            | K::PhotoCommented { photo, .. } => ("photos", photo),
            K::VoiceAdded { voice } => ("voices", voice),
        }
    }

    /// The sentence the feed shows.
    pub fn text(&self, f: &Family, lang: Lang) -> String {
        self.text_n(f, lang, 1)
    }

    /// The sentence for `count` such items by the same person (a burst: "엄마 님이
    /// 사진 7장을 올렸어요."), Korean particles chosen by the word before them.
    pub fn text_n(&self, f: &Family, lang: Lang, count: usize) -> String {
        use crate::ko::{Particle::*, with};
        let who = member_name(f, &self.actor, lang);
        let title = |coll: &str, id: &str| -> String {
            match coll {
                "mission" => f.missions.get(id).map(|m| m.title.clone()),
                "event" => f.calendar.get(id).map(|e| e.title.clone()),
                "album" => f.albums.get(id).map(|a| a.name.clone()),
                "voice" => f.voices.get(id).map(|v| v.title.clone()),
                _ => None,
            }
            .unwrap_or_default()
        };
        let quoted = |coll: &str, id: &str| format!("'{}'", title(coll, id));
        let many = count > 1;
        use ActivityKind as K;
        match (lang, &self.kind) {
            (Lang::Ko, K::MemberJoined) => format!("{who} 님이 가족이 되었어요."),
            (Lang::Ko, K::MissionCreated { .. }) if many => {
                format!("{who} 님이 미션 {count}개를 만들었어요.")
            }
            (Lang::Ko, K::MissionCreated { mission }) => format!(
                "{who} 님이 미션 {} 만들었어요.",
                with(&quoted("mission", mission), EulReul)
            ),
            (Lang::Ko, K::MissionTicked { mission }) => format!(
                "{who} 님이 미션 {} 완료했어요.",
                with(&quoted("mission", mission), EulReul)
            ),
            (Lang::Ko, K::MissionCompleted { .. }) if many => {
                format!("미션 {count}개를 모두 함께 완료했어요!")
            }
            (Lang::Ko, K::MissionCompleted { mission }) => format!(
                "미션 {} 모두 함께 완료했어요!",
                with(&quoted("mission", mission), EulReul)
            ),
            (Lang::Ko, K::EventAdded { .. }) if many => {
                format!("{who} 님이 일정 {count}개를 등록했어요.")
            }
            (Lang::Ko, K::EventAdded { event }) => format!(
                "{who} 님이 일정 {} 등록했어요.",
                with(&quoted("event", event), EulReul)
            ),
            (Lang::Ko, K::AlbumCreated { .. }) if many => {
                format!("{who} 님이 앨범 {count}개를 만들었어요.")
            }
            (Lang::Ko, K::AlbumCreated { album }) => format!(
                "{who} 님이 앨범 {} 만들었어요.",
                with(&quoted("album", album), EulReul)
            ),
            (Lang::Ko, K::PhotoAdded { .. }) if many => {
                format!("{who} 님이 사진 {count}장을 올렸어요.")
            }
            (Lang::Ko, K::PhotoAdded { .. }) => format!("{who} 님이 사진을 올렸어요."),
            (Lang::Ko, K::PhotoLiked { .. }) if many => {
                format!("{who} 님이 사진 {count}장에 좋아요를 누르셨습니다.")
            }
            (Lang::Ko, K::PhotoLiked { .. }) => format!("{who} 님이 좋아요를 누르셨습니다."),
            (Lang::Ko, K::PhotoCommented { .. }) if many => {
                format!("{who} 님이 댓글 {count}개를 등록하셨습니다.")
            }
            (Lang::Ko, K::PhotoCommented { .. }) => format!("{who} 님이 댓글을 등록하셨습니다."),
            (Lang::Ko, K::VoiceAdded { .. }) if many => {
                format!("{who}님이 음성메시지 {count}개를 보냈어요!")
            }
            (Lang::Ko, K::VoiceAdded { .. }) => format!("{who}님이 음성메시지를 보냈어요!"),
            (Lang::En, K::MemberJoined) => format!("{who} joined the family."),
            (Lang::En, K::MissionCreated { .. }) if many => {
                format!("{who} created {count} missions.")
            }
            (Lang::En, K::MissionCreated { mission }) => {
                format!("{who} created the mission {}.", quoted("mission", mission))
            }
            (Lang::En, K::MissionTicked { mission }) => {
                format!("{who} did their part of {}.", quoted("mission", mission))
            }
            (Lang::En, K::MissionCompleted { .. }) if many => {
                format!("Everyone completed {count} missions!")
            }
            (Lang::En, K::MissionCompleted { mission }) => {
                format!("Everyone completed {}!", quoted("mission", mission))
            }
            (Lang::En, K::EventAdded { .. }) if many => format!("{who} added {count} events."),
            (Lang::En, K::EventAdded { event }) => {
                format!("{who} added the event {}.", quoted("event", event))
            }
            (Lang::En, K::AlbumCreated { .. }) if many => {
                format!("{who} created {count} albums.")
            }
            (Lang::En, K::AlbumCreated { album }) => {
                format!("{who} created the album {}.", quoted("album", album))
            }
            (Lang::En, K::PhotoAdded { .. }) if many => format!("{who} added {count} photos."),
            (Lang::En, K::PhotoAdded { .. }) => format!("{who} added a photo."),
            (Lang::En, K::PhotoLiked { .. }) if many => {
                format!("{who} liked {count} of your photos.")
            }
            (Lang::En, K::PhotoLiked { .. }) => format!("{who} liked your photo."),
            (Lang::En, K::PhotoCommented { .. }) if many => {
                format!("{who} left {count} comments on your photos.")
            }
            (Lang::En, K::PhotoCommented { .. }) => format!("{who} commented on your photo."),
            (Lang::En, K::VoiceAdded { .. }) if many => {
                format!("{who} sent {count} voice messages!")
            }
            (Lang::En, K::VoiceAdded { .. }) => format!("{who} sent a voice message!"),
        }
    }
}

/// Of the items that arrived with a batch of incoming changes, those still true in `f`,
/// the state after the whole batch — as they read now. A tick taken back, a mission
/// deleted, a like withdrawn within the batch are not announced; a mission counts as
/// completed only if it still is. Items from before `since` (the family's history, as
/// a member who just joined receives it) are left out too.
pub fn still_true(f: &Family, items: &[Activity], since: i64) -> Vec<Activity> {
    let mut entities: Vec<(&str, &str)> = items.iter().map(Activity::entity).collect();
    entities.sort_unstable();
    entities.dedup();
    let mut now = Vec::new();
    for (coll, key) in entities {
        entity_activity(f, coll, key, &mut now);
    }
    let wanted: std::collections::BTreeSet<&str> = items.iter().map(|a| a.id.as_str()).collect();
    let mut kept: Vec<Activity> = now
        .into_iter()
        .filter(|a| wanted.contains(a.id.as_str()) && a.at >= since)
        .collect();
    sort_newest_first(&mut kept);
    kept
}

/// The whole feed, newest first.
pub fn activity(f: &Family) -> Vec<Activity> {
    let mut items = Vec::new();
    for (coll, key) in entity_keys(f) {
        entity_activity(f, coll, key, &mut items);
    }
    sort_newest_first(&mut items);
    items
}

/// The feed items that come from the given entities (those an incoming change touched).
pub fn activity_of(f: &Family, touched: &[Touched]) -> Vec<Activity> {
    let mut items = Vec::new();
    for t in touched {
        if let Touched::Entity(coll, key) = t {
            entity_activity(f, coll, key, &mut items);
        }
    }
    items
}

fn sort_newest_first(items: &mut [Activity]) {
    items.sort_by(|a, b| b.at.cmp(&a.at).then(a.id.cmp(&b.id)));
}

fn entity_keys(f: &Family) -> impl Iterator<Item = (&'static str, &str)> {
    fn keys<'a, V>(
        name: &'static str,
        map: &'a std::collections::BTreeMap<String, V>,
    ) -> impl Iterator<Item = (&'static str, &'a str)> {
        map.keys().map(move |k| (name, k.as_str()))
    }
    keys("members", &f.members)
        .chain(keys("missions", &f.missions))
        .chain(keys("calendar", &f.calendar))
        .chain(keys("albums", &f.albums))
        .chain(keys("photos", &f.photos))
        .chain(keys("voices", &f.voices))
}

/// The items one entity contributes.
fn entity_activity(f: &Family, coll: &str, key: &str, out: &mut Vec<Activity>) {
    let mut push = |id: String, actor: &str, at: i64, kind: ActivityKind| {
        out.push(Activity {
            id,
            actor: actor.to_owned(),
            at,
            kind,
        })
    };
    let k = key.to_owned();
    match coll {
        "members" => {
            if let Some(m) = f.members.get(key)
                && f.created_by != key
            {
                push(
                    format!("join/{key}"),
                    key,
                    m.joined_at,
                    ActivityKind::MemberJoined,
                );
            }
        }
        "missions" => {
            let Some(m) = f.missions.get(key) else { return };
            push(
                format!("mission/{key}"),
                &m.created_by,
                m.created_at,
                ActivityKind::MissionCreated { mission: k.clone() },
            );
            for (user, at) in &m.completions {
                if m.participants.contains_key(user) {
                    push(
                        format!("tick/{key}/{user}"),
                        user,
                        *at,
                        ActivityKind::MissionTicked { mission: k.clone() },
                    );
                }
            }
            if let Some(at) = m.completed_at(&f.members) {
                let last = m
                    .completions
                    .iter()
                    .find(|(_, t)| **t == at)
                    .map(|(u, _)| u.as_str())
                    .unwrap_or(m.created_by.as_str());
                push(
                    format!("complete/{key}"),
                    last,
                    at,
                    ActivityKind::MissionCompleted { mission: k },
                );
            }
        }
        "calendar" => {
            if let Some(e) = f.calendar.get(key) {
                push(
                    format!("event/{key}"),
                    &e.owner,
                    e.created_at,
                    ActivityKind::EventAdded { event: k },
                );
            }
        }
        "albums" => {
            if let Some(a) = f.albums.get(key) {
                push(
                    format!("album/{key}"),
                    &a.created_by,
                    a.created_at,
                    ActivityKind::AlbumCreated { album: k },
                );
            }
        }
        "photos" => {
            let Some(p) = f.photos.get(key) else { return };
            push(
                format!("photo/{key}"),
                &p.by,
                p.at,
                ActivityKind::PhotoAdded { photo: k.clone() },
            );
            for (user, at) in &p.likes {
                push(
                    format!("like/{key}/{user}"),
                    user,
                    *at,
                    ActivityKind::PhotoLiked {
                        photo: k.clone(),
                        owner: p.by.clone(),
                    },
                );
            }
            for (cid, c) in p.comments.iter().filter(|(_, c)| !c.deleted) {
                push(
                    format!("comment/{key}/{cid}"),
                    &c.by,
                    c.at,
                    ActivityKind::PhotoCommented {
                        photo: k.clone(),
                        comment: cid.clone(),
                        owner: p.by.clone(),
                    },
                );
            }
        }
        "voices" => {
            if let Some(v) = f.voices.get(key) {
                push(
                    format!("voice/{key}"),
                    &v.by,
                    v.at,
                    ActivityKind::VoiceAdded { voice: k },
                );
            }
        }
        _ => {}
    }
}

/// A notification for the bell: one or more activity items of the same kind by the
/// same person, collapsed ("엄마 님이 좋아요를 누르셨습니다 (3)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The newest item of the burst.
    pub latest: Activity,
    /// How many items the burst collapses.
    pub count: usize,
}

impl Notification {
    /// The sentence the bell shows, for the whole burst ("사진 7장을 올렸어요").
    pub fn text(&self, f: &Family, lang: Lang) -> String {
        self.latest.text_n(f, lang, self.count)
    }

    /// What kind of item it is, as a stable name (`photo_added`, `photo_liked`…).
    pub fn kind_key(&self) -> &'static str {
        self.latest.kind.key()
    }
}

impl ActivityKind {
    /// A stable name of the kind (`member_joined`, `photo_added`…).
    pub fn key(&self) -> &'static str {
        match self {
            ActivityKind::MemberJoined => "member_joined",
            ActivityKind::MissionCreated { .. } => "mission_created",
            ActivityKind::MissionTicked { .. } => "mission_ticked",
            ActivityKind::MissionCompleted { .. } => "mission_completed",
            ActivityKind::EventAdded { .. } => "event_added",
            ActivityKind::AlbumCreated { .. } => "album_created",
            ActivityKind::PhotoAdded { .. } => "photo_added",
            ActivityKind::PhotoLiked { .. } => "photo_liked",
            ActivityKind::PhotoCommented { .. } => "photo_commented",
            ActivityKind::VoiceAdded { .. } => "voice_added",
        }
    }
}

/// Which new items notify `me`: likes and comments on my photos (when
/// `reactions`), and family-wide news — new members, missions, completions, events,
/// albums, photos, voice messages (when `family_wide`). Never my own actions. Items of
/// the same kind by the same person collapse into one notification.
pub fn notifications(
    new_items: &[Activity],
    me: &str,
    reactions: bool,
    family_wide: bool,
) -> Vec<Notification> {
    use ActivityKind as K;
    let mut out: Vec<Notification> = Vec::new();
    let mut items: Vec<&Activity> = new_items
        .iter()
        .filter(|a| a.actor != me)
        .filter(|a| match &a.kind {
            K::PhotoLiked { owner, .. } | K::PhotoCommented { owner, .. } => {
                reactions && owner == me
            }
            K::MissionTicked { .. } => false,
            _ => family_wide,
        })
        .collect();
    items.sort_by(|a, b| b.at.cmp(&a.at).then(a.id.cmp(&b.id)));
    for a in items {
        let class = std::mem::discriminant(&a.kind);
        match out
            .iter_mut()
            .find(|n| n.latest.actor == a.actor && std::mem::discriminant(&n.latest.kind) == class)
        {
            Some(n) => n.count += 1,
            None => out.push(Notification {
                latest: a.clone(),
                count: 1,
            }),
        }
    }
    out
}
