//! `doran`: Dorandoran from the command line — a thin shell over the
//! [`Device`](doran_device::Device) facade, the same one the apps use. Ids are printed
//! on success, `--json` prints one JSON value (the facade's own views), errors go to
//! stderr (as JSON with `--json`) with exit code 1.

mod args;
mod commands;
mod print;

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use doran_device::core::time_util::Lang;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // Quiet unless asked: `DORAN_LOG=debug doran sync` shows what the device does.
    let filter = tracing_subscriber::EnvFilter::try_from_env("DORAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Read while this is the only thread: the system's UTC offset is only readable
    // then (the time crate refuses it in a multi-threaded process).
    let offset = time::UtcOffset::current_local_offset().ok();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("doran: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let home = cli.home.clone().unwrap_or_else(default_home);
    let setup = commands::Setup {
        json: cli.json,
        ca: cli.ca.clone(),
        lang: Lang::from_code(&cli.lang),
        offset,
    };
    match runtime.block_on(commands::run(&home, setup, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match (&e, cli.json) {
                (commands::CmdError::Device(err), true) => {
                    eprintln!("{}", serde_json::json!({ "error": err }))
                }
                (commands::CmdError::Device(err), false) => eprintln!("doran: {err}"),
                (commands::CmdError::Local(msg), true) => eprintln!(
                    "{}",
                    serde_json::json!({ "error": { "code": "command", "message": msg } })
                ),
                (commands::CmdError::Local(msg), false) => eprintln!("doran: {msg}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// `$XDG_DATA_HOME/dorandoran`, else `~/.local/share/dorandoran`, else `./.dorandoran`.
fn default_home() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("dorandoran");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/dorandoran"),
        None => PathBuf::from(".dorandoran"),
    }
}
