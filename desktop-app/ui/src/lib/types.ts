// The facade's views as the commands return them (serde, snake_case). These mirror
// `device/src/screens.rs` and `client-core/src/views/`; ids are hex strings, times
// Unix milliseconds, dates `YYYY-MM-DD`, months `YYYY-MM`.

export type Lang = 'ko' | 'en';

/** A failure of a facade call; `message` is already in the user's language. */
export interface DeviceError {
  code: string;
  message: string;
  field?: string;
}

export type SyncStatus = 'offline' | 'connecting' | 'syncing' | 'up_to_date';

export interface SyncView {
  status: SyncStatus;
  pending: number;
}

export interface SyncReport {
  up_to_date: boolean;
  pending: number;
  pending_blobs: number;
}

export interface AccountView {
  user: string;
  device: string;
  email: string;
  nickname: string;
  server: string;
  has_recovery_phrase: boolean;
  language: Lang;
}

export type Role = 'host' | 'member';

export interface FamilyCard {
  family: string;
  title: string;
  members: number;
  role: Role;
  member: boolean;
  /** End-to-end sealed: the relay keeps only envelopes of its documents. */
  sealed: boolean;
  /** This device waits for a member's device to hand it the family's keys. */
  waiting_for_keys: boolean;
}

export interface MoodView {
  key: string;
  emoji: string;
  label: string;
}

export interface MemberView {
  user: string;
  name: string;
  role: Role;
  color: string;
  joined_at: number;
  me: boolean;
  nickname: string | null;
  avatar: string | null;
  default_avatar: number | null;
  mood: MoodView | null;
  online: boolean;
  last_seen: number | null;
  status: string | null;
  /** Their safety code was compared in person on this device and was the same. */
  verified: boolean;
}

/** What two members compare in person: the same digits mean neither device was given
 * another key by the relay. */
export interface SafetyCodeView {
  user: string;
  name: string;
  /** Twelve groups of five digits. */
  groups: string[];
  code: string;
  verified: boolean;
}

export interface FamilyView {
  family: string;
  title: string;
  role: Role;
  member: boolean;
  sealed: boolean;
  waiting_for_keys: boolean;
  members: MemberView[];
}

export interface Tick {
  user: string;
  name: string;
  done_at: number | null;
}

export interface MissionCard {
  id: string;
  title: string;
  created_by: string;
  created_at: number;
  due: string | null;
  ticks: Tick[];
  completed_at: number | null;
}

export interface MissionDashboard {
  month: string;
  total: number;
  completed: number;
  rate: number;
  label: string;
  badges_owned: number;
  missions: MissionCard[];
}

export interface MissionsView {
  month: MissionDashboard;
  past: MissionCard[];
}

export interface MissionInput {
  title: string;
  participants: string[];
  due: string | null;
}

export interface MissionChanges {
  title?: string;
  participants?: string[];
  due?: string | null;
}

export interface BadgeView {
  key: string;
  name: string;
  rule: string;
  progress: number;
  goal: number;
  earned: boolean;
}

export interface MemberBadges {
  user: string;
  name: string;
  badges: BadgeView[];
}

export interface BadgeBoard {
  family: BadgeView[];
  earned: number;
  members: MemberBadges[];
}

export interface CalendarEvent {
  title: string;
  notes: string;
  start: string;
  end: string;
  start_time: string | null;
  end_time: string | null;
  color: string;
  owner: string;
  created_at: number;
  updated_at: number;
}

export interface MonthEvent {
  id: string;
  event: CalendarEvent;
  owner_name: string;
  first_in_month: string;
  last_in_month: string;
  continues_before: boolean;
  continues_after: boolean;
  lane: number;
}

export interface CalendarDay {
  date: string;
  events: string[];
  slots: (string | null)[];
  more: number;
}

export interface CalendarMonth {
  month: string;
  events: MonthEvent[];
  days: CalendarDay[];
}

export interface EventInput {
  title: string;
  notes: string;
  start: string;
  end: string | null;
  start_time: string | null;
  end_time: string | null;
  color: string | null;
}

export type EventPatch = Partial<{
  title: string;
  notes: string;
  start: string;
  end: string;
  start_time: string | null;
  end_time: string | null;
  color: string;
}>;

export interface PhotoRef {
  id: string;
  album_id: string;
  thumb: string;
  blob: string;
  by: string;
  at: number;
}

export interface MemoryDay {
  date: string;
  photos: PhotoRef[];
}

export interface AlbumCard {
  id: string;
  name: string;
  count: number;
  cover: PhotoRef | null;
  created_at: number;
}

export interface PhotoPage {
  album: string;
  page: number;
  photos: PhotoRef[];
  total: number;
  has_more: boolean;
}

export interface Liker {
  user: string;
  name: string;
  at: number;
}

export interface CommentView {
  id: string;
  by: string;
  by_name: string;
  at: number;
  text: string;
  mine: boolean;
}

export interface PhotoDetail {
  photo: PhotoRef;
  by_name: string;
  caption: string;
  width: number;
  height: number;
  taken_at: number | null;
  liked: boolean;
  likers: Liker[];
  comments: CommentView[];
  deletable: boolean;
}

