//! The microphone for the voice message recorder. WebKitGTK ships with media streams
//! off and denies every permission request no handler claims, so `getUserMedia`
//! fails until the app turns media streams on and answers the permission request —
//! for microphones and the device list only (never the camera, location or anything
//! else), and only to the app's own pages. `DORAN_MOCK_MICROPHONE=1` gives WebKitGTK's fake capture device instead, for
//! tests on machines with no microphone.

use tauri::WebviewWindow;

#[cfg(target_os = "linux")]
pub fn allow_microphone(window: &WebviewWindow) {
    use webkit2gtk::{
        DeviceInfoPermissionRequest, PermissionRequestExt, SettingsExt, UserMediaPermissionRequest,
        UserMediaPermissionRequestExt, WebViewExt, glib::object::Cast,
    };
    let mock = std::env::var("DORAN_MOCK_MICROPHONE").is_ok_and(|v| v == "1");
    let done = window.with_webview(move |webview| {
        let view = webview.inner();
        if let Some(settings) = view.settings() {
            settings.set_enable_media_stream(true);
            settings.set_enable_mock_capture_devices(mock);
        }
        view.connect_permission_request(|view, request| {
            // Only the app's own screens may record (see `navigation`).
            let ours = view
                .uri()
                .and_then(|uri| uri.parse::<tauri::Url>().ok())
                .is_some_and(|url| crate::navigation::is_app_page(&url));
            if let Some(media) = request.downcast_ref::<UserMediaPermissionRequest>() {
                if ours && media.is_for_audio_device() && !media.is_for_video_device() {
                    media.allow();
                } else {
                    media.deny();
                }
                return true;
            }
            if request
                .downcast_ref::<DeviceInfoPermissionRequest>()
                .is_some()
            {
                if ours {
                    request.allow();
                } else {
                    request.deny();
                }
                return true;
            }
            false
        });
    });
    if let Err(e) = done {
        tracing::warn!(error = %e, "the microphone cannot be set up");
    }
}

#[cfg(not(target_os = "linux"))]
pub fn allow_microphone(_window: &WebviewWindow) {}
