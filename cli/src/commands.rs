//! One function per command group: open the device, make one call into the
//! [`Device`] facade, print what it returns. No logic of the product lives here.

mod account;
mod family;
mod media;
mod missions;
mod personal;

use std::path::Path;

use doran_device::{Device, DeviceOptions, Error, core::time_util::Lang, relay::Trust};
use time::UtcOffset;

use crate::{
    args::{AudioCmd, Command},
    print::Out,
};

/// A command's failure: the facade's error (shown as it is), or a local one.
#[derive(Debug)]
pub enum CmdError {
    /// What the device said.
    Device(Error),
    /// Something about the command line itself (a file to write, a confirmation).
    Local(String),
}

impl From<Error> for CmdError {
    fn from(e: Error) -> Self {
        CmdError::Device(e)
    }
}

impl From<std::io::Error> for CmdError {
    fn from(e: std::io::Error) -> Self {
        CmdError::Local(e.to_string())
    }
}

/// What a command returns.
pub type CmdResult = Result<(), CmdError>;

/// How the command line opens the device.
#[derive(Debug, Clone)]
pub struct Setup {
    pub json: bool,
    pub ca: Option<std::path::PathBuf>,
    pub lang: Lang,
    /// Read before the runtime started (the system's offset is only readable while
    /// the process has one thread).
    pub offset: Option<UtcOffset>,
}

/// Runs one command against the device at `home`.
pub async fn run(home: &Path, setup: Setup, command: Command) -> CmdResult {
    let out = Out { json: setup.json };
    if let Command::Audio(AudioCmd::Convert { input, output }) = &command {
        return media::convert(out, input, output);
    }
    let mut trust = Trust::from_env();
    if setup.ca.is_some() {
        trust.extra_ca = setup.ca.clone();
    }
    let device = Device::open(
        home,
        DeviceOptions {
            trust,
            // The command line syncs when asked (`doran sync`, relay calls).
            sync_on_open: false,
            utc_offset: setup.offset,
            lang: setup.lang,
            // Sealed unless asked (`doran family create --clear`): an inviter's
            // device lets the invitee in as the invite goes out, from the key
            // package the invitee's device published.
            seal_new_families: true,
            ..DeviceOptions::for_app("doran CLI")
        },
    )
    .await?;
    let done = dispatch(&device, out, command).await;
    // Whatever arrived while this command ran is announced and kept before exiting.
    device.close().await;
    done
}

async fn dispatch(device: &Device, out: Out, command: Command) -> CmdResult {
    match command {
        Command::Account(c) => account::account(device, out, c).await,
        Command::Device(c) => account::device(device, out, c).await,
        Command::Family(c) => family::family(device, out, c).await,
        Command::Invite(c) => family::invite(device, out, c).await,
        Command::Presence { family } => family::presence(device, out, &family).await,
        Command::Mission(c) => missions::mission(device, out, c).await,
        Command::Event(c) => missions::event(device, out, c).await,
        Command::Badges { family } => missions::badges(device, out, &family).await,
        Command::Home { family } => missions::home(device, out, &family).await,
        Command::Album(c) => media::album(device, out, c).await,
        Command::Photo(c) => media::photo(device, out, c).await,
        Command::Voice(c) => media::voice(device, out, c).await,
        Command::Audio(AudioCmd::Convert { input, output }) => media::convert(out, &input, &output),
        Command::Notifications(c) => personal::notifications(device, out, c).await,
        Command::Profile(c) => personal::profile(device, out, c).await,
        Command::Sync { timeout } => personal::sync(device, out, timeout).await,
        Command::Watch => personal::watch(device, out).await,
        Command::Export { family } => personal::export(device, &family).await,
    }
}

/// Prints the id an edit made, with the pending count.
async fn created(device: &Device, out: Out, id: &str) -> CmdResult {
    out.created(id, device.pending().await?);
    Ok(())
}

/// Confirms an edit, with the pending count.
async fn saved(device: &Device, out: Out) -> CmdResult {
    out.saved(device.pending().await?);
    Ok(())
}

/// Asks "yes/no" on the terminal unless `yes`; anything but y/yes refuses.
fn confirm(yes: bool, question: &str) -> CmdResult {
    if yes {
        return Ok(());
    }
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(
        answer.trim().to_lowercase().as_str(),
        "y" | "yes" | "네" | "예"
    ) {
        Ok(())
    } else {
        Err(CmdError::Local(
            "not confirmed (nothing changed); pass --yes to skip the question".into(),
        ))
    }
}

/// "on"/"off" (and yes/no, true/false).
fn on_off(v: &str) -> Result<bool, CmdError> {
    match v.trim().to_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        other => Err(CmdError::Local(format!("{other:?}: say on or off"))),
    }
}
