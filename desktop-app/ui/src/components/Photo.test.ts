import { render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { dispatch } from '../lib/events';
import Photo from './Photo.svelte';

// The facade, as the front end sees it: `photo_file` says None until the bytes are here.
let cached = false;
const invoke = vi.fn(async (cmd: string, _args?: unknown) => {
  if (cmd === 'photo_file') return cached ? '/home/blobs/thumbhash' : null;
  throw new Error(`unexpected ${cmd}`);
});
vi.mock('@tauri-apps/api/core', () => ({
  invoke: (cmd: string, args: unknown) => invoke(cmd, args),
  convertFileSrc: (p: string) => `asset://localhost${p}`,
  Channel: class {},
}));

const photo = { id: 'p1', album_id: 'a1', thumb: 'thumbhash', blob: 'bloblhash', by: 'u', at: 0 };

describe('a photo whose bytes have not arrived', () => {
  beforeEach(() => {
    cached = false;
    invoke.mockClear();
  });

  it('shows a placeholder, then the photo when the blob arrives', async () => {
    render(Photo, { family: 'fam', photo });
    await waitFor(() => expect(invoke).toHaveBeenCalledWith('photo_file', { family: 'fam', photo: 'p1', thumbnail: true }));
    expect(screen.getByTestId('photo-placeholder')).toBeTruthy();

    cached = true;
    dispatch({ type: 'blob_arrived', hash: 'some other blob' });
    dispatch({ type: 'blob_arrived', hash: 'thumbhash' });
    const img = await screen.findByTestId('photo-img');
    expect(img.getAttribute('src')).toBe('asset://localhost/home/blobs/thumbhash');
    expect(invoke).toHaveBeenCalledTimes(2);
  });
});
