// Desktop notifications for new items in the bell (the facade decides what is new and
// words it; this only shows it). Quietly nothing where the desktop has no
// notification service.

let allowed: boolean | null = null;

export async function showDesktopNotification(title: string, body: string): Promise<void> {
  try {
    const n = await import('@tauri-apps/plugin-notification');
    if (allowed === null) {
      allowed = await n.isPermissionGranted();
      if (!allowed) allowed = (await n.requestPermission()) === 'granted';
    }
    if (allowed) n.sendNotification({ title, body });
  } catch (e) {
    console.warn('no desktop notification', e);
  }
}
