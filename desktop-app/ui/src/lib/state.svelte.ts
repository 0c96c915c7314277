// The app's shell state: who is signed in, which family is open, which screen, the
// language, the sync status and the bell's count. Views themselves are not kept here:
// each screen asks the facade for its own and reloads on the events that concern it.

import * as api from './api';
import { onDevice } from './events';
import { translate, type Key } from './i18n';
import type { AccountView, Catalog, DeviceError, FamilyCard, Lang, ProfileView, SyncView } from './types';

export type Screen = 'home' | 'missions' | 'calendar' | 'gallery' | 'voice' | 'family' | 'profile';

export interface RemovedNotice {
  family: string;
  title: string;
  reason: 'removed' | 'deleted';
}

export const app = $state({
  ready: false,
  lang: 'ko' as Lang,
  account: null as AccountView | null,
  me: null as ProfileView | null,
  families: [] as FamilyCard[],
  family: null as string | null,
  screen: 'home' as Screen,
  sync: { status: 'offline', pending: 0 } as SyncView,
  unread: 0,
  removed: null as RemovedNotice | null,
  catalog: null as Catalog | null,
  toast: null as { text: string; error: boolean } | null,
  signedOutMessage: null as string | null,
});

/** The app's text for `key` in the current language. */
export function t(key: Key, vars?: Record<string, string | number>): string {
  return translate(app.lang, key, vars);
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;

/** Shows a short message (an error's message as the facade wrote it). */
export function toast(text: string, error = false): void {
  app.toast = { text, error };
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (app.toast = null), error ? 6000 : 2500);
}

/** Runs a facade call; a failure is shown as a toast and returned as null. */
export async function attempt<R>(run: () => Promise<R>): Promise<R | null> {
  try {
    return await run();
  } catch (e) {
    toast((e as DeviceError).message ?? String(e), true);
    return null;
  }
}

/** The family currently open, as the switcher lists it. */
export function currentFamily(): FamilyCard | null {
  return app.families.find((f) => f.family === app.family) ?? null;
}

const LAST_FAMILY = 'doran.family';

export function openFamily(family: string | null): void {
  app.family = family;
  if (family) localStorage.setItem(LAST_FAMILY, family);
  app.screen = 'home';
}

/** Reads the language (the user's setting once signed in) and the forms' catalog. */
export async function refreshLanguage(): Promise<void> {
  app.lang = await api.language();
  app.catalog = await api.catalog();
  document.documentElement.lang = app.lang;
}

/** Reads the families; keeps the open one if it is still listed. */
export async function refreshFamilies(): Promise<void> {
  if (!app.account) {
    app.families = [];
    app.family = null;
    return;
  }
  app.families = await api.families();
  const wanted = app.family ?? localStorage.getItem(LAST_FAMILY);
  const keep = app.families.find((f) => f.family === wanted);
  app.family = keep ? keep.family : (app.families.find((f) => f.member)?.family ?? app.families[0]?.family ?? null);
}

/** The user's own profile (the header's picture). */
export async function refreshMe(): Promise<void> {
  app.me = app.account ? await api.profile().catch(() => null) : null;
}

export async function refreshBell(): Promise<void> {
  if (!app.account) return;
  const bell = await api.notifications();
  app.unread = bell.unread;
}

/** Everything the shell shows, read again (start-up, sign-in, missed events). */
export async function refreshAll(): Promise<void> {
  app.account = await api.account();
  await refreshLanguage();
  app.sync = await api.syncState();
  await refreshFamilies();
  await refreshBell();
  await refreshMe();
}

/** After an account was created, restored or linked here. */
export async function signedIn(account: AccountView): Promise<void> {
  app.account = account;
  app.signedOutMessage = null;
  await refreshAll();
}

/** Keeps the shell in step with the device's events. */
export function followDevice(): () => void {
  return onDevice((e) => {
    switch (e.type) {
      case 'sync':
        app.sync = { status: e.status, pending: e.pending };
        break;
      case 'saved':
        app.sync = { ...app.sync, pending: e.pending };
        break;
      case 'notification':
      case 'invite_received':
        void refreshBell();
        break;
      case 'family_joined':
        void refreshFamilies().then(() => {
          if (!app.family) app.family = e.family;
        });
        break;
      case 'family_changed':
        if (e.parts.includes('family') || e.parts.includes('members')) void refreshFamilies();
        break;
      case 'members_changed':
        void refreshFamilies();
        break;
      case 'removed_from_family':
        app.removed = { family: e.family, title: e.title, reason: e.reason };
        void refreshFamilies();
        break;
      case 'profile_changed':
        if (e.user === app.account?.user) {
          void api.account().then((a) => (app.account = a));
          void refreshLanguage();
          void refreshMe();
        }
        break;
      case 'signed_out':
        app.signedOutMessage = e.message;
        app.account = null;
        app.families = [];
        app.family = null;
        break;
      case 'resync':
        void refreshAll();
        break;
      case 'error':
        // What the device was refused, or why its sync stopped (a full quota, a
        // server in the middle): the user's to know, in their language already.
        toast(e.message, true);
        break;
    }
  });
}
