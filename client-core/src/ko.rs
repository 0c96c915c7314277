//! Korean particles chosen by the word they follow: "설거지 돕기를", "가족 사진을",
//! "엄마가", "아빠는", "서울로", "부산으로". A word ending in a syllable with a final
//! consonant (받침) takes 을, 이, 은, 과, 으로; one without takes 를, 가, 는, 와, 로 —
//! and ㄹ takes 로, not 으로. Digits read as Korean numbers (일, 이, 삼…). For any other
//! ending (Latin letters, emoji) both forms are shown, "을(를)", as Korean software does.

/// A particle with two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Particle {
    /// Object: 을 / 를.
    EulReul,
    /// Subject: 이 / 가.
    IGa,
    /// Topic: 은 / 는.
    EunNeun,
    /// "And / with": 과 / 와.
    GwaWa,
    /// Direction or means: 으로 / 로 (로 after ㄹ).
    EuroRo,
    /// Vocative-free copula used in "…이에요/예요": 이에요 / 예요.
    IeyoYeyo,
}

/// What the last syllable of `word` ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A vowel (no 받침).
    Vowel,
    /// ㄹ.
    Rieul,
    /// Another final consonant.
    Consonant,
    /// Not Korean: cannot tell.
    Unknown,
}

fn ending(word: &str) -> Ending {
    let Some(last) = word
        .trim_end()
        .trim_end_matches(['\'', '"', '’', '”', ')', ']', '.', '!', '?'])
        .chars()
        .last()
    else {
        return Ending::Unknown;
    };
    match last {
        '가'..='힣' => match (u32::from(last) - 0xAC00) % 28 {
            0 => Ending::Vowel,
            8 => Ending::Rieul,
            _ => Ending::Consonant,
        },
        // 영 일 이 삼 사 오 육 칠 팔 구
        '0' | '3' | '6' => Ending::Consonant,
        '1' | '7' | '8' => Ending::Rieul,
        '2' | '4' | '5' | '9' => Ending::Vowel,
        _ => Ending::Unknown,
    }
}

impl Particle {
    /// The form after `word` (both forms when it cannot tell).
    pub fn after(self, word: &str) -> &'static str {
        let (with_batchim, without, both) = match self {
            Particle::EulReul => ("을", "를", "을(를)"),
            Particle::IGa => ("이", "가", "이(가)"),
            Particle::EunNeun => ("은", "는", "은(는)"),
            Particle::GwaWa => ("과", "와", "과(와)"),
            Particle::EuroRo => ("으로", "로", "(으)로"),
            Particle::IeyoYeyo => ("이에요", "예요", "이에요(예요)"),
        };
        match (ending(word), self) {
            (Ending::Rieul, Particle::EuroRo) => without,
            (Ending::Consonant | Ending::Rieul, _) => with_batchim,
            (Ending::Vowel, _) => without,
            (Ending::Unknown, _) => both,
        }
    }
}

/// `word` followed by the right form of `particle`: `with("설거지 돕기", EulReul)` is
/// "설거지 돕기를".
pub fn with(word: &str, particle: Particle) -> String {
    format!("{word}{}", particle.after(word))
}

#[cfg(test)]
mod tests {
    use super::{Particle::*, *};

    #[test]
    fn particles_follow_the_last_syllable() {
        assert_eq!(with("설거지 돕기", EulReul), "설거지 돕기를");
        assert_eq!(with("가족 사진 찍기", EulReul), "가족 사진 찍기를");
        assert_eq!(with("가족 사진", EulReul), "가족 사진을");
        assert_eq!(with("엄마", IGa), "엄마가");
        assert_eq!(with("할아버지", EunNeun), "할아버지는");
        assert_eq!(with("동생", IGa), "동생이");
        assert_eq!(with("막내딸", EunNeun), "막내딸은");
        assert_eq!(with("서울", EuroRo), "서울로");
        assert_eq!(with("부산", EuroRo), "부산으로");
        assert_eq!(with("제주", EuroRo), "제주로");
        assert_eq!(with("아빠", GwaWa), "아빠와");
        assert_eq!(with("형", GwaWa), "형과");
        assert_eq!(with("엄마", IeyoYeyo), "엄마예요");
        assert_eq!(with("가족 이름", IeyoYeyo), "가족 이름이에요");
    }

    #[test]
    fn digits_read_as_korean_and_other_endings_show_both() {
        assert_eq!(with("미션 3", EulReul), "미션 3을");
        assert_eq!(with("미션 2", EulReul), "미션 2를");
        assert_eq!(with("미션 1", EuroRo), "미션 1로");
        assert_eq!(with("Dorandoran", EulReul), "Dorandoran을(를)");
        assert_eq!(with("", IGa), "이(가)");
        assert_eq!(with("'설거지'", EulReul), "'설거지'를");
    }
}
