import { render, screen } from '@testing-library/svelte';
import { flushSync } from 'svelte';
import { describe, expect, it, vi } from 'vitest';
import { app } from '../lib/state.svelte';
import type { FamilyCard } from '../lib/types';
import FamilySwitcher from './FamilySwitcher.svelte';
import KeysBanner from './KeysBanner.svelte';

vi.mock('@tauri-apps/api/core', () => ({
  invoke: vi.fn(),
  convertFileSrc: (p: string) => p,
  Channel: class {},
}));

const card = (over: Partial<FamilyCard>): FamilyCard => ({
  family: 'f1',
  title: '',
  members: 0,
  role: 'member',
  member: true,
  sealed: true,
  waiting_for_keys: true,
  ...over,
});

describe("a sealed family this device waits to be let into", () => {
  it('says why it is empty until the keys come, in the user language', () => {
    app.lang = 'ko';
    app.families = [card({})];
    app.family = 'f1';
    render(KeysBanner);
    render(FamilySwitcher);
    flushSync();
    expect(screen.getByTestId('keys-banner').textContent).toContain('종단간 암호화');
    expect(screen.getByTestId('family-switcher').textContent).toContain('열쇠를 기다리는 가족');

    app.lang = 'en';
    flushSync();
    expect(screen.getByTestId('keys-banner').textContent).toContain('end-to-end encrypted');

    // The keys came: the family list is read again, with its title.
    app.families = [card({ title: '우리 가족', members: 2, waiting_for_keys: false })];
    flushSync();
    expect(screen.queryByTestId('keys-banner')).toBeNull();
    expect(screen.getByTestId('family-switcher').textContent).toContain('우리 가족');
  });

  it('shows nothing for a family in the clear or one the user was removed from', () => {
    app.families = [card({ family: 'f2', sealed: false, waiting_for_keys: false, title: '가족' })];
    app.family = 'f2';
    render(KeysBanner);
    flushSync();
    expect(screen.queryByTestId('keys-banner')).toBeNull();
    app.families = [card({ family: 'f2', member: false })];
    flushSync();
    expect(screen.queryByTestId('keys-banner')).toBeNull();
  });
});
