//! 도란도란 on a computer: a Tauri v2 window over [`doran_device::Device`].
//!
//! The app is a thin adapter, like the `doran` command line: each Tauri command
//! (`commands/`) is one call into the facade, its serialised view or readable error
//! going back to the web view as it is; the facade's live events are forwarded to the
//! web view as the Tauri event `device` (`events.rs`). The screens (Svelte, in `ui/`)
//! hold no product rules: they draw the views and call the commands.
//!
//! Start-up: the system's UTC offset is read while the process has one thread (the
//! `time` crate refuses it later), the system locale chooses the language until the
//! user's own setting is known, the device home is opened (`DORAN_HOME`, else the
//! platform's app data folder), and syncing starts in the background.
//!
//! Environment: `DORAN_HOME` (the device's folder), `DORAN_SERVER` (the relay the
//! onboarding screen offers), `DORAN_MOCK_MICROPHONE=1` (WebKitGTK's fake capture
//! device, for tests on machines with no microphone), `DORAN_LOG` (log filter).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use tauri::Manager;

mod commands;
mod events;
mod media;
mod raw;
mod setup;

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DORAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Only readable while this is the only thread.
    let offset = time::UtcOffset::current_local_offset().ok();
    let lang = setup::system_language();

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| setup::open_device(app, offset, lang))
        .invoke_handler(commands::handler())
        .build(tauri::tauri_build_context!());
    match app {
        // On the way out, what arrived is announced and kept before the process ends.
        Ok(app) => app.run(|handle, event| {
            if let tauri::RunEvent::Exit = event
                && let Some(device) = handle.try_state::<doran_device::Device>()
            {
                tauri::async_runtime::block_on(device.close());
            }
        }),
        Err(e) => {
            eprintln!("도란도란 cannot start: {e}");
            std::process::exit(1);
        }
    }
}
