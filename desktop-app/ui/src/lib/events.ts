// The facade's live events, as the Tauri event `device` forwards them
// (desktop-app/src/events.rs): one listener for the app, fanned out to whoever
// subscribed (the shell, each screen).

import type { DeviceEvent, Part } from './types';

type Handler = (event: DeviceEvent) => void;

const handlers = new Set<Handler>();

/** Calls `handler` for every device event until the returned function is called. */
export function onDevice(handler: Handler): () => void {
  handlers.add(handler);
  return () => handlers.delete(handler);
}

/** Hands one event to every subscriber (the Tauri listener calls it; tests too). */
export function dispatch(event: DeviceEvent): void {
  for (const h of [...handlers]) {
    try {
      h(event);
    } catch (e) {
      console.error('an event handler failed', e);
    }
  }
}

/**
 * Calls `reload` when `family` changes in one of `parts` (from this device or
 * another), when its members change, or when events were missed (`resync`).
 */
export function onFamilyChange(
  family: string | null,
  parts: Part[],
  reload: () => void,
): () => void {
  return onDevice((e) => {
    if (e.type === 'resync') reload();
    if (!family) return;
    if (e.type === 'family_changed' && e.family === family && e.parts.some((p) => parts.includes(p))) {
      reload();
    }
    if ((e.type === 'members_changed' || e.type === 'removed_from_family') && e.family === family) {
      reload();
    }
    if (e.type === 'profile_changed' && parts.includes('members')) reload();
    if (e.type === 'presence_changed' && parts.includes('members')) reload();
  });
}

/** Resolves when a blob (`hash`) is on this device (`blob_arrived`). */
export function onBlob(hash: string, arrived: () => void): () => void {
  return onDevice((e) => {
    if (e.type === 'blob_arrived' && e.hash === hash) arrived();
  });
}

/** Starts forwarding the Tauri event `device` (once, at start-up). */
export async function listenToDevice(): Promise<void> {
  const { listen } = await import('@tauri-apps/api/event');
  await listen<DeviceEvent>('device', (e) => dispatch(e.payload));
}
