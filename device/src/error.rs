//! [`Error`]: the one error type of the [`Device`](crate::Device) facade — a stable
//! [`ErrorCode`] for code, and a message a person can read, in the user's language
//! (Korean or English). Apps show the message as it is; they branch on the code.
//!
//! Every lower error (a refused edit, the store, the relay, a photo or a recording)
//! becomes one of these in [`Error::from_sync`] and friends; no Rust field names or
//! debug output reach a user.

use doran_client_core::{
    DocError,
    ko::{Particle, with},
    store::StoreError,
    sync::HostError,
    time_util::Lang,
    validate::Field,
};
use doran_protocol::ErrorCode as Wire;
use serde::Serialize;

use crate::{account::AccountError, photo::PhotoError, relay::RelayError, sync_error::SyncError};

/// What went wrong, as a stable name apps can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// There is no account on this device yet.
    NoAccount,
    /// This device already has an account.
    HasAccount,
    /// The relay cannot be reached now; local edits are kept and sent later.
    Offline,
    /// The relay did not answer in time.
    Timeout,
    /// A field is too short, too long, or holds characters that are not allowed.
    InvalidInput,
    /// The thing asked for does not exist (or was deleted, maybe on another device).
    NotFound,
    /// Only the host, or only the author, may do this.
    Forbidden,
    /// The family is not one of the user's on this device.
    UnknownFamily,
    /// The user is no longer a member of this family (removed, or it was deleted):
    /// its copy on this device is read-only.
    RemovedFromFamily,
    /// The family's documents are sealed end to end and this device has not been
    /// given its keys yet (a member's device online lets it in): it cannot be read or
    /// changed here until then.
    WaitingForKeys,
    /// The person is already a member.
    AlreadyMember,
    /// The person already has a pending invite to this family.
    AlreadyInvited,
    /// The 호칭 is already used in the family.
    NameTaken,
    /// An account with this email already exists on the relay.
    EmailTaken,
    /// Nobody on the relay has exactly this email.
    NoSuchUser,
    /// The invite can no longer be answered (answered, withdrawn or expired).
    InviteClosed,
    /// The recovery phrase is not valid.
    BadPhrase,
    /// This device was linked with a code and holds no recovery phrase.
    NoRecoveryPhrase,
    /// The link code is wrong, used or expired.
    BadLinkCode,
    /// Another device of the account refused to add this one.
    LinkRejected,
    /// The link was not confirmed on another device in time.
    LinkExpired,
    /// Another device already used this link code.
    LinkClaimed,
    /// The link request was already confirmed or rejected.
    LinkAnswered,
    /// The safety code typed is not the one this device shows for that member: one
    /// of the two devices holds another user key than the real one (the relay may be
    /// in the middle), or the digits were typed wrong.
    SafetyCodeMismatch,
    /// This device was revoked or the relay does not know it: sign in again.
    DeviceRevoked,
    /// The relay refused the sign-in.
    SignInRefused,
    /// The family's or the user's storage is full.
    QuotaExceeded,
    /// A file is too large.
    TooLarge,
    /// Too many requests; try again shortly.
    RateLimited,
    /// The mission belongs to a past month, which is read-only.
    PastMonth,
    /// The file is not a photo this app can read.
    BadPhoto,
    /// The file is not a recording this app can convert.
    BadAudio,
    /// The recording is longer than 3 minutes.
    AudioTooLong,
    /// A file could not be read or written.
    File,
    /// The relay's address or its certificate authority file cannot be used.
    BadRelay,
    /// Another program on this device (the command line beside the app) kept changing
    /// the same thing at the same moment; nothing was saved. Trying again works.
    Busy,
    /// The device's storage failed.
    Storage,
    /// The relay failed or broke the protocol.
    Relay,
    /// Something of a sealed family (or profile) arrived changed on its way — bytes
    /// altered, or moved from elsewhere — and was not taken: whoever stores or
    /// carries the family's data (the relay, or someone between) tampered with it.
    /// What the device shows stays what the family wrote.
    Tampered,
}

