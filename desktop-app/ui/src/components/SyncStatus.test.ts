import { render, screen } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import { describe, expect, it, vi } from 'vitest';
import { dispatch } from '../lib/events';
import { app, followDevice } from '../lib/state.svelte';
import SyncStatus from './SyncStatus.svelte';

vi.mock('@tauri-apps/api/core', () => ({
  invoke: vi.fn(),
  convertFileSrc: (p: string) => p,
  Channel: class {},
}));

describe('the always-visible sync status', () => {
  it('follows the sync events in the user language', () => {
    const stop = followDevice();
    app.lang = 'ko';
    render(SyncStatus);
    dispatch({ type: 'sync', status: 'offline', pending: 2 });
    flushSync();
    const pill = screen.getByTestId('sync-status');
    expect(pill.dataset.status).toBe('offline');
    expect(pill.textContent).toContain('오프라인');
    expect(screen.getByTestId('sync-pending').textContent).toContain('보낼 변경 2개');

    dispatch({ type: 'sync', status: 'up_to_date', pending: 0 });
    app.lang = 'en';
    flushSync();
    expect(pill.textContent).toContain('Up to date');
    expect(screen.queryByTestId('sync-pending')).toBeNull();
    stop();
  });

  it('shows what the device was refused, or why its sync stopped', () => {
    const stop = followDevice();
    const message = '이 주소의 서버가 자신을 다른 서버(relay.example.org:443)라고 소개해요.';
    dispatch({ type: 'error', code: 'bad_relay', message });
    expect(app.toast).toEqual({ text: message, error: true });
    stop();
  });
});
