import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { app } from '../lib/state.svelte';
import type { SafetyCodeView } from '../lib/types';
import SafetyCode from './SafetyCode.svelte';

// The facade as the front end sees it: the device's code for dad, and a comparison
// that is the same only for the digits his device shows.
const groups = ['19037', '82059', '62702', '60540', '15139', '45896', '11673', '18132', '04871', '26874', '61304', '34171'];
let verified = false;
const view = (): SafetyCodeView => ({ user: 'dd'.repeat(16), name: '아빠', groups, code: groups.join(' '), verified });
const invoke = vi.fn(async (cmd: string, args?: unknown) => {
  if (cmd === 'safety_code') return view();
  if (cmd === 'verify_safety_code') {
    const { code } = args as { code: string };
    if (code.replace(/[\s-]/g, '') !== groups.join('')) {
      throw { code: 'safety_code_mismatch', message: 'The safety codes differ: one of the two devices holds another key for 아빠' };
    }
    verified = true;
    return view();
  }
  throw new Error(`unexpected ${cmd}`);
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args: unknown) => invoke(cmd, args),
  convertFileSrc: (p: string) => p,
  Channel: class {},
}));

describe('comparing safety codes with a member', () => {
  beforeEach(() => {
    verified = false;
    invoke.mockClear();
    app.lang = 'en';
    // jsdom has no <dialog> methods.
    HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
      this.open = true;
    };
    HTMLDialogElement.prototype.close ??= function (this: HTMLDialogElement) {
      this.open = false;
    };
  });
  afterEach(() => cleanup());

  it('shows the twelve groups in three rows', async () => {
    render(SafetyCode, { family: 'ff'.repeat(16), user: 'dd'.repeat(16), name: '아빠', onclose: () => {} });
    const digits = await screen.findByTestId('safety-code');
    expect(digits.querySelectorAll('.row-digits')).toHaveLength(3);
    expect(digits.textContent).toContain('19037');
    expect(digits.textContent).toContain('34171');
    expect(screen.queryByTestId('safety-verified')).toBeNull();
  });

  it('says so in the dialog when the digits typed differ, and verifies nothing', async () => {
    const onverified = vi.fn();
    render(SafetyCode, { family: 'ff'.repeat(16), user: 'dd'.repeat(16), name: '아빠', onclose: () => {}, onverified });
    const input = await screen.findByTestId('safety-code-input');
    await fireEvent.input(input, { target: { value: '00000 '.repeat(12) } });
    await fireEvent.click(screen.getByTestId('safety-code-compare'));
    const error = await screen.findByTestId('safety-code-error');
    expect(error.textContent).toContain('another key for 아빠');
    expect(onverified).not.toHaveBeenCalled();
    expect(screen.queryByTestId('safety-verified')).toBeNull();
  });

  it('marks the member verified when the digits typed are the same', async () => {
    const onverified = vi.fn();
    render(SafetyCode, { family: 'ff'.repeat(16), user: 'dd'.repeat(16), name: '아빠', onclose: () => {}, onverified });
    const input = await screen.findByTestId('safety-code-input');
    await fireEvent.input(input, { target: { value: groups.join('-') } });
    await fireEvent.click(screen.getByTestId('safety-code-compare'));
    await screen.findByTestId('safety-verified');
    expect(invoke).toHaveBeenCalledWith('verify_safety_code', {
      family: 'ff'.repeat(16),
      user: 'dd'.repeat(16),
      code: groups.join('-'),
    });
    await waitFor(() => expect(onverified).toHaveBeenCalled());
    expect(screen.queryByTestId('safety-code-error')).toBeNull();
  });
});
