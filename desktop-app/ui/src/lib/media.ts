// Files on this device (photos, avatars, voice messages) as URLs the web view can load:
// the app lets the web view read the device's blob folder through Tauri's asset
// protocol (desktop-app/src/setup.rs).

import { convertFileSrc } from '@tauri-apps/api/core';

/** The URL of a file the facade returned (`photo_file`, `voice_file`, `avatar_file`). */
export function fileUrl(path: string): string {
  return convertFileSrc(path);
}

/** A picked or dropped file's bytes. */
export async function fileBytes(file: Blob): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

/** mm:ss of a duration in milliseconds (the recorder's timer, message lengths). */
export function mmss(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

/** Whether a dropped file looks like a photo or a recording, by its name. */
export function kindOfPath(path: string): 'photo' | 'audio' | null {
  const ext = path.toLowerCase().split('.').pop() ?? '';
  if (['jpg', 'jpeg', 'png', 'webp', 'gif', 'heic'].includes(ext)) return 'photo';
  if (['webm', 'ogg', 'opus', 'm4a', 'mp4', 'aac', 'wav', 'mp3'].includes(ext)) return 'audio';
  return null;
}