impl ErrorCode {
    /// The machine name (`offline`, `invalid_input`…).
    pub fn key(self) -> &'static str {
        match self {
            ErrorCode::NoAccount => "no_account",
            ErrorCode::HasAccount => "has_account",
            ErrorCode::Offline => "offline",
            ErrorCode::Timeout => "timeout",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownFamily => "unknown_family",
            ErrorCode::RemovedFromFamily => "removed_from_family",
            ErrorCode::WaitingForKeys => "waiting_for_keys",
            ErrorCode::AlreadyMember => "already_member",
            ErrorCode::AlreadyInvited => "already_invited",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::NoSuchUser => "no_such_user",
            ErrorCode::InviteClosed => "invite_closed",
            ErrorCode::BadPhrase => "bad_phrase",
            ErrorCode::NoRecoveryPhrase => "no_recovery_phrase",
            ErrorCode::BadLinkCode => "bad_link_code",
            ErrorCode::LinkRejected => "link_rejected",
            ErrorCode::LinkExpired => "link_expired",
            ErrorCode::LinkClaimed => "link_claimed",
            ErrorCode::LinkAnswered => "link_answered",
            ErrorCode::SafetyCodeMismatch => "safety_code_mismatch",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::SignInRefused => "sign_in_refused",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PastMonth => "past_month",
            ErrorCode::BadPhoto => "bad_photo",
            ErrorCode::BadAudio => "bad_audio",
            ErrorCode::AudioTooLong => "audio_too_long",
            ErrorCode::File => "file",
            ErrorCode::BadRelay => "bad_relay",
            ErrorCode::Busy => "busy",
            ErrorCode::Storage => "storage",
            ErrorCode::Relay => "relay",
            ErrorCode::Tampered => "tampered",
        }
    }
}

