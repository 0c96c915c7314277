//! The command line, as clap parses it.
//!
//! A FAMILY is its id or its title (when no other of your families has it); a MEMBER
//! is a user id or a 호칭 in that family.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `doran`: Dorandoran from the command line — for power users, scripts and tests.
///
/// Every editing command works offline: it saves on this device and says the change is
/// queued; `doran sync` sends it.
#[derive(Debug, Parser)]
#[command(name = "doran", version, about)]
pub struct Cli {
    /// This device's home: its local store, keys and blob cache.
    #[arg(long, global = true, env = "DORAN_HOME")]
    pub home: Option<PathBuf>,
    /// Machine-readable output: one JSON value on stdout (errors: one on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// An extra CA certificate (PEM) to trust for an https:// relay you host yourself.
    #[arg(long, global = true, env = "DORAN_CA_FILE", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Language for messages before your account's setting is known: ko or en.
    #[arg(long, global = true, env = "DORAN_LANG", default_value = "ko")]
    pub lang: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, show or restore the account on this device.
    #[command(subcommand)]
    Account(AccountCmd),
    /// This account's devices: link a new one, list, revoke.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Families: create, list, show, rename, your 호칭, leave, delete, remove a member.
    #[command(subcommand)]
    Family(FamilyCmd),
    /// Invitations to a family.
    #[command(subcommand)]
    Invite(InviteCmd),
    /// Family missions.
    #[command(subcommand)]
    Mission(MissionCmd),
    /// The family calendar.
    #[command(subcommand)]
    Event(EventCmd),
    /// Photo albums.
    #[command(subcommand)]
    Album(AlbumCmd),
    /// Photos: add, list, show, get, like, comment, delete.
    #[command(subcommand)]
    Photo(PhotoCmd),
    /// Voice messages and voice albums.
    #[command(subcommand)]
    Voice(VoiceCmd),
    /// Audio conversion.
    #[command(subcommand)]
    Audio(AudioCmd),
    /// The family's badges (and each member's) with progress.
    Badges {
        /// Family.
        family: String,
    },
    /// The home screen of a family.
    Home {
        /// Family.
        family: String,
    },
    /// Who in a family is online (접속중), and when the others were last seen.
    Presence {
        /// Family.
        family: String,
    },
    /// The notifications in your bell.
    #[command(subcommand)]
    Notifications(NotificationsCmd),
    /// Your profile and settings.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Connect, exchange everything, exit when up to date.
    Sync {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Stay connected and print notifications as they come (every event with --json),
    /// and errors on stderr; ends when the device is signed out or its sync stops for
    /// good (e.g. `bad_relay`).
    Watch,
    /// The whole family state.
    Export {
        /// Family.
        family: String,
    },
}

/// `doran account …`
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Create an account on this device (a new key pair) and register it with a relay.
    Create(CreateAccount),
    /// Show this device's account.
    Show,
    /// Print the recovery phrase (24 words) that restores the account.
    RecoveryPhrase,
    /// Restore an account on this device from its recovery phrase.
    Restore {
        /// The relay, e.g. http://127.0.0.1:7070 or https://relay.example.com.
        #[arg(long)]
        server: String,
        /// The 24 words, in one argument.
        #[arg(long)]
        phrase: String,
    },
    /// Remove the account's keys from this device.
    SignOut,
}

/// `doran account create`.
#[derive(Debug, Args)]
pub struct CreateAccount {
    /// The relay, e.g. http://127.0.0.1:7070 or https://relay.example.com.
    #[arg(long)]
    pub server: String,
    /// Email (or handle) others find you by.
    #[arg(long)]
    pub email: String,
    /// Nickname, 2–15 characters.
    #[arg(long)]
    pub name: String,
}

