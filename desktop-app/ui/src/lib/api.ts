// The commands, typed: one function per Tauri command, each one call into the Device
// facade (desktop-app/src/commands/). Failures reject with the facade's DeviceError.

import { Channel, invoke } from '@tauri-apps/api/core';
import type * as T from './types';

/** Calls a command; a failure is thrown as the facade's `DeviceError`. */
export async function call<R>(cmd: string, args?: Record<string, unknown>): Promise<R> {
  try {
    return await invoke<R>(cmd, args);
  } catch (e) {
    throw asDeviceError(e);
  }
}

/** Whatever a command threw, as a DeviceError (the facade's, or a transport failure). */
export function asDeviceError(e: unknown): T.DeviceError {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    return e as T.DeviceError;
  }
  return { code: 'app', message: String(e) };
}

/** JSON with every non-ASCII character escaped, so it fits in an HTTP header. */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
  );
}

/** A command that carries a file's bytes as the raw body (desktop-app/src/raw.rs). */
async function callRaw<R>(cmd: string, bytes: Uint8Array, args: unknown): Promise<R> {
  try {
    return await invoke<R>(cmd, bytes, { headers: { 'doran-args': asciiJson(args) } });
  } catch (e) {
    throw asDeviceError(e);
  }
}

// ----- accounts and devices -----
export const account = () => call<T.AccountView | null>('account');
export const createAccount = (server: string, email: string, nickname: string) =>
  call<T.AccountView>('create_account', { server, email, nickname });
export const restoreAccount = (server: string, phrase: string) =>
  call<T.AccountView>('restore_account', { server, phrase });
export const linkDevice = (server: string, code: string) =>
  call<T.AccountView>('link_device', { server, code });
export const signOut = () => call<void>('sign_out');
export const recoveryPhrase = () => call<string>('recovery_phrase');
export const issueLinkCode = () => call<T.LinkCodeView>('issue_link_code');
export const devices = () => call<T.DeviceView[]>('devices');
export const revokeDevice = (device: string) => call<void>('revoke_device', { device });
export const pendingLinks = () => call<T.PendingLinkView[]>('pending_links');
export const confirmLink = (link: string, accept: boolean) =>
  call<void>('confirm_link', { link, accept });

// ----- families, members, invites -----
export const families = () => call<T.FamilyCard[]>('families');
export const family = (family: string) => call<T.FamilyView>('family', { family });
export const home = (family: string) => call<T.HomeSummary>('home', { family });
export const presence = (family: string) => call<T.PresenceView[]>('presence', { family });
export const createFamily = (title: string, my_name: string) =>
  call<string>('create_family', { title, my_name });
export const renameFamily = (family: string, title: string) =>
  call<void>('rename_family', { family, title });
/** Seals a family created clear end to end (host); false if it was sealed already. */
export const sealFamily = (family: string) => call<boolean>('seal_family', { family });
export const setMyName = (family: string, name: string) =>
  call<void>('set_my_name', { family, name });
export const removeMember = (family: string, user: string) =>
  call<void>('remove_member', { family, user });
export const safetyCode = (family: string, user: string) =>
  call<T.SafetyCodeView>('safety_code', { family, user });
export const verifySafetyCode = (family: string, user: string, code: string) =>
  call<T.SafetyCodeView>('verify_safety_code', { family, user, code });
export const leaveFamily = (family: string) => call<void>('leave_family', { family });
export const deleteFamily = (family: string) => call<void>('delete_family', { family });
export const invite = (family: string, email: string, name: string) =>
  call<T.InviteView>('invite', { family, email, name });
export const invites = () => call<T.InvitesView>('invites');
export const answerInvite = (invite: string, accept: boolean) =>
  call<string | null>('answer_invite', { invite, accept });
export const withdrawInvite = (invite: string) => call<void>('withdraw_invite', { invite });

// ----- missions and badges -----
export const missions = (family: string, month?: string) =>
  call<T.MissionsView>('missions', { family, month: month ?? null });
export const badges = (family: string) => call<T.BadgeBoard>('badges', { family });
export const addMission = (family: string, input: T.MissionInput) =>
  call<string>('add_mission', { family, input });
export const editMission = (family: string, mission: string, changes: T.MissionChanges) =>
  call<void>('edit_mission', { family, mission, changes });
export const deleteMission = (family: string, mission: string) =>
  call<void>('delete_mission', { family, mission });
export const setMissionDone = (family: string, mission: string, done: boolean) =>
  call<void>('set_mission_done', { family, mission, done });

// ----- calendar -----
export const calendar = (family: string, month?: string) =>
  call<T.CalendarMonth>('calendar', { family, month: month ?? null });
export const memories = (family: string, month?: string) =>
  call<T.MemoryDay[]>('memories', { family, month: month ?? null });