/// A failure of a [`Device`](crate::Device) call: nothing was changed, unless the
/// message says what was kept (an offline edit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What went wrong.
    pub code: ErrorCode,
    /// What to tell the user, in their language.
    pub message: String,
    /// The input field it is about, when it is about one (`mission_title`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// Result of a [`Device`](crate::Device) call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a message in `lang`.
    pub fn new(code: ErrorCode, lang: Lang, ko: impl Into<String>, en: impl Into<String>) -> Self {
        Error {
            code,
            message: match lang {
                Lang::Ko => ko.into(),
                Lang::En => en.into(),
            },
            field: None,
        }
    }

    /// The standard message of `code` in `lang`.
    pub fn code(code: ErrorCode, lang: Lang) -> Self {
        let (ko, en) = standard(code);
        Error::new(code, lang, ko, en)
    }

    fn about(mut self, field: Field) -> Self {
        self.field = Some(field_key(field));
        self
    }

    /// Offline: the relay cannot be reached; say that edits are kept.
    pub fn offline(lang: Lang) -> Self {
        Error::code(ErrorCode::Offline, lang)
    }

    /// The relay's TLS certificate is not trusted.
    pub fn untrusted(why: &str, lang: Lang) -> Self {
        Error::new(
            ErrorCode::BadRelay,
            lang,
            format!(
                "서버의 인증서를 믿을 수 없어요 ({why}). 직접 운영하는 서버라면 그 서버의 CA 인증서를 추가해 주세요."
            ),
            format!(
                "The server's certificate is not trusted ({why}). If you host the server yourself, add its CA certificate."
            ),
        )
    }

    /// The relay connected to announced an id naming another address, `named`
    /// (`host:port`, from [`check_server_id`](doran_client_core::sync::check_server_id):
    /// never the relay's own text) ([`Wire::WrongRelay`]): nothing was signed for it.
    pub fn wrong_relay(named: &str, lang: Lang) -> Self {
        let (ko, en) = if named == doran_client_core::sync::UNREADABLE {
            (String::new(), String::new())
        } else {
            (format!("({named})"), format!(" ({named})"))
        };
        Error::new(
            ErrorCode::BadRelay,
            lang,
            format!(
                "이 주소의 서버가 자신을 다른 서버{ko}라고 소개해요. 그 서버로 연결을 넘기는 중간 서버일 수 있어서 로그인하지 않았어요. 서버 주소를 확인해 주세요."
            ),
            format!(
                "The server at this address introduces itself as another server{en}. It may be a server in the middle passing the connection on, so this device did not sign in. Check the server address."
            ),
        )
    }

    /// Two safety codes differ: in the half of `whose` key (`Some(None)`: this
    /// user's, `Some(Some(name))`: that member's; `None`: both halves).
    pub fn safety_mismatch(whose: Option<Option<&str>>, lang: Lang) -> Self {
        let (ko, en) = match whose {
            Some(Some(name)) => (
                format!(
                    "안전 코드가 달라요. 두 기기 중 하나가 {name}님의 키를 다르게 갖고 있어요: 서버가 중간에 끼어들었을 수 있어요. 숫자를 다시 확인하고, 그래도 다르면 이 가족에 민감한 내용을 올리지 마세요."
                ),
                format!(
                    "The safety codes differ: one of the two devices holds another key for {name} — the server may be in the middle. Check the digits again; if they still differ, share nothing sensitive in this family."
                ),
            ),
            Some(None) => (
                "안전 코드가 달라요. 두 기기 중 하나가 내 키를 다르게 갖고 있어요: 서버가 중간에 끼어들었을 수 있어요. 숫자를 다시 확인하고, 그래도 다르면 이 가족에 민감한 내용을 올리지 마세요.".to_owned(),
                "The safety codes differ: one of the two devices holds another key for you — the server may be in the middle. Check the digits again; if they still differ, share nothing sensitive in this family.".to_owned(),
            ),
            None => (
                "안전 코드가 전혀 달라요. 같은 가족의 코드를 보고 있는지, 숫자를 맞게 입력했는지 확인해 주세요. 그래도 다르면 서버가 두 기기 사이에 끼어들었을 수 있으니, 이 가족에 민감한 내용을 올리지 마세요.".to_owned(),
                "The safety codes differ entirely: check that you compare with the right member and that the digits are typed right. If they still differ, the server may be in the middle of your two devices: share nothing sensitive in this family.".to_owned(),
            ),
        };
        Error::new(ErrorCode::SafetyCodeMismatch, lang, ko, en)
    }

    /// A refused edit or bad input.
    pub fn from_doc(e: &DocError, lang: Lang) -> Self {
        match e {
            DocError::Length {
                field,
                min,
                max,
                got,
            } => {
                let (ko_name, en_name) = field_names(*field);
                let (ko, en) = if *got < *min {
                    (
                        format!(
                            "{} 입력해 주세요 ({min}–{max}자).",
                            with(ko_name, Particle::EulReul)
                        ),
                        format!("Please enter {en_name} ({min}–{max} characters)."),
                    )
                } else {
                    (
                        format!(
                            "{} {max}자까지 쓸 수 있어요 (지금 {got}자).",
                            with(ko_name, Particle::EunNeun)
                        ),
                        format!("{en_name} can be at most {max} characters (now {got})."),
                    )
                };
                Error::new(ErrorCode::InvalidInput, lang, ko, en).about(*field)
            }
            DocError::Charset { field, ch } => {
                let (ko_name, en_name) = field_names(*field);
                let shown = if ch.is_control() || ch.is_whitespace() {
                    format!("U+{:04X}", u32::from(*ch))
                } else {
                    format!("'{ch}'")
                };
                Error::new(
                    ErrorCode::InvalidInput,
                    lang,
                    format!("{ko_name}에 쓸 수 없는 글자가 있어요: {shown}"),
                    format!("{en_name} contains a character that is not allowed: {shown}"),
                )
                .about(*field)
            }
            DocError::NotAllowed { field, .. } => {
                let (ko_name, en_name) = field_names(*field);
                Error::new(
                    ErrorCode::InvalidInput,
                    lang,
                    format!("{ko_name} 값이 올바르지 않아요."),
                    format!("That is not a valid {en_name}."),
                )
                .about(*field)
            }
            DocError::BadDate(_) => Error::new(
                ErrorCode::InvalidInput,
                lang,
                "날짜나 시간이 올바르지 않아요 (YYYY-MM-DD, HH:MM). 끝은 시작보다 늦어야 해요.",
                "That date or time is not valid (YYYY-MM-DD, HH:MM); the end must not be before the start.",
            ),
            DocError::NotFound { kind, .. } => {
                let (ko_kind, en_kind) = kind_names(kind);
                Error::new(
                    ErrorCode::NotFound,
                    lang,
                    format!(
                        "{} 찾을 수 없어요. 다른 기기에서 지워졌을 수 있어요.",
                        with(ko_kind, Particle::EulReul)
                    ),
                    format!(
                        "That {en_kind} no longer exists; it may have been deleted on another device."
                    ),
                )
            }
            DocError::NotMember(_) => Error::new(
                ErrorCode::Forbidden,
                lang,
                "이 가족의 구성원이 아니에요.",
                "That person is not a member of this family.",
            ),
            DocError::Forbidden(_) => Error::code(ErrorCode::Forbidden, lang),
            DocError::AlreadyMember(_) => Error::code(ErrorCode::AlreadyMember, lang),
            DocError::NameTaken(name) => Error::new(
                ErrorCode::NameTaken,
                lang,
                format!(
                    "{} 이미 가족 안에서 쓰는 호칭이에요.",
                    with(&format!("'{name}'"), Particle::EunNeun)
                ),
                format!("“{name}” is already used by someone in this family."),
            ),
            DocError::NotParticipant { .. } => Error::new(
                ErrorCode::Forbidden,
                lang,
                "이 미션에 참여하지 않아서 완료할 수 없어요.",
                "You do not take part in this mission.",
            ),
            DocError::NoParticipants => Error::new(
                ErrorCode::InvalidInput,
                lang,
                "미션에는 참여하는 가족이 한 명 이상 있어야 해요.",
                "A mission needs at least one participant.",
            )
            .about(Field::MissionTitle),
            // A local edit that breaks the family document's rules (every device would
            // set it aside): not the user's to make.
            DocError::Refused(_) => Error::code(ErrorCode::Forbidden, lang),
            DocError::EditTooLarge { .. } => Error::new(
                ErrorCode::TooLarge,
                lang,
                "한 번에 바꾸기에는 너무 많아요. 나누어서 해 주세요.",
                "That is too much to change at once; please do it in smaller steps.",
            ),
            DocError::Automerge(_) | DocError::Schema(_) | DocError::VolumeNotLoaded(_) => {
                Error::code(ErrorCode::Storage, lang)
            }
        }
    }

    /// A relay refusal with its protocol code.
    pub fn from_wire(code: Wire, lang: Lang) -> Self {
        let ours = match code {
            Wire::Forbidden => ErrorCode::Forbidden,
            Wire::NotFound | Wire::UnknownUser => ErrorCode::NotFound,
            Wire::AlreadyExists => ErrorCode::EmailTaken,
            Wire::AlreadyMember => ErrorCode::AlreadyMember,
            Wire::AlreadyInvited => ErrorCode::AlreadyInvited,
            Wire::InviteExpired | Wire::InviteWithdrawn | Wire::InviteAnswered => {
                ErrorCode::InviteClosed
            }
            Wire::NameTaken => ErrorCode::NameTaken,
            Wire::InvalidInput => ErrorCode::InvalidInput,
            Wire::TooLarge => ErrorCode::TooLarge,
            Wire::RateLimited => ErrorCode::RateLimited,
            Wire::QuotaExceeded => ErrorCode::QuotaExceeded,
            Wire::DeviceRevoked | Wire::UnknownDevice => ErrorCode::DeviceRevoked,
            Wire::InvalidLinkCode => ErrorCode::BadLinkCode,
            Wire::LinkRejected => ErrorCode::LinkRejected,
            Wire::LinkExpired | Wire::LinkPending => ErrorCode::LinkExpired,
            Wire::LinkClaimed => ErrorCode::LinkClaimed,
            Wire::LinkAnswered => ErrorCode::LinkAnswered,
            Wire::BadSignature
            | Wire::ChallengeExpired
            | Wire::ChallengeReplayed
            | Wire::NotSignedIn
            | Wire::AlreadySignedIn => ErrorCode::SignInRefused,
            Wire::ShuttingDown | Wire::Unavailable => ErrorCode::Offline,
            Wire::WrongRelay => ErrorCode::BadRelay,
            _ => ErrorCode::Relay,
        };
        Error::code(ours, lang)
    }

    /// A failure of syncing, the relay or the store underneath.
    pub fn from_sync(e: &SyncError, lang: Lang) -> Self {
        match e {
            SyncError::Offline | SyncError::Unreachable(_) => Error::offline(lang),
            SyncError::Untrusted(why) => Error::untrusted(why, lang),
            SyncError::Timeout => Error::code(ErrorCode::Timeout, lang),
            SyncError::Auth {
                code: Wire::WrongRelay,
                message,
            } => Error::wrong_relay(message, lang),
            SyncError::Refused { code, .. } | SyncError::Auth { code, .. } => {
                Error::from_wire(*code, lang)
            }
            SyncError::EmailTaken { email } => Error::new(
                ErrorCode::EmailTaken,
                lang,
                format!(
                    "{} 만든 계정이 이미 있어요. 그 계정의 기기에서 이 기기를 연결하거나 복구 문구로 되살려 주세요.",
                    with(email, Particle::EuroRo)
                ),
                format!(
                    "An account with {email} already exists. Link this device from one of its devices, or restore it with its recovery phrase."
                ),
            ),
            SyncError::Store(e) => Error::from_store(e, lang),
            SyncError::Doc(e) => Error::from_doc(e, lang),
            SyncError::Host(e) => Error::from_host(e, lang),
            SyncError::Account(e) => Error::from_account(e, lang),
            SyncError::Relay(e) => Error::from_relay(e, lang),
            SyncError::Protocol(detail) => {
                tracing::warn!(%detail, "protocol error");
                Error::code(ErrorCode::Relay, lang)
            }
            SyncError::Sealed(why) => {
                tracing::warn!(%why, "a blob does not open with its entry's key");
                Error::code(ErrorCode::BadPhoto, lang)
            }
            SyncError::Tampered { doc, seqs } => {
                tracing::warn!(%doc, ?seqs, "sealed chunks arrived altered");
                Error::code(ErrorCode::Tampered, lang)
            }
            SyncError::Io(e) => Error::from_io(e, lang),
        }
    }

    /// The store failed.
    pub fn from_store(e: &StoreError, lang: Lang) -> Self {
        tracing::error!(error = %e, "local store failure");
        Error::code(ErrorCode::Storage, lang)
    }

    /// Applying synced data failed.
    pub fn from_host(e: &HostError, lang: Lang) -> Self {
        match e {
            HostError::Store(e) => Error::from_store(e, lang),
            HostError::Doc(e) => Error::from_doc(e, lang),
            HostError::WaitingForKeys(_) => Error::code(ErrorCode::WaitingForKeys, lang),
            HostError::Overtaken(doc) => {
                tracing::warn!(%doc, "another process kept writing the document; edit not made");
                Error::code(ErrorCode::Busy, lang)
            }
            HostError::VolumeNotSynced(family, year) => {
                tracing::warn!(%family, year, "an edit needs a volume this device does not keep");
                Error::code(ErrorCode::NotFound, lang)
            }
            HostError::WrongKind(..)
            | HostError::OtherUser { .. }
            | HostError::OtherPersonalDoc { .. }
            | HostError::Keys(_) => {
                tracing::error!(error = %e, "device state does not match");
                Error::code(ErrorCode::Storage, lang)
            }
        }
    }

    /// The account could not be read or written.
    pub fn from_account(e: &AccountError, lang: Lang) -> Self {
        match e {
            AccountError::BadPhrase(_) => Error::code(ErrorCode::BadPhrase, lang),
            AccountError::NoUserKey => Error::code(ErrorCode::NoRecoveryPhrase, lang),
            AccountError::Store(e) => Error::from_store(e, lang),
            AccountError::Secrets(_) | AccountError::Corrupt(_) | AccountError::Randomness(_) => {
                tracing::error!(error = %e, "account storage failure");
                Error::code(ErrorCode::Storage, lang)
            }
        }
    }

    /// The relay's address or trust is unusable.
    pub fn from_relay(e: &RelayError, lang: Lang) -> Self {
        match e {
            RelayError::BadUrl(url) => Error::new(
                ErrorCode::BadRelay,
                lang,
                format!(
                    "{} 서버 주소가 아니에요. 예: https://relay.example.com",
                    with(&format!("'{url}'"), Particle::EunNeun)
                ),
                format!("“{url}” is not a server address; for example https://relay.example.com"),
            ),
            RelayError::CaFile { path, reason } => Error::new(
                ErrorCode::BadRelay,
                lang,
                format!(
                    "인증서 파일 {} 쓸 수 없어요: {reason}",
                    with(&path.display().to_string(), Particle::EulReul)
                ),
                format!(
                    "The certificate file {} cannot be used: {reason}",
                    path.display()
                ),
            ),
            RelayError::Tls(reason) => Error::new(
                ErrorCode::BadRelay,
                lang,
                format!("보안 연결을 준비하지 못했어요: {reason}"),
                format!("The secure connection could not be set up: {reason}"),
            ),
        }
    }

    /// A photo could not be prepared.
    pub fn from_photo(e: &PhotoError, lang: Lang) -> Self {
        match e {
            PhotoError::TooLarge => Error::new(
                ErrorCode::TooLarge,
                lang,
                "사진이 너무 커요.",
                "That photo is too large.",
            ),
            PhotoError::Unsupported(kind) => Error::new(
                ErrorCode::BadPhoto,
                lang,
                format!("{kind} 사진은 아직 열 수 없어요. JPEG, PNG, WebP 또는 GIF로 보내 주세요."),
                format!("{kind} photos cannot be opened yet; please use JPEG, PNG, WebP or GIF."),
            ),
            PhotoError::NotAnImage | PhotoError::Corrupt(_) => {
                Error::code(ErrorCode::BadPhoto, lang)
            }
        }
    }

    /// A recording could not be converted.
    pub fn from_audio(e: &doran_audio::AudioError, lang: Lang) -> Self {
        use doran_audio::AudioError as A;
        match e {
            A::TooLong { .. } => Error::code(ErrorCode::AudioTooLong, lang),
            A::Io(e) => Error::from_io(e, lang),
            A::NotAudio | A::UnsupportedCodec(_) | A::Truncated | A::Empty | A::Corrupt(_) => {
                Error::code(ErrorCode::BadAudio, lang)
            }
        }
    }

    /// A file could not be read or written.
    pub fn from_io(e: &std::io::Error, lang: Lang) -> Self {
        Error::new(
            ErrorCode::File,
            lang,
            format!("파일을 읽거나 쓰지 못했어요: {e}"),
            format!("A file could not be read or written: {e}"),
        )
    }
}