/// `doran device …`
#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Issue a short code (on a signed-in device) to link a new one.
    LinkCode,
    /// Link this new device to an account with a code from another device; waits
    /// until that device confirms it (`doran device confirm`).
    Link {
        /// The relay.
        #[arg(long)]
        server: String,
        /// The code shown on the other device (`doran device link-code`).
        #[arg(long)]
        code: String,
    },
    /// List this account's devices (this one marked).
    List,
    /// List new devices waiting for this account to confirm them.
    Links,
    /// Confirm (or with --reject, refuse) a new device waiting to join this account.
    Confirm {
        /// The request id (`doran device links`).
        link: String,
        /// Refuse the device instead: its code stops working.
        #[arg(long)]
        reject: bool,
    },
    /// Revoke one of this account's devices: it can no longer sign in.
    Revoke {
        /// Device id.
        device: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `doran family …`
#[derive(Debug, Subcommand)]
pub enum FamilyCmd {
    /// Create a family (you become its host); prints its id.
    Create {
        /// Title, 1–10 characters.
        title: String,
        /// Your 호칭 in it.
        #[arg(long = "as", default_value = "나")]
        my_name: String,
        /// Keep its document in the clear on the relay (families are sealed end to
        /// end unless this is given: the relay keeps only envelopes of their
        /// documents, and an invitee is let into one as the invite goes out).
        #[arg(long)]
        clear: bool,
        /// Sealed end to end (the default; kept for scripts that ask for it).
        #[arg(long, hide = true, conflicts_with = "clear")]
        sealed: bool,
    },
    /// Your families.
    List,
    /// A family: title, members with mood and presence.
    Show {
        /// Family.
        family: String,
    },
    /// Seal a family created clear end to end (host): from now on the relay keeps
    /// only envelopes of its documents, and drops its clear history once another
    /// member's device confirms the sealed snapshot. Run `doran sync` after.
    Seal {
        /// Family.
        family: String,
    },
    /// Rename a family (host).
    Rename {
        /// Family.
        family: String,
        /// New title.
        title: String,
    },
    /// Change your own 호칭 in a family.
    SetName {
        /// Family.
        family: String,
        /// Your new 호칭.
        name: String,
    },
    /// Leave a family.
    Leave {
        /// Family.
        family: String,
    },
    /// Delete a family with everything in it (host).
    Delete {
        /// Family.
        family: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Remove a member (host).
    Remove {
        /// Family.
        family: String,
        /// The member (user id or 호칭).
        member: String,
    },
    /// The safety code to compare in person with a member: the same sixty digits on
    /// their device mean neither device was given another key by the relay.
    SafetyCode {
        /// Family.
        family: String,
        /// The member (user id or 호칭).
        member: String,
    },
    /// Mark a member verified by typing the safety code their device shows for you.
    Verify {
        /// Family.
        family: String,
        /// The member (user id or 호칭).
        member: String,
        /// The sixty digits their device shows (spaces allowed).
        #[arg(required = true, num_args = 1..)]
        code: Vec<String>,
    },
}

/// `doran invite …`
#[derive(Debug, Subcommand)]
pub enum InviteCmd {
    /// Invite someone by exact email, with a proposed 호칭.
    Send {
        /// Family.
        family: String,
        /// Their exact email or handle.
        email: String,
        /// The 호칭 you propose (e.g. 아빠).
        #[arg(long = "as")]
        name: String,
    },
    /// Invitations addressed to you (and with --sent, those your families sent).
    List {
        /// Also the invitations your families sent and wait on.
        #[arg(long)]
        sent: bool,
    },
    /// Accept an invitation.
    Accept {
        /// Invite id.
        invite: String,
        /// Join under this 호칭 instead of the one proposed (e.g. when it was taken).
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
    },
    /// Reject an invitation.
    Reject {
        /// Invite id.
        invite: String,
    },
    /// Withdraw an invitation your family sent.
    Withdraw {
        /// Invite id.
        invite: String,
    },
}

/// `doran mission …`
#[derive(Debug, Subcommand)]
pub enum MissionCmd {
    /// Add a mission; prints its id.
    Add {
        /// Family.
        family: String,
        /// Title, 1–17 characters.
        title: String,
        /// A participant (user id or 호칭); repeat; all members when omitted.
        #[arg(long = "member")]
        members: Vec<String>,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
    },
    /// Change a mission's title, participants or due date.
    Edit {
        /// Family.
        family: String,
        /// Mission id.
        mission: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// The new participants (user id or 호칭); repeat.
        #[arg(long = "member")]
        members: Vec<String>,
        /// New due date, YYYY-MM-DD.
        #[arg(long, conflicts_with = "no_due")]
        due: Option<String>,
        /// Remove the due date.
        #[arg(long)]
        no_due: bool,
    },
    /// Tick your part of a mission.
    Done {
        /// Family.
        family: String,
        /// Mission id.
        mission: String,
    },
    /// Untick your part.
    Undone {
        /// Family.
        family: String,
        /// Mission id.
        mission: String,
    },
    /// This month's missions with the status box (or earlier months' with --past).
    List {
        /// Family.
        family: String,
        /// Missions of earlier months.
        #[arg(long)]
        past: bool,
        /// Another month, YYYY-MM.
        #[arg(long)]
        month: Option<String>,
    },
    /// Delete a mission.
    Delete {
        /// Family.
        family: String,
        /// Mission id.
        mission: String,
    },
}

/// `doran event …`
#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// Add an event; prints its id.
    Add {
        /// Family.
        family: String,
        /// Title, 1–14 characters.
        #[arg(long)]
        title: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        start: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        end: Option<String>,
        /// Start time, HH:MM (all day when omitted).
        #[arg(long)]
        at: Option<String>,
        /// End time, HH:MM.
        #[arg(long)]
        until: Option<String>,
        /// Notes.
        #[arg(long, default_value = "")]
        notes: String,
        /// Palette color, e.g. #5FCE89.
        #[arg(long)]
        color: Option<String>,
    },
    /// Edit an event.
    Edit {
        /// Family.
        family: String,
        /// Event id.
        event: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New first day.
        #[arg(long)]
        start: Option<String>,
        /// New last day.
        #[arg(long)]
        end: Option<String>,
        /// New notes.
        #[arg(long)]
        notes: Option<String>,
        /// New color.
        #[arg(long)]
        color: Option<String>,
    },
    /// Delete an event.
    Delete {
        /// Family.
        family: String,
        /// Event id.
        event: String,
    },
    /// A month's events and grid.
    List {
        /// Family.
        family: String,
        /// The month, YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
    },
    /// The memories view: days of a month with the photos added on them.
    Memories {
        /// Family.
        family: String,
        /// The month, YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
    },
}

/// `doran album …`
#[derive(Debug, Subcommand)]
pub enum AlbumCmd {
    /// Create a photo album; prints its id.
    Create {
        /// Family.
        family: String,
        /// Name.
        name: String,
    },
    /// The albums with their covers and counts.
    List {
        /// Family.
        family: String,
    },
    /// Rename an album.
    Rename {
        /// Family.
        family: String,
        /// Album id.
        album: String,
        /// New name.
        name: String,
    },
    /// Choose an album's cover.
    Cover {
        /// Family.
        family: String,
        /// Album id.
        album: String,
        /// Photo id.
        photo: String,
    },
    /// Delete an album with its photos.
    Delete {
        /// Family.
        family: String,
        /// Album id.
        album: String,
    },
}

/// `doran photo …`
#[derive(Debug, Subcommand)]
pub enum PhotoCmd {
    /// Add a photo (JPEG, PNG, WebP or GIF) to an album: a display copy (≤ 1920 px,
    /// ≈ 0.9 MB) and a thumbnail are made on this device, without location or other
    /// metadata; prints its id.
    Add {
        /// Family.
        family: String,
        /// Album id.
        album: String,
        /// The photo.
        file: PathBuf,
        /// Caption, up to 200 characters.
        #[arg(long, default_value = "")]
        caption: String,
    },
    /// An album's photos, a page (14) at a time, newest first.
    List {
        /// Family.
        family: String,
        /// Album id.
        album: String,
        /// Page, from 0.
        #[arg(long, default_value_t = 0)]
        page: usize,
    },
    /// A photo with who liked it and its comments.
    Show {
        /// Family.
        family: String,
        /// Photo id.
        photo: String,
    },
    /// Download a photo's display copy, or its thumbnail (verified).
    Get {
        /// Family.
        family: String,
        /// Photo id.
        photo: String,
        /// Where to write the JPEG.
        out: PathBuf,
        /// The thumbnail instead of the display copy.
        #[arg(long = "thumb")]
        thumbnail: bool,
    },
    /// Like a photo.
    Like {
        /// Family.
        family: String,
        /// Photo id.
        photo: String,
    },
    /// Take your like back.
    Unlike {
        /// Family.
        family: String,
        /// Photo id.
        photo: String,
    },
    /// Comment on a photo; prints the comment's id.
    Comment {
        /// Family.
        family: String,
        /// Photo id.
        photo: String,
        /// Text.
        text: String,
    },
    /// Delete one of your comments.
    Uncomment {
        /// Family.
        family: String,
        /// Photo id.
        photo: String,
        /// Comment id.
        comment: String,
    },
    /// Delete a photo (yours; the host any).
    Delete {
        /// Family.
        family: String,
        /// Photo id.
        photo: String,
    },
}

/// `doran voice …`
#[derive(Debug, Subcommand)]
pub enum VoiceCmd {
    /// Create a voice album; prints its id.
    Album {
        /// Family.
        family: String,
        /// Name.
        name: String,
        /// One of the 4 covers.
        #[arg(long, default_value_t = 1)]
        cover: u8,
    },
    /// The voice albums.
    Albums {
        /// Family.
        family: String,
    },
    /// Rename a voice album or change its cover.
    EditAlbum {
        /// Family.
        family: String,
        /// Voice album id.
        album: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New cover (1–4).
        #[arg(long)]
        cover: Option<u8>,
    },
    /// Delete a voice album with its messages.
    DeleteAlbum {
        /// Family.
        family: String,
        /// Voice album id.
        album: String,
    },
    /// Add a recording (WebM/Opus, Ogg/Opus, M4A/AAC, WAV, MP3), converted to MP3 on
    /// this device; prints its id.
    Add {
        /// Family.
        family: String,
        /// Voice album id.
        album: String,
        /// The recording.
        file: PathBuf,
        /// Title, 1–10 characters.
        #[arg(long)]
        title: String,
    },
    /// The messages of a voice album (all albums when omitted).
    List {
        /// Family.
        family: String,
        /// Voice album id.
        album: Option<String>,
    },
    /// Download a voice message's MP3 (verified).
    Get {
        /// Family.
        family: String,
        /// Voice message id.
        voice: String,
        /// Where to write the MP3.
        out: PathBuf,
    },
    /// Delete a voice message (yours; the host any).
    Delete {
        /// Family.
        family: String,
        /// Voice message id.
        voice: String,
    },
}

/// `doran audio …` (no account needed).
#[derive(Debug, Subcommand)]
pub enum AudioCmd {
    /// Convert a recording to MP3 as voice messages are; prints the duration in ms.
    Convert {
        /// The recording.
        input: PathBuf,
        /// The MP3 to write.
        output: PathBuf,
    },
}

/// `doran notifications …`
#[derive(Debug, Subcommand)]
pub enum NotificationsCmd {
    /// The bell, newest first.
    List,
    /// Mark one notification read (all when no id is given).
    Read {
        /// Notification id.
        id: Option<String>,
    },
    /// Dismiss a notification.
    Dismiss {
        /// Notification id.
        id: String,
    },
}

/// `doran profile …`
#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// Change your nickname, today's mood or your profile photo (all or nothing).
    Set {
        /// Nickname.
        #[arg(long)]
        name: Option<String>,
        /// Mood: good, love, nice, sad, head, angry, sleepy.
        #[arg(long)]
        mood: Option<String>,
        /// A profile photo (JPEG, PNG, WebP or GIF), made into a small square JPEG on
        /// this device; everyone in your families can see it.
        #[arg(long, value_name = "FILE", conflicts_with = "no_avatar")]
        avatar: Option<PathBuf>,
        /// Go back to the default avatar.
        #[arg(long)]
        no_avatar: bool,
    },
    /// Show a profile: yours, or a family member's (user id).
    Show {
        /// User id (default: you).
        user: Option<String>,
    },
    /// Download a profile photo (yours, or a family member's), verified.
    Avatar {
        /// User id, or `me`.
        user: String,
        /// Where to write the JPEG.
        out: PathBuf,
    },
    /// Your settings: language and which notifications you get.
    Settings {
        /// Language: ko or en.
        #[arg(long)]
        language: Option<String>,
        /// Family news (missions, photos, events, voice messages): on or off.
        #[arg(long, value_name = "on|off")]
        family_news: Option<String>,
        /// Likes and comments on your photos: on or off.
        #[arg(long, value_name = "on|off")]
        reactions: Option<String>,
    },
}
