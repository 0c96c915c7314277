//! The facade's live events, forwarded to the web view as they are: the Tauri event
//! `device`, whose payload is the [`DeviceEvent`] serialised (`{"type": "sync", …}`).

use doran_device::{DeviceEvent, EventListener};
use tauri::{AppHandle, Emitter};

/// The name of the Tauri event that carries every device event.
pub const DEVICE_EVENT: &str = "device";

/// Forwards each event to every window.
pub struct Forward(AppHandle);

impl Forward {
    pub fn new(app: AppHandle) -> Self {
        Forward(app)
    }
}

impl EventListener for Forward {
    fn on_event(&self, event: DeviceEvent) {
        if let Err(e) = self.0.emit(DEVICE_EVENT, event) {
            tracing::warn!(error = %e, "an event could not reach the window");
        }
    }
}