/// The standard (Korean, English) message of a code.
fn standard(code: ErrorCode) -> (&'static str, &'static str) {
    match code {
        ErrorCode::NoAccount => (
            "이 기기에 아직 계정이 없어요. 계정을 만들거나 되살려 주세요.",
            "There is no account on this device yet: create one or restore yours.",
        ),
        ErrorCode::HasAccount => (
            "이 기기에는 이미 계정이 있어요.",
            "This device already has an account.",
        ),
        ErrorCode::Offline => (
            "지금은 오프라인이에요. 변경한 내용은 이 기기에 저장되어 있고, 연결되면 보내요.",
            "You are offline. Your changes are kept on this device and will be sent when the connection is back.",
        ),
        ErrorCode::Timeout => (
            "서버가 제때 답하지 않았어요. 잠시 후 다시 해 주세요.",
            "The server did not answer in time. Please try again shortly.",
        ),
        ErrorCode::InvalidInput => ("입력한 내용이 올바르지 않아요.", "That input is not valid."),
        ErrorCode::NotFound => ("찾을 수 없어요.", "It could not be found."),
        ErrorCode::Forbidden => (
            "이 일은 호스트나 작성한 사람만 할 수 있어요.",
            "Only the host, or whoever created it, can do that.",
        ),
        ErrorCode::UnknownFamily => (
            "이 기기에서 찾을 수 없는 가족이에요.",
            "That family is not one of yours on this device.",
        ),
        ErrorCode::RemovedFromFamily => (
            "이 가족에서 나가게 되어 더 이상 바꿀 수 없어요. 지금까지의 내용은 볼 수 있어요.",
            "You are no longer a member of this family, so it cannot be changed. What was there is still readable.",
        ),
        ErrorCode::WaitingForKeys => (
            "이 기기는 아직 가족의 열쇠를 받지 못했어요. 가족 중 한 명의 기기가 연결되면 볼 수 있어요.",
            "This device has not been given the family's keys yet. It can read the family once a family member's device is online.",
        ),
        ErrorCode::AlreadyMember => (
            "이미 가족 구성원이에요.",
            "That person is already a member of the family.",
        ),
        ErrorCode::AlreadyInvited => (
            "이미 초대를 보냈어요. 답을 기다리고 있어요.",
            "An invite is already waiting for that person's answer.",
        ),
        ErrorCode::NameTaken => (
            "이 호칭은 이미 가족 안에서 쓰고 있어요.",
            "That name is already used in this family.",
        ),
        ErrorCode::EmailTaken => (
            "이 이메일로 만든 계정이 이미 있어요.",
            "An account with this email already exists.",
        ),
        ErrorCode::NoSuchUser => (
            "그 이메일을 쓰는 사람을 찾지 못했어요. 정확한 이메일을 입력해 주세요.",
            "Nobody uses exactly that email. Please check it.",
        ),
        ErrorCode::InviteClosed => (
            "이 초대는 이미 답했거나, 취소되었거나, 기한이 지났어요.",
            "This invite was already answered, withdrawn or has expired.",
        ),
        ErrorCode::BadPhrase => (
            "복구 문구가 올바르지 않아요. 24개 단어를 순서대로 입력해 주세요.",
            "That recovery phrase is not valid. Enter its 24 words in order.",
        ),
        ErrorCode::NoRecoveryPhrase => (
            "이 기기는 연결 코드로 추가되어 복구 문구가 없어요. 처음 기기에서 확인해 주세요.",
            "This device was linked with a code and has no recovery phrase; see it on your first device.",
        ),
        ErrorCode::BadLinkCode => (
            "연결 코드가 틀렸거나 만료되었어요. 새 코드를 받아 주세요.",
            "That link code is wrong or has expired. Get a new one.",
        ),
        ErrorCode::LinkRejected => (
            "다른 기기에서 이 기기의 연결을 거절했어요.",
            "Your other device refused to add this device.",
        ),
        ErrorCode::LinkExpired => (
            "다른 기기에서 제때 확인하지 않아 연결이 만료되었어요. 새 코드를 받아 주세요.",
            "The link was not confirmed on your other device in time. Get a new code.",
        ),
        ErrorCode::LinkClaimed => (
            "이 연결 코드는 이미 다른 기기가 사용했어요. 새 코드를 받아 주세요.",
            "Another device already used this link code. Get a new one.",
        ),
        ErrorCode::LinkAnswered => (
            "이 연결 요청은 이미 수락되었거나 거절되었어요.",
            "This link request was already confirmed or rejected.",
        ),
        ErrorCode::SafetyCodeMismatch => (
            "안전 코드가 달라요. 숫자를 다시 확인해 주세요.",
            "The safety codes differ. Check the digits again.",
        ),
        ErrorCode::DeviceRevoked => (
            "이 기기는 계정에서 해제되었어요. 다시 연결해 주세요.",
            "This device was removed from the account. Link it again.",
        ),
        ErrorCode::SignInRefused => (
            "서버가 로그인을 거절했어요.",
            "The server refused to sign this device in.",
        ),
        ErrorCode::QuotaExceeded => ("저장 공간이 가득 찼어요.", "The storage space is full."),
        ErrorCode::TooLarge => ("파일이 너무 커요.", "That file is too large."),
        ErrorCode::RateLimited => (
            "요청이 너무 많아요. 잠시 후 다시 해 주세요.",
            "Too many requests. Please try again shortly.",
        ),
        ErrorCode::PastMonth => (
            "지난달 미션은 바꿀 수 없어요.",
            "Missions of past months cannot be changed.",
        ),
        ErrorCode::BadPhoto => (
            "사진 파일을 읽을 수 없어요.",
            "That file is not a photo this app can read.",
        ),
        ErrorCode::BadAudio => (
            "녹음 파일을 읽을 수 없어요. WebM, Ogg, M4A, WAV 또는 MP3 파일을 보내 주세요.",
            "That recording cannot be read; use WebM, Ogg, M4A, WAV or MP3.",
        ),
        ErrorCode::AudioTooLong => (
            "음성메시지는 3분까지 보낼 수 있어요.",
            "Voice messages can be at most 3 minutes long.",
        ),
        ErrorCode::File => (
            "파일을 읽거나 쓰지 못했어요.",
            "A file could not be read or written.",
        ),
        ErrorCode::BadRelay => (
            "서버 주소를 쓸 수 없어요.",
            "That server address cannot be used.",
        ),
        ErrorCode::Busy => (
            "이 기기의 다른 프로그램이 같은 곳을 고치고 있어서 저장하지 못했어요. 다시 해 주세요.",
            "Another program on this device was changing the same thing, so nothing was saved. Please try again.",
        ),
        ErrorCode::Storage => (
            "이 기기의 저장소에 문제가 생겼어요.",
            "Something went wrong with this device's storage.",
        ),
        ErrorCode::Relay => (
            "서버에 문제가 생겼어요. 잠시 후 다시 해 주세요.",
            "The server had a problem. Please try again shortly.",
        ),
        ErrorCode::Tampered => (
            "서버에서 받은 가족 기록 일부가 중간에 바뀌어 있어서 받지 않았어요. 가족이 쓴 내용은 그대로예요.",
            "Some of the family's data arrived altered on its way from the server and was not taken. What your family wrote is unchanged.",
        ),
    }
}

