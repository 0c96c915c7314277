import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispatch } from '../lib/events';
import { app } from '../lib/state.svelte';
import type { PendingLinkView } from '../lib/types';
import PendingLinks from './PendingLinks.svelte';

// The facade as the front end sees it: the relay's pending requests, and answering one
// takes it off the list.
let pending: PendingLinkView[] = [];
const invoke = vi.fn(async (cmd: string, args?: unknown) => {
  if (cmd === 'pending_links') return pending;
  if (cmd === 'confirm_link') {
    const { link } = args as { link: string; accept: boolean };
    pending = pending.filter((l) => l.link !== link);
    return null;
  }
  throw new Error(`unexpected ${cmd}`);
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args: unknown) => invoke(cmd, args),
  convertFileSrc: (p: string) => p,
  Channel: class {},
}));

const laptop: PendingLinkView = {
  link: 'aa'.repeat(16),
  device: 'bb'.repeat(16),
  name: 'dorandoran-desktop/0.1.0 (Linux)',
  fingerprint: '1a2b-3c4d-5e6f',
  requested_at: 1,
  expires_at: 2,
};

describe('new devices waiting for confirmation', () => {
  beforeEach(() => {
    pending = [];
    invoke.mockClear();
    app.lang = 'en';
  });
  afterEach(() => cleanup());

  it('shows a request when it arrives, with its fingerprint', async () => {
    render(PendingLinks);
    await waitFor(() => expect(invoke).toHaveBeenCalledWith('pending_links', undefined));
    expect(screen.queryByTestId('pending-links')).toBeNull();

    pending = [laptop];
    dispatch({ type: 'link_requested', ...laptop });
    const row = await screen.findByTestId('pending-link');
    expect(row.textContent).toContain('dorandoran-desktop/0.1.0 (Linux)');
    expect(screen.getByTestId('pending-link-fingerprint').textContent).toContain('1a2b-3c4d-5e6f');
  });

  it('allows a device, which then leaves the list', async () => {
    pending = [laptop];
    render(PendingLinks);
    await fireEvent.click(await screen.findByTestId('link-allow'));
    await waitFor(() =>
      expect(invoke).toHaveBeenCalledWith('confirm_link', { link: laptop.link, accept: true }),
    );
    await waitFor(() => expect(screen.queryByTestId('pending-links')).toBeNull());
  });

  it('rejects a device', async () => {
    pending = [laptop];
    render(PendingLinks);
    await fireEvent.click(await screen.findByTestId('link-reject'));
    await waitFor(() =>
      expect(invoke).toHaveBeenCalledWith('confirm_link', { link: laptop.link, accept: false }),
    );
  });
});
