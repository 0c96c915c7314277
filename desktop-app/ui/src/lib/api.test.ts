import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The front end calls the Rust commands by name: every name it calls must be a
// registered command, and every command should have its typed function.
const here = join(__dirname, '..', '..', '..');
const rust = readFileSync(join(here, 'src', 'commands.rs'), 'utf8');
const ts = readFileSync(join(__dirname, 'api.ts'), 'utf8');

const registered = new Set([...rust.matchAll(/^\s+\w+::(\w+),$/gm)].map((m) => m[1]));
const called = new Set([...ts.matchAll(/call(?:Raw)?<[^(]*?>\('(\w+)'/g)].map((m) => m[1]));

describe('the commands the front end calls', () => {
  it('are the commands the app registers', () => {
    expect(registered.size).toBeGreaterThan(60);
    expect([...called].filter((c) => !registered.has(c))).toEqual([]);
    expect([...registered].filter((c) => !called.has(c))).toEqual([]);
  });
});
