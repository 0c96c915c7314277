// What the end-to-end tests run against: the real relay (`doran-server`, started like
// testkit/src/lib.rs does: `--listen 127.0.0.1:0`, then its "listening on" line), the
// real app binary in a real window (tauri-driver → WebKitWebDriver, under Xvfb), and
// the `doran` command line as the second family member.
//
// Environment (set by scripts/lib/desktop.sh): DORAN_APP (the app binary), DORAN_BIN
// (where doran and doran-server are), TAURI_DRIVER, DORAN_SCREENSHOTS (where PNGs go).

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Session } from './webdriver';

export function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the end-to-end tests through scripts/test)`);
  return v;
}

export const workdir = mkdtempSync(join(tmpdir(), 'doran-e2e-'));

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** The relay process, on the embedded default (SQLite and a blob folder). */
export class Relay {
  private child: ChildProcess | null = null;
  url = '';
  private listen = '127.0.0.1:0';

  constructor(private readonly data: string) {}

  /** Starts it (on the same address as before when restarted) and waits until it listens. */
  async start(): Promise<void> {
    const child = spawn(join(env('DORAN_BIN'), 'doran-server'), ['--data-dir', this.data, '--listen', this.listen], {
      env: { ...process.env, DORAN_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      rl.once('line', (l) => resolve(l));
      child.once('exit', (code) => reject(new Error(`the relay exited (${code}) before listening`)));
    });
    const m = /^listening on (http:\/\/(.+))$/.exec(line.trim());
    if (!m) throw new Error(`the relay said ${line}`);
    this.url = m[1];
    this.listen = m[2];
  }

  /** SIGKILL, as a crash or a pulled cable would look to the devices. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.child = null;
  }
}

/** The app under tauri-driver, one window (session) at a time. */
export class App {
  private driver: ChildProcess | null = null;
  private base = '';
  session: Session | null = null;

  constructor(
    readonly home: string,
    private readonly extraEnv: Record<string, string>,
  ) {}

  async launch(): Promise<Session> {
    if (!this.driver) {
      const port = await freePort();
      const nativePort = await freePort();
      this.driver = spawn(
        env('TAURI_DRIVER'),
        ['--port', String(port), '--native-port', String(nativePort), '--native-driver', '/usr/bin/WebKitWebDriver'],
        {
          env: { ...process.env, DORAN_HOME: this.home, ...this.extraEnv },
          stdio: ['ignore', 'inherit', 'inherit'],
        },
      );
      this.base = `http://127.0.0.1:${port}`;
      await waitUntil('tauri-driver', async () => (await fetch(`${this.base}/status`)).ok, 20_000);
    }
    this.session = await Session.start(this.base, env('DORAN_APP'));
    return this.session;
  }

  async close(): Promise<void> {
    await this.session?.quit();
    this.session = null;
    if (this.driver) {
      const d = this.driver;
      const exited = new Promise((r) => d.once('exit', r));
      d.kill('SIGTERM');
      await exited;
      this.driver = null;
    }
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${what} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A second family member on the command line: `doran --home HOME ARGS`. */
export class Cli {
  constructor(readonly home: string) {}

  run(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        join(env('DORAN_BIN'), 'doran'),
        ['--home', this.home, ...args],
        { env: { ...process.env, DORAN_LOG: 'off' }, timeout: 60_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`doran ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout.trim())),
      );
    });
  }

  async json<T>(...args: string[]): Promise<T> {
    return JSON.parse(await this.run('--json', ...args)) as T;
  }
}

/** Saves the window as NAME.png in docs/screenshots/ (or in `dir`). */
export async function screenshot(session: Session, name: string, dir = env('DORAN_SCREENSHOTS')): Promise<void> {
  mkdirSync(dir, { recursive: true });
  // Let a just-arrived image or font finish painting: two animation frames.
  await session.execute('return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));').catch(() => {});
  writeFileSync(join(dir, `${name}.png`), await session.screenshot());
}

/** Runs a program (ImageMagick, espeak-ng) to make test files. */
export function tool(cmd: string, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 60_000 }, (err, _o, stderr) => (err ? reject(new Error(`${cmd}: ${stderr || err.message}`)) : resolve())),
  );
}
