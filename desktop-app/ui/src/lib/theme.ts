// Light and dark: the system's choice unless the user picked one (kept on this device).

export type Theme = 'system' | 'light' | 'dark';

const KEY = 'doran.theme';

export function savedTheme(): Theme {
  const t = localStorage.getItem(KEY);
  return t === 'light' || t === 'dark' ? t : 'system';
}

/** Applies `theme` to the document (and remembers it). */
export function applyTheme(theme: Theme): void {
  localStorage.setItem(KEY, theme);
  const dark =
    theme === 'dark' ||
    (theme === 'system' && window.matchMedia?.('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}

/** Follows the system's changes while the theme is `system`. */
export function followSystemTheme(): void {
  window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener('change', () => {
    if (savedTheme() === 'system') applyTheme('system');
  });
}