/// A field's stable key, for apps that highlight it.
fn field_key(field: Field) -> &'static str {
    match field {
        Field::FamilyTitle => "family_title",
        Field::MemberName => "member_name",
        Field::Nickname => "nickname",
        Field::MissionTitle => "mission_title",
        Field::EventTitle => "event_title",
        Field::EventNotes => "event_notes",
        Field::EventColor => "event_color",
        Field::AlbumName => "album_name",
        Field::PhotoCaption => "photo_caption",
        Field::Comment => "comment",
        Field::VoiceTitle => "voice_title",
        Field::VoiceAlbumName => "voice_album_name",
        Field::VoiceCover => "voice_cover",
        Field::VoiceDuration => "voice_duration",
        Field::PhotoMeta => "photo",
        Field::Mood => "mood",
        Field::Language => "language",
        Field::Email => "email",
    }
}

/// A field's name in Korean and English, as a sentence names it.
fn field_names(field: Field) -> (&'static str, &'static str) {
    match field {
        Field::FamilyTitle => ("가족 이름", "The family name"),
        Field::MemberName => ("호칭", "The name in the family"),
        Field::Nickname => ("닉네임", "The nickname"),
        Field::MissionTitle => ("미션 제목", "The mission title"),
        Field::EventTitle => ("일정 제목", "The event title"),
        Field::EventNotes => ("일정 메모", "The event notes"),
        Field::EventColor => ("일정 색", "The event colour"),
        Field::AlbumName => ("앨범 이름", "The album name"),
        Field::PhotoCaption => ("사진 설명", "The caption"),
        Field::Comment => ("댓글", "The comment"),
        Field::VoiceTitle => ("음성메시지 제목", "The voice message title"),
        Field::VoiceAlbumName => ("음성 앨범 이름", "The voice album name"),
        Field::VoiceCover => ("음성 앨범 표지", "The voice album cover"),
        Field::VoiceDuration => ("녹음 길이", "The recording length"),
        Field::PhotoMeta => ("사진 정보", "The photo"),
        Field::Mood => ("기분", "The mood"),
        Field::Language => ("언어", "The language"),
        Field::Email => ("이메일", "The email"),
    }
}