export interface VoiceAlbumCard {
  id: string;
  name: string;
  cover: number;
  count: number;
  created_at: number;
  latest_at: number | null;
}

export interface VoiceCard {
  id: string;
  album_id: string;
  title: string;
  by: string;
  by_name: string;
  at: number;
  duration_ms: number;
  peaks: number[];
  blob: string;
  size: number;
}

export interface VoiceAdded {
  id: string;
  duration_ms: number;
  bytes: number;
}

export interface HomeMember {
  user: string;
  name: string;
  role: Role;
  color: string;
  nickname: string | null;
  avatar: string | null;
  default_avatar: number | null;
  mood: MoodView | null;
  online: boolean;
  last_seen: number | null;
  status: string | null;
}

export interface VoiceRef {
  id: string;
  title: string;
  by: string;
  at: number;
  duration_ms: number;
  blob: string;
  headline: string;
}

export interface HomeSummary {
  family_name: string;
  members: HomeMember[];
  warm_message: string;
  mission: MissionCard | null;
  month_rate: number;
  month_label: string;
  badge: BadgeView | null;
  latest_photo: PhotoRef | null;
  latest_voice: VoiceRef | null;
  month_events: MonthEvent[];
}

export interface InviteView {
  invite: string;
  family: string;
  family_title: string;
  inviter: string;
  inviter_nickname: string;
  inviter_name: string;
  invitee: string;
  invitee_nickname: string;
  proposed_name: string;
  created_at: number;
  expires_at: number;
  state: 'pending' | 'accepted' | 'rejected' | 'withdrawn' | 'expired';
  text: string;
}

export interface InvitesView {
  received: InviteView[];
  sent: InviteView[];
}

export interface DeviceView {
  device: string;
  name: string;
  added_at: number;
  online: boolean;
  last_seen: number | null;
  revoked_at: number | null;
  this_device: boolean;
}

export interface LinkCodeView {
  code: string;
  expires_at: number;
}

/** A new device waiting for this account to confirm it (`PendingLinkView`). */
export interface PendingLinkView {
  link: string;
  device: string;
  name: string;
  fingerprint: string;
  requested_at: number;
  expires_at: number;
}

export interface NotificationView {
  id: string;
  kind: 'invite' | 'invite_answered' | 'like' | 'comment' | 'family' | 'joined' | 'removed' | string;
  family: string | null;
  actor: string | null;
  at: number;
  count: number;
  text: string;
  invite: string | null;
  target: string | null;
  read: boolean;
  ago: string;
}

export interface NotificationsView {
  unread: number;
  items: NotificationView[];
}

export interface PresenceView {
  user: string;
  name: string;
  online: boolean;
  last_seen: number | null;
  status: string | null;
}

export interface ProfileView {
  user: string;
  nickname: string;
  avatar: string | null;
  default_avatar: number;
  mood: MoodView | null;
  me: boolean;
}

export interface ProfileChanges {
  nickname?: string;
  mood?: string;
  clear_avatar?: boolean;
}

export interface SettingsView {
  language: Lang;
  notify_family: boolean;
  notify_reactions: boolean;
}

export interface TextLimit {
  min: number;
  max: number;
  multiline: boolean;
}

export interface Catalog {
  palette: string[];
  moods: MoodView[];
  voice_covers: number;
  voice_max_ms: number;
  photo_page: number;
  day_slots: number;
  limits: {
    family_title: TextLimit;
    member_name: TextLimit;
    nickname: TextLimit;
    mission_title: TextLimit;
    event_title: TextLimit;
    event_notes: TextLimit;
    album_name: TextLimit;
    photo_caption: TextLimit;
    comment: TextLimit;
    voice_title: TextLimit;
    voice_album_name: TextLimit;
  };
}

export type Part = 'family' | 'members' | 'missions' | 'calendar' | 'gallery' | 'voice';

/** The facade's live events (`DeviceEvent`), as forwarded by the Tauri event `device`. */
export type DeviceEvent =
  | { type: 'family_changed'; family: string; parts: Part[]; local: boolean }
  | { type: 'saved'; family: string | null; pending: number }
  | ({ type: 'sync' } & SyncView)
  | ({ type: 'notification' } & NotificationView)
  | ({ type: 'invite_received' } & InviteView)
  | { type: 'invite_answered'; invite: string; family: string; invitee: string; accepted: boolean }
  | { type: 'invite_withdrawn'; invite: string }
  | { type: 'family_joined'; family: string }
  | { type: 'members_changed'; family: string }
  | { type: 'removed_from_family'; family: string; title: string; reason: 'removed' | 'deleted' }
  | { type: 'presence_changed'; user: string; online: boolean; last_seen: number | null }
  | { type: 'profile_changed'; user: string }
  | { type: 'blob_arrived'; hash: string }
  | { type: 'devices_changed' }
  | ({ type: 'link_requested' } & PendingLinkView)
  | { type: 'link_answered'; link: string; accepted: boolean }
  | { type: 'link_waiting'; fingerprint: string }
  | { type: 'signed_out'; message: string }
  | { type: 'resync' }
  | ({ type: 'error' } & DeviceError);
