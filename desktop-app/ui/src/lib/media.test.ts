import { describe, expect, it } from 'vitest';
import { asciiJson, asDeviceError } from './api';
import { kindOfPath, mmss } from './media';
import { encodeWav } from './recorder';

describe('small helpers', () => {
  it('writes durations as mm:ss', () => {
    expect(mmss(0)).toBe('00:00');
    expect(mmss(65_400)).toBe('01:05');
    expect(mmss(180_000)).toBe('03:00');
  });
  it('tells photos from recordings by name', () => {
    expect(kindOfPath('/tmp/가족.JPG')).toBe('photo');
    expect(kindOfPath('a.m4a')).toBe('audio');
    expect(kindOfPath('notes.txt')).toBeNull();
  });
  it('puts Korean arguments in a header as ASCII JSON that reads back the same', () => {
    const args = { family: 'f', caption: '우리 가족 🏡' };
    const json = asciiJson(args);
    expect(/^[\x20-\x7e]*$/.test(json)).toBe(true);
    expect(JSON.parse(json)).toEqual(args);
  });
  it('keeps the facade error as it is', () => {
    const e = { code: 'offline', message: '지금은 서버에 연결할 수 없어요.' };
    expect(asDeviceError(e)).toBe(e);
    expect(asDeviceError('boom')).toEqual({ code: 'app', message: 'boom' });
  });
});

describe('the WAV fallback of the recorder', () => {
  it('writes a mono 16-bit PCM header and clamped samples', () => {
    const wav = encodeWav([new Float32Array([0, 0.5]), new Float32Array([-1, 2])], 48_000);
    const v = new DataView(wav.buffer);
    const text = (at: number) => String.fromCharCode(...wav.slice(at, at + 4));
    expect(text(0)).toBe('RIFF');
    expect(text(8)).toBe('WAVE');
    expect(v.getUint16(22, true)).toBe(1);
    expect(v.getUint32(24, true)).toBe(48_000);
    expect(v.getUint16(34, true)).toBe(16);
    expect(v.getUint32(40, true)).toBe(8);
    expect(wav.length).toBe(44 + 8);
    expect(v.getInt16(46, true)).toBe(Math.floor(0.5 * 0x7fff));
    expect(v.getInt16(48, true)).toBe(-0x8000);
    expect(v.getInt16(50, true)).toBe(0x7fff);
  });
});
