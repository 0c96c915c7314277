import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { app } from '../lib/state.svelte';
import type { FamilyView, MemberView, Role } from '../lib/types';
import FamilySettings from './FamilySettings.svelte';

// The facade as the front end sees it: a family created clear, which its host seals.
let sealed = false;
let role: Role = 'host';
const member = (name: string, r: Role, me: boolean): MemberView => ({
  user: (me ? 'aa' : 'bb').repeat(16),
  name,
  role: r,
  color: 'red',
  joined_at: 1,
  me,
  nickname: null,
  avatar: null,
  default_avatar: 1,
  mood: null,
  online: true,
  last_seen: null,
  status: null,
  verified: false,
});
const view = (): FamilyView => ({
  family: 'ff'.repeat(16),
  title: '우리 가족',
  role,
  member: true,
  sealed,
  waiting_for_keys: false,
  members: [member('엄마', 'host', role === 'host'), member('아들', 'member', role !== 'host')],
});
const invoke = vi.fn(async (cmd: string, _args?: unknown) => {
  if (cmd === 'family') return view();
  if (cmd === 'invites') return { received: [], sent: [] };
  if (cmd === 'seal_family') {
    const was = sealed;
    sealed = true;
    return !was;
  }
  throw new Error(`unexpected ${cmd}`);
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args: unknown) => invoke(cmd, args),
  convertFileSrc: (p: string) => p,
  Channel: class {},
}));

describe('a family created clear', () => {
  beforeEach(() => {
    sealed = false;
    role = 'host';
    invoke.mockClear();
    app.lang = 'en';
    vi.stubGlobal('confirm', () => true);
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });

  it('says it is not encrypted, and its host seals it', async () => {
    render(FamilySettings, { family: 'ff'.repeat(16) });
    expect((await screen.findByTestId('clear-chip')).textContent).toContain('Not encrypted');
    await fireEvent.click(screen.getByTestId('seal-family-button'));
    await waitFor(() => expect(invoke).toHaveBeenCalledWith('seal_family', { family: 'ff'.repeat(16) }));
    expect((await screen.findByTestId('sealed-chip')).textContent).toContain('End-to-end encrypted');
    expect(screen.queryByTestId('seal-family')).toBeNull();
    expect(screen.queryByTestId('clear-chip')).toBeNull();
  });

  it('is not sealed when the host says no', async () => {
    vi.stubGlobal('confirm', () => false);
    render(FamilySettings, { family: 'ff'.repeat(16) });
    await fireEvent.click(await screen.findByTestId('seal-family-button'));
    expect(invoke).not.toHaveBeenCalledWith('seal_family', expect.anything());
    expect(screen.getByTestId('clear-chip')).toBeTruthy();
  });

  it('offers a member no seal button', async () => {
    role = 'member';
    render(FamilySettings, { family: 'ff'.repeat(16) });
    expect(await screen.findByTestId('clear-chip')).toBeTruthy();
    expect(screen.queryByTestId('seal-family')).toBeNull();
  });
});