export const addEvent = (family: string, input: T.EventInput) =>
  call<string>('add_event', { family, input });
export const editEvent = (family: string, event: string, patch: T.EventPatch) =>
  call<void>('edit_event', { family, event, patch });
export const deleteEvent = (family: string, event: string) =>
  call<void>('delete_event', { family, event });

// ----- gallery -----
export const albums = (family: string) => call<T.AlbumCard[]>('albums', { family });
export const photos = (family: string, album: string, page: number) =>
  call<T.PhotoPage>('photos', { family, album, page });
export const photo = (family: string, photo: string) =>
  call<T.PhotoDetail>('photo', { family, photo });
export const createAlbum = (family: string, name: string) =>
  call<string>('create_album', { family, name });
export const renameAlbum = (family: string, album: string, name: string) =>
  call<void>('rename_album', { family, album, name });
export const setAlbumCover = (family: string, album: string, photo: string) =>
  call<void>('set_album_cover', { family, album, photo });
export const deleteAlbum = (family: string, album: string) =>
  call<void>('delete_album', { family, album });
export const addPhotoFile = (family: string, album: string, path: string, caption = '') =>
  call<string>('add_photo', { family, album, path, caption });
export const addPhotoBytes = (family: string, album: string, bytes: Uint8Array, caption = '') =>
  callRaw<string>('add_photo_bytes', bytes, { family, album, caption });
export const deletePhoto = (family: string, photo: string) =>
  call<void>('delete_photo', { family, photo });
export const likePhoto = (family: string, photo: string, liked: boolean) =>
  call<void>('like_photo', { family, photo, liked });
export const addComment = (family: string, photo: string, text: string) =>
  call<string>('add_comment', { family, photo, text });
export const deleteComment = (family: string, photo: string, comment: string) =>
  call<void>('delete_comment', { family, photo, comment });
export const photoFile = (family: string, photo: string, thumbnail: boolean) =>
  call<string | null>('photo_file', { family, photo, thumbnail });

// ----- voice -----
export const voiceAlbums = (family: string) => call<T.VoiceAlbumCard[]>('voice_albums', { family });
export const voices = (family: string, album?: string) =>
  call<T.VoiceCard[]>('voices', { family, album: album ?? null });
export const createVoiceAlbum = (family: string, name: string, cover: number) =>
  call<string>('create_voice_album', { family, name, cover });
export const editVoiceAlbum = (family: string, album: string, name: string | null, cover: number | null) =>
  call<void>('edit_voice_album', { family, album, name, cover });
export const deleteVoiceAlbum = (family: string, album: string) =>
  call<void>('delete_voice_album', { family, album });
export const addVoiceFile = (family: string, album: string, path: string, title: string) =>
  call<T.VoiceAdded>('add_voice', { family, album, path, title });
/** A recording, converted to MP3 on the device; `onProgress` gets 0–1 as it goes. */
export function addVoiceBytes(
  family: string,
  album: string,
  bytes: Uint8Array,
  title: string,
  onProgress: (done: number) => void,
): Promise<T.VoiceAdded> {
  const progress = new Channel<number>();
  progress.onmessage = onProgress;
  return callRaw<T.VoiceAdded>('add_voice_bytes', bytes, { family, album, title, progress });
}
export const deleteVoice = (family: string, voice: string) =>
  call<void>('delete_voice', { family, voice });
export const voiceFile = (family: string, voice: string) =>
  call<string>('voice_file', { family, voice });

// ----- profile and settings -----
export const profile = (user?: string) => call<T.ProfileView>('profile', { user: user ?? null });
export const avatarFile = (user?: string) =>
  call<string | null>('avatar_file', { user: user ?? null });
export const updateProfile = (changes: T.ProfileChanges) =>
  call<void>('update_profile', { changes });
export const setAvatarBytes = (bytes: Uint8Array) => callRaw<void>('set_avatar_bytes', bytes, null);
export const settings = () => call<T.SettingsView>('settings');
export const setSettings = (settings: T.SettingsView) => call<void>('set_settings', { settings });

// ----- notifications -----
export const notifications = () => call<T.NotificationsView>('notifications');
export const markNotificationsRead = (id?: string) =>
  call<void>('mark_notifications_read', { id: id ?? null });
export const dismissNotification = (id: string) => call<void>('dismiss_notification', { id });

// ----- sync and what every screen needs -----
export const syncState = () => call<T.SyncView>('sync_state');
export const syncNow = (timeout_ms = 15_000) => call<T.SyncReport>('sync_now', { timeout_ms });
export const language = () => call<T.Lang>('language');
export const catalog = () => call<T.Catalog>('catalog');
export const relativeTimes = (times: number[]) => call<string[]>('relative_times', { times });
export const defaultServer = () => call<string>('default_server');
