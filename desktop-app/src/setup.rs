//! Opening the device when the app starts: its home, language and time zone, the
//! event forwarding, the blob folder the web view may read, the microphone.

use std::{path::PathBuf, sync::Arc};

use doran_device::{Device, DeviceOptions, core::time_util::Lang};
use tauri::{App, Manager};

/// The language until the user's own setting is known: Korean when the system locale
/// is Korean (`LC_ALL`, then `LC_MESSAGES`, then `LANG`, as POSIX orders them).
pub fn system_language() -> Lang {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .map_or(Lang::En, |locale| Lang::from_code(&locale))
}

/// The device's folder: `DORAN_HOME`, else the platform's data folder for this app.
fn home(app: &App) -> tauri::Result<PathBuf> {
    match std::env::var_os("DORAN_HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home)),
        None => app.path().app_data_dir(),
    }
}

/// The relay the onboarding screen offers (`DORAN_SERVER`), set by `scripts/run`.
#[derive(Debug, Clone)]
pub struct DefaultServer(pub String);

pub fn open_device(
    app: &mut App,
    utc_offset: Option<time::UtcOffset>,
    lang: Lang,
) -> Result<(), Box<dyn std::error::Error>> {
    let home = home(app)?;
    let options = DeviceOptions {
        utc_offset,
        lang,
        ..DeviceOptions::for_app("Dorandoran desktop")
    };
    // Opened and subscribed on Tauri's runtime: the facade's tasks live there.
    let (device, listener) = tauri::async_runtime::block_on(async {
        let device = Device::open(&home, options).await?;
        let forward = crate::events::Forward::new(app.handle().clone());
        let listener = device.listen(Arc::new(forward));
        Ok::<_, doran_device::Error>((device, listener))
    })?;
    // Photos, avatars and voice messages are shown straight from the blob folder.
    app.asset_protocol_scope()
        .allow_directory(device.home_dir().join("blobs"), true)?;
    app.manage(listener);
    app.manage(device);
    app.manage(DefaultServer(
        std::env::var("DORAN_SERVER").unwrap_or_default(),
    ));
    if let Some(window) = app.get_webview_window("main") {
        crate::media::allow_microphone(&window);
    }
    Ok(())
}
