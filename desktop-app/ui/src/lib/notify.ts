// Desktop notifications for new items in the bell (the facade decides what is new and
// words it; this only shows it). Quietly nothing where the desktop has no
// notification service.

let allowed: boolean | null = null;

/** The longest body a desktop notification shows; the bell has the whole text. */
export const NOTIFICATION_BODY_MAX = 240;

/**
 * A notification body as plain text, whatever the family wrote. Linux notification
 * services read the body as markup (`<a href>`, `<img>`), so a title a family member
 * chose could become a link in a system notification; other systems show the body as
 * it is, so escaping with entities would show `&lt;` there. The three markup
 * characters become their full-width forms instead (plain text on every system),
 * control and bidirectional-override characters are dropped, and the text is cut short.
 */
export function notificationBody(text: string): string {
  const plain = Array.from(
    text
      .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '')
      .replace(/&/g, '\uff06')
      .replace(/</g, '\uff1c')
      .replace(/>/g, '\uff1e'),
  );
  return plain.length > NOTIFICATION_BODY_MAX
    ? plain.slice(0, NOTIFICATION_BODY_MAX - 1).join('') + '…'
    : plain.join('');
}

export async function showDesktopNotification(title: string, body: string): Promise<void> {
  try {
    const n = await import('@tauri-apps/plugin-notification');
    if (allowed === null) {
      allowed = await n.isPermissionGranted();
      if (!allowed) allowed = (await n.requestPermission()) === 'granted';
    }
    if (allowed) n.sendNotification({ title, body: notificationBody(body) });
  } catch (e) {
    console.warn('no desktop notification', e);
  }
}
