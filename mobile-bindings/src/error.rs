//! [`DoranError`]: the one error every call throws, and [`KeychainError`], the one the
//! app's keychain throws back.
//!
//! A *flat* error: one variant per [`doran_device::ErrorCode`], carrying only the
//! facade's message, which is already in the user's language and names the field it is
//! about ("미션 제목은 17자까지 쓸 수 있어요"). Flat because that makes the message the
//! platform's own error text everywhere — Kotlin `e.message`, Python `str(e)`, Swift
//! `error.localizedDescription` (with `DoranError+Message.swift`) — where a variant
//! with fields would read "message=…, field=…" in Kotlin (and a field called `message`
//! does not compile there). Apps branch on the variant and show the message as it is.

use doran_device::ErrorCode;

/// Why a call failed. The message is for the user, as it is; the variant is for code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum DoranError {
    /// There is no account on this device yet.
    #[error("{0}")]
    NoAccount(String),
    /// This device already has an account.
    #[error("{0}")]
    HasAccount(String),
    /// The relay cannot be reached now; local edits are kept and sent later.
    #[error("{0}")]
    Offline(String),
    /// The relay did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// A field is too short, too long, or holds characters that are not allowed.
    #[error("{0}")]
    InvalidInput(String),
    /// The thing asked for does not exist (or was deleted, maybe on another device).
    #[error("{0}")]
    NotFound(String),
    /// Only the host, or only the author, may do this.
    #[error("{0}")]
    Forbidden(String),
    /// The family is not one of the user's on this device.
    #[error("{0}")]
    UnknownFamily(String),
    /// The user is no longer a member of this family; its copy here is read-only.
    #[error("{0}")]
    RemovedFromFamily(String),
    /// The family is sealed end to end and this device has not been given its keys
    /// yet.
    #[error("{0}")]
    WaitingForKeys(String),
    /// The person is already a member.
    #[error("{0}")]
    AlreadyMember(String),
    /// The person already has a pending invite to this family.
    #[error("{0}")]
    AlreadyInvited(String),
    /// The 호칭 is already used in the family.
    #[error("{0}")]
    NameTaken(String),
    /// An account with this email already exists on the relay.
    #[error("{0}")]
    EmailTaken(String),
    /// Nobody on the relay has exactly this email.
    #[error("{0}")]
    NoSuchUser(String),
    /// The invite can no longer be answered (answered, withdrawn or expired).
    #[error("{0}")]
    InviteClosed(String),
    /// The recovery phrase is not valid.
    #[error("{0}")]
    BadPhrase(String),
    /// This device was linked with a code and holds no recovery phrase.
    #[error("{0}")]
    NoRecoveryPhrase(String),
    /// The link code is wrong, used or expired.
    #[error("{0}")]
    BadLinkCode(String),
    /// Another device of the account refused to add this one.
    #[error("{0}")]
    LinkRejected(String),
    /// The link was not confirmed on another device in time.
    #[error("{0}")]
    LinkExpired(String),
    /// Another device already used this link code.
    #[error("{0}")]
    LinkClaimed(String),
    /// The link request was already confirmed or rejected.
    #[error("{0}")]
    LinkAnswered(String),
    /// The safety code typed is not the one this device shows for that member.
    #[error("{0}")]
    SafetyCodeMismatch(String),
    /// This device was revoked or the relay does not know it: sign in again.
    #[error("{0}")]
    DeviceRevoked(String),
    /// The relay refused the sign-in.
    #[error("{0}")]
    SignInRefused(String),
    /// The family's or the user's storage is full.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A file is too large.
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests; try again shortly.
    #[error("{0}")]
    RateLimited(String),
    /// The mission belongs to a past month, which is read-only.
    #[error("{0}")]
    PastMonth(String),
    /// Another program on this device kept changing the same thing at the same
    /// moment; nothing was saved. Trying again works.
    #[error("{0}")]
    Busy(String),
    /// The file is not a photo this app can read.
    #[error("{0}")]
    BadPhoto(String),
    /// The file is not a recording this app can convert.
    #[error("{0}")]
    BadAudio(String),
    /// The recording is longer than 3 minutes.
    #[error("{0}")]
    AudioTooLong(String),
    /// A file could not be read or written.
    #[error("{0}")]
    File(String),
    /// The relay's address or its certificate authority file cannot be used, its
    /// certificate is not trusted, or the server at that address says it is another
    /// one (a server in the middle): nothing was signed for it.
    #[error("{0}")]
    BadRelay(String),
    /// The device's storage failed.
    #[error("{0}")]
    Storage(String),
    /// The relay failed or broke the protocol.
    #[error("{0}")]
    Relay(String),
    /// Something of a sealed family arrived altered on its way and was not taken (the
    /// relay, or someone between, tampered with it); what the app shows is unchanged.
    #[error("{0}")]
    Tampered(String),
}

