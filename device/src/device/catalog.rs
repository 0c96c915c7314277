//! What forms and pickers need from the product's rules, so no app writes them again:
//! the calendar palette, the moods with their labels, the voice album covers, the
//! length of every text field; and times as "how long ago", worded as everywhere else.

use doran_client_core::{
    model::Mood,
    time_util::relative,
    validate::{self, TextRule},
    views::{DAY_SLOTS, MoodView, PAGE_SIZE},
};

use super::{Device, now_ms};
use crate::screens::{Catalog, TextLimit, TextLimits};

impl Device {
    /// The palette, moods (in the user's language), covers and text limits the forms
    /// show.
    pub fn catalog(&self) -> Catalog {
        let lang = self.language();
        let limit = |rule: TextRule| TextLimit {
            min: rule.min,
            max: rule.max,
            multiline: rule.multiline,
        };
        Catalog {
            palette: validate::PALETTE.to_vec(),
            moods: Mood::ALL.iter().map(|m| MoodView::of(*m, lang)).collect(),
            voice_covers: validate::VOICE_COVERS,
            voice_max_ms: 3 * 60 * 1000,
            photo_page: PAGE_SIZE,
            day_slots: DAY_SLOTS,
            limits: TextLimits {
                family_title: limit(validate::FAMILY_TITLE),
                member_name: limit(validate::MEMBER_NAME),
                nickname: limit(validate::NICKNAME),
                mission_title: limit(validate::MISSION_TITLE),
                event_title: limit(validate::EVENT_TITLE),
                event_notes: limit(validate::EVENT_NOTES),
                album_name: limit(validate::ALBUM_NAME),
                photo_caption: limit(validate::PHOTO_CAPTION),
                comment: limit(validate::COMMENT),
                voice_title: limit(validate::VOICE_TITLE),
                voice_album_name: limit(validate::VOICE_ALBUM_NAME),
            },
        }
    }

    /// How long ago each time (Unix ms) was, as the product says it everywhere ("방금
    /// 전", "5분 전", "3월 2일"…), in the user's language and time zone: for the times
    /// in views that carry no text of their own (comments, voice messages, photos).
    pub fn relative_times(&self, times: &[i64]) -> Vec<String> {
        let viewer = self.shared().viewer();
        let now = now_ms();
        times
            .iter()
            .map(|t| relative(*t, now, viewer.offset, viewer.lang))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use doran_client_core::time_util::Lang;

    use crate::{Device, DeviceOptions};

    async fn device(lang: Lang) -> (tempfile::TempDir, Device) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DeviceOptions {
            lang,
            utc_offset: Some(time::UtcOffset::UTC),
            ..DeviceOptions::default()
        };
        let device = Device::open(dir.path(), options).await.expect("opens");
        (dir, device)
    }

    #[tokio::test]
    async fn the_catalog_follows_the_product_rules_in_the_users_language() {
        let (_dir, ko) = device(Lang::Ko).await;
        let c = ko.catalog();
        assert_eq!(c.palette.len(), 10);
        assert_eq!(c.palette[0], "#CE5F5F", "the default color first");
        assert_eq!(c.moods.len(), 7);
        assert_eq!((c.moods[0].emoji, c.moods[0].label), ("🙂", "좋아요"));
        assert_eq!(c.voice_covers, 4);
        assert_eq!(c.voice_max_ms, 180_000);
        assert_eq!(c.photo_page, 14);
        assert_eq!(
            (c.limits.family_title.min, c.limits.family_title.max),
            (1, 10)
        );
        assert_eq!(c.limits.member_name.max, 8);
        assert_eq!(c.limits.mission_title.max, 17);
        assert_eq!(c.limits.event_title.max, 14);
        assert_eq!(c.limits.voice_title.max, 10);
        assert!(c.limits.comment.multiline && !c.limits.nickname.multiline);
        let json = serde_json::to_value(&c).expect("serialises");
        assert_eq!(json["limits"]["nickname"]["min"], 2);
        assert_eq!(json["moods"][1]["key"], "love");

        let (_dir, en) = device(Lang::En).await;
        assert_eq!(en.catalog().moods[0].label, "Good");
    }

    #[tokio::test]
    async fn relative_times_are_worded_like_every_other_time() {
        let (_dir, ko) = device(Lang::Ko).await;
        let now = super::now_ms();
        let minute = 60_000;
        let got = ko.relative_times(&[now - 10_000, now - 5 * minute, now - 3 * 60 * minute]);
        assert_eq!(got, ["방금 전", "5분 전", "3시간 전"]);
        let (_dir, en) = device(Lang::En).await;
        assert_eq!(en.relative_times(&[now - 2 * minute]), ["2 min ago"]);
        assert!(en.relative_times(&[]).is_empty());
    }
}
