//! `doran`: Dorandoran from the command line — a thin shell over `client-core`'s
//! [`Engine`](doran_client_core::engine::Engine). Ids are printed on success, `--json`
//! prints one JSON value, errors go to stderr with exit code 1.

mod args;
mod commands;
mod print;

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
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
    match runtime.block_on(commands::run(&home, cli.json, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("doran: {e}");
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