/// The result of a call.
pub type Result<T, E = DoranError> = std::result::Result<T, E>;

impl From<doran_device::Error> for DoranError {
    fn from(e: doran_device::Error) -> Self {
        let m = e.message;
        match e.code {
            ErrorCode::NoAccount => DoranError::NoAccount(m),
            ErrorCode::HasAccount => DoranError::HasAccount(m),
            ErrorCode::Offline => DoranError::Offline(m),
            ErrorCode::Timeout => DoranError::Timeout(m),
            ErrorCode::InvalidInput => DoranError::InvalidInput(m),
            ErrorCode::NotFound => DoranError::NotFound(m),
            ErrorCode::Forbidden => DoranError::Forbidden(m),
            ErrorCode::UnknownFamily => DoranError::UnknownFamily(m),
            ErrorCode::RemovedFromFamily => DoranError::RemovedFromFamily(m),
            ErrorCode::WaitingForKeys => DoranError::WaitingForKeys(m),
            ErrorCode::AlreadyMember => DoranError::AlreadyMember(m),
            ErrorCode::AlreadyInvited => DoranError::AlreadyInvited(m),
            ErrorCode::NameTaken => DoranError::NameTaken(m),
            ErrorCode::EmailTaken => DoranError::EmailTaken(m),
            ErrorCode::NoSuchUser => DoranError::NoSuchUser(m),
            ErrorCode::InviteClosed => DoranError::InviteClosed(m),
            ErrorCode::BadPhrase => DoranError::BadPhrase(m),
            ErrorCode::NoRecoveryPhrase => DoranError::NoRecoveryPhrase(m),
            ErrorCode::BadLinkCode => DoranError::BadLinkCode(m),
            ErrorCode::LinkRejected => DoranError::LinkRejected(m),
            ErrorCode::LinkExpired => DoranError::LinkExpired(m),
            ErrorCode::LinkClaimed => DoranError::LinkClaimed(m),
            ErrorCode::LinkAnswered => DoranError::LinkAnswered(m),
            ErrorCode::SafetyCodeMismatch => DoranError::SafetyCodeMismatch(m),
            ErrorCode::DeviceRevoked => DoranError::DeviceRevoked(m),
            ErrorCode::SignInRefused => DoranError::SignInRefused(m),
            ErrorCode::QuotaExceeded => DoranError::QuotaExceeded(m),
            ErrorCode::TooLarge => DoranError::TooLarge(m),
            ErrorCode::RateLimited => DoranError::RateLimited(m),
            ErrorCode::PastMonth => DoranError::PastMonth(m),
            ErrorCode::BadPhoto => DoranError::BadPhoto(m),
            ErrorCode::BadAudio => DoranError::BadAudio(m),
            ErrorCode::AudioTooLong => DoranError::AudioTooLong(m),
            ErrorCode::File => DoranError::File(m),
            ErrorCode::BadRelay => DoranError::BadRelay(m),
            ErrorCode::Busy => DoranError::Busy(m),
            ErrorCode::Storage => DoranError::Storage(m),
            ErrorCode::Relay => DoranError::Relay(m),
            ErrorCode::Tampered => DoranError::Tampered(m),
        }
    }
}

/// What the app's [`SecretStore`](crate::SecretStore) throws when the platform keychain
/// fails (locked before the first unlock, denied, full). A separate type because it
/// travels the other way, from the app into Rust, and needs a field to carry the
/// keychain's own words; the device turns it into a [`DoranError::Storage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum KeychainError {
    /// The keychain refused or failed.
    #[error("the keychain failed: {reason}")]
    Failed {
        /// What the platform said (for logs; the user sees a storage error).
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeychainError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeychainError::Failed { reason: e.reason }
    }
}
