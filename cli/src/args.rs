//! The command line, as clap parses it.

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
    /// Machine-readable output (one JSON value on stdout).
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Link devices.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Families: create, list, show, rename, leave, delete, remove a member.
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
    /// Create a photo album.
    #[command(subcommand)]
    Album(AlbumCmd),
    /// Photos: add, get, like, comment.
    #[command(subcommand)]
    Photo(PhotoCmd),
    /// Voice messages.
    #[command(subcommand)]
    Voice(VoiceCmd),
    /// Audio conversion.
    #[command(subcommand)]
    Audio(AudioCmd),
    /// The family's badges with progress.
    Badges {
        /// Family id.
        family: String,
    },
    /// The home screen of a family.
    Home {
        /// Family id.
        family: String,
    },
    /// Notifications received so far.
    Notifications,
    /// Your profile.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Connect, exchange everything, exit when up to date.
    Sync {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Stay connected and print notifications as they come.
    Watch,
    /// The whole family state.
    Export {
        /// Family id.
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
        /// The relay, e.g. http://127.0.0.1:7070.
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
    /// The relay, e.g. http://127.0.0.1:7070.
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
    /// Link this new device to an account with a code from another device.
    Link {
        /// The relay.
        #[arg(long)]
        server: String,
        /// The code.
        #[arg(long)]
        code: String,
    },
    /// List this account's devices.
    List,
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
    },
    /// Your families.
    List,
    /// A family: title, members.
    Show {
        /// Family id.
        family: String,
    },
    /// Rename a family (host).
    Rename {
        /// Family id.
        family: String,
        /// New title.
        title: String,
    },
    /// Leave a family.
    Leave {
        /// Family id.
        family: String,
    },
    /// Delete a family (host).
    Delete {
        /// Family id.
        family: String,
    },
    /// Remove a member (host).
    Remove {
        /// Family id.
        family: String,
        /// The member's user id.
        user: String,
    },
}

/// `doran invite …`
#[derive(Debug, Subcommand)]
pub enum InviteCmd {
    /// Invite someone by exact email, with a proposed 호칭.
    Send {
        /// Family id.
        family: String,
        /// Their exact email or handle.
        email: String,
        /// The 호칭 you propose (e.g. 아빠).
        #[arg(long = "as")]
        name: String,
    },
    /// Invitations addressed to you.
    List,
    /// Accept an invitation.
    Accept {
        /// Invite id.
        invite: String,
    },
    /// Reject an invitation.
    Reject {
        /// Invite id.
        invite: String,
    },
}

/// `doran mission …`
#[derive(Debug, Subcommand)]
pub enum MissionCmd {
    /// Add a mission; prints its id.
    Add {
        /// Family id.
        family: String,
        /// Title, 1–17 characters.
        title: String,
        /// A participant (user id); repeat; all members when omitted.
        #[arg(long = "member")]
        members: Vec<String>,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
    },
    /// Tick your part of a mission.
    Done {
        /// Family id.
        family: String,
        /// Mission id.
        mission: String,
    },
    /// Untick your part.
    Undone {
        /// Family id.
        family: String,
        /// Mission id.
        mission: String,
    },
    /// This month's missions (or earlier ones with --past).
    List {
        /// Family id.
        family: String,
        /// Missions of earlier months.
        #[arg(long)]
        past: bool,
    },
    /// Delete a mission.
    Delete {
        /// Family id.
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
        /// Family id.
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
        /// Palette color, e.g. #5FCE89.
        #[arg(long)]
        color: Option<String>,
    },
    /// Edit an event.
    Edit {
        /// Family id.
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
        /// New color.
        #[arg(long)]
        color: Option<String>,
    },
    /// Delete an event.
    Delete {
        /// Family id.
        family: String,
        /// Event id.
        event: String,
    },
    /// A month's events.
    List {
        /// Family id.
        family: String,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
    },
}

/// `doran album …`
#[derive(Debug, Subcommand)]
pub enum AlbumCmd {
    /// Create a photo album; prints its id.
    Create {
        /// Family id.
        family: String,
        /// Name.
        name: String,
    },
}

/// `doran photo …`
#[derive(Debug, Subcommand)]
pub enum PhotoCmd {
    /// Add a photo (JPEG, PNG, WebP or GIF) to an album: a display copy (≤ 1920 px,
    /// ≈ 0.9 MB) and a thumbnail are made on this device, without location or other
    /// metadata; prints its id.
    Add {
        /// Family id.
        family: String,
        /// Album id.
        album: String,
        /// The photo.
        file: PathBuf,
        /// Caption, up to 200 characters.
        #[arg(long, default_value = "")]
        caption: String,
    },
    /// Download a photo's display copy, or its thumbnail (verified).
    Get {
        /// Family id.
        family: String,
        /// Photo id.
        photo: String,
        /// Where to write the JPEG.
        out: PathBuf,
        /// The thumbnail instead of the display copy.
        #[arg(long)]
        thumb: bool,
    },
    /// Like a photo.
    Like {
        /// Family id.
        family: String,
        /// Photo id.
        photo: String,
    },
    /// Take your like back.
    Unlike {
        /// Family id.
        family: String,
        /// Photo id.
        photo: String,
    },
    /// Comment on a photo; prints the comment's id.
    Comment {
        /// Family id.
        family: String,
        /// Photo id.
        photo: String,
        /// Text.
        text: String,
    },
}

/// `doran voice …`
#[derive(Debug, Subcommand)]
pub enum VoiceCmd {
    /// Create a voice album; prints its id.
    Album {
        /// Family id.
        family: String,
        /// Name.
        name: String,
        /// One of the 4 covers.
        #[arg(long, default_value_t = 1)]
        cover: u8,
    },
    /// Add a recording (WebM/Opus, Ogg/Opus, M4A/AAC, WAV, MP3), converted to MP3 on
    /// this device; prints its id.
    Add {
        /// Family id.
        family: String,
        /// Voice album id.
        album: String,
        /// The recording.
        file: PathBuf,
        /// Title, 1–10 characters.
        #[arg(long)]
        title: String,
    },
    /// Download a voice message's MP3 (verified).
    Get {
        /// Family id.
        family: String,
        /// Voice message id.
        voice: String,
        /// Where to write the MP3.
        out: PathBuf,
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

/// `doran profile …`
#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// Change your nickname, today's mood or your profile photo.
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
}