/// An entity kind (as [`DocError::NotFound`] names it) in Korean and English.
fn kind_names(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "mission" => ("미션", "mission"),
        "event" => ("일정", "event"),
        "album" => ("앨범", "album"),
        "photo" => ("사진", "photo"),
        "comment" => ("댓글", "comment"),
        "voice album" => ("음성 앨범", "voice album"),
        "voice message" | "voice" => ("음성메시지", "voice message"),
        "member" => ("가족 구성원", "member"),
        _ => ("항목", "item"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_in_the_middle_is_told_in_one_language() {
        let wrong = |named: &str, lang| {
            Error::from_sync(
                &SyncError::Auth {
                    code: Wire::WrongRelay,
                    message: named.to_owned(),
                },
                lang,
            )
        };
        let ko = wrong("relay.example.org:443", Lang::Ko);
        assert_eq!(ko.code, ErrorCode::BadRelay);
        assert!(
            ko.message.contains("다른 서버(relay.example.org:443)라고"),
            "{}",
            ko.message
        );
        assert!(!ko.message.contains("server"), "{}", ko.message);
        let unreadable = wrong(doran_client_core::sync::UNREADABLE, Lang::En);
        assert!(
            unreadable
                .message
                .starts_with("The server at this address introduces itself as another server. "),
            "{}",
            unreadable.message
        );
    }

    #[test]
    fn messages_are_for_people_in_their_language() {
        let e = DocError::Length {
            field: Field::MissionTitle,
            min: 1,
            max: 17,
            got: 20,
        };
        let ko = Error::from_doc(&e, Lang::Ko);
        assert_eq!(ko.code, ErrorCode::InvalidInput);
        assert_eq!(ko.field, Some("mission_title"));
        assert_eq!(ko.message, "미션 제목은 17자까지 쓸 수 있어요 (지금 20자).");
        let en = Error::from_doc(&e, Lang::En);
        assert_eq!(
            en.message,
            "The mission title can be at most 17 characters (now 20)."
        );
        assert!(!en.message.contains("MissionTitle"));
        let short = DocError::Length {
            field: Field::FamilyTitle,
            min: 1,
            max: 10,
            got: 0,
        };
        assert_eq!(
            Error::from_doc(&short, Lang::Ko).message,
            "가족 이름을 입력해 주세요 (1–10자)."
        );

        let offline = Error::from_sync(&SyncError::Unreachable("refused".into()), Lang::En);
        assert_eq!(offline.code, ErrorCode::Offline);
        assert!(offline.message.contains("kept on this device"));

        let json = serde_json::to_value(&ko).unwrap();
        assert_eq!(json["code"], "invalid_input");
        assert_eq!(json["field"], "mission_title");
    }

    #[test]
    fn relay_codes_map_to_ours() {
        assert_eq!(
            Error::from_wire(Wire::AlreadyInvited, Lang::Ko).code,
            ErrorCode::AlreadyInvited
        );
        assert_eq!(
            Error::from_wire(Wire::InviteWithdrawn, Lang::Ko).code,
            ErrorCode::InviteClosed
        );
        assert_eq!(
            Error::from_wire(Wire::DeviceRevoked, Lang::Ko).code,
            ErrorCode::DeviceRevoked
        );
        assert_eq!(
            Error::from_wire(Wire::Internal, Lang::Ko).code,
            ErrorCode::Relay
        );
    }
}
