//! The Tauri commands: one call into [`Device`] each, grouped as the facade groups its
//! methods. Arguments arrive in snake_case (as the views are written); results are the
//! facade's serialised views, failures its [`Error`] (`{code, message, field?}`, the
//! message already in the user's language).

mod account;
mod calendar;
mod families;
mod gallery;
mod missions;
mod notifications;
mod profile;
mod sync;
mod voice;

use doran_device::{Device, Error};
use tauri::{State, Wry, ipc::Invoke};

/// The device, as every command receives it.
type Dev<'a> = State<'a, Device>;

/// What every command returns.
type Res<T> = Result<T, Error>;

/// Every command, for [`tauri::Builder::invoke_handler`].
pub fn handler() -> impl Fn(Invoke<Wry>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        account::account,
        account::create_account,
        account::restore_account,
        account::link_device,
        account::sign_out,
        account::recovery_phrase,
        account::issue_link_code,
        account::devices,
        account::revoke_device,
        account::pending_links,
        account::confirm_link,
        families::families,
        families::family,
        families::home,
        families::presence,
        families::create_family,
        families::rename_family,
        families::seal_family,
        families::set_my_name,
        families::remove_member,
        families::safety_code,
        families::verify_safety_code,
        families::leave_family,
        families::delete_family,
        families::invite,
        families::invites,
        families::answer_invite,
        families::withdraw_invite,
        missions::missions,
        missions::badges,
        missions::add_mission,
        missions::edit_mission,
        missions::delete_mission,
        missions::set_mission_done,
        calendar::calendar,
        calendar::memories,
        calendar::add_event,
        calendar::edit_event,
        calendar::delete_event,
        gallery::albums,
        gallery::photos,
        gallery::photo,
        gallery::create_album,
        gallery::rename_album,
        gallery::set_album_cover,
        gallery::delete_album,
        gallery::add_photo,
        gallery::add_photo_bytes,
        gallery::delete_photo,
        gallery::like_photo,
        gallery::add_comment,
        gallery::delete_comment,
        gallery::photo_file,
        voice::voice_albums,
        voice::voices,
        voice::create_voice_album,
        voice::edit_voice_album,
        voice::delete_voice_album,
        voice::add_voice,
        voice::add_voice_bytes,
        voice::delete_voice,
        voice::voice_file,
        profile::profile,
        profile::avatar_file,
        profile::update_profile,
        profile::set_avatar_bytes,
        profile::settings,
        profile::set_settings,
        notifications::notifications,
        notifications::mark_notifications_read,
        notifications::dismiss_notification,
        sync::sync_state,
        sync::sync_now,
        sync::language,
        sync::catalog,
        sync::relative_times,
        sync::default_server,
    ]
}
