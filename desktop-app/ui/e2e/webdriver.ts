// A small W3C WebDriver client (what tauri-driver speaks, forwarding to
// WebKitWebDriver), over Node's fetch: sessions, elements, scripts, screenshots.

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

export interface Element {
  id: string;
}

export class WebDriverError extends Error {}

async function request<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json().catch(() => ({}))) as { value?: unknown };
  if (!res.ok) {
    const v = (json.value ?? {}) as { error?: string; message?: string };
    throw new WebDriverError(`${method} ${path}: ${v.error ?? res.status} ${v.message ?? ''}`);
  }
  return json.value as T;
}

export class Session {
  private constructor(
    private readonly base: string,
    readonly id: string,
  ) {}

  /** Opens the app at `application` in a new window. */
  static async start(base: string, application: string): Promise<Session> {
    const v = await request<{ sessionId: string }>(base, 'POST', '/session', {
      capabilities: { alwaysMatch: { 'tauri:options': { application } } },
    });
    return new Session(base, v.sessionId);
  }

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return request<T>(this.base, method, `/session/${this.id}${path}`, body);
  }

  async quit(): Promise<void> {
    await this.call('DELETE', '').catch(() => {});
  }

  /**
   * The first element matching `css`, waiting up to `timeoutMs` for it to appear: a
   * screen shows "loading" until its data comes, so its form is not there the instant
   * the screen is.
   */
  async find(css: string, timeoutMs = 15_000): Promise<Element> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const v = await this.call<Record<string, string>>('POST', '/element', { using: 'css selector', value: css });
        return { id: v[ELEMENT] };
      } catch (e) {
        if (!(e instanceof WebDriverError) || !e.message.includes('no such element')) throw e;
        if (Date.now() > deadline) throw new WebDriverError(`no element ${css} after ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async findAll(css: string): Promise<Element[]> {
    const v = await this.call<Record<string, string>[]>('POST', '/elements', { using: 'css selector', value: css });
    return v.map((e) => ({ id: e[ELEMENT] }));
  }

  async click(css: string | Element): Promise<void> {
    const el = typeof css === 'string' ? await this.find(css) : css;
    await this.call('POST', `/element/${el.id}/click`, {});
  }

  /** Types into an input (a file input takes the file's path). */
  async type(css: string, text: string, clear = true): Promise<void> {
    const el = await this.find(css);
    if (clear) await this.call('POST', `/element/${el.id}/clear`, {});
    await this.call('POST', `/element/${el.id}/value`, { text });
  }

  async text(css: string): Promise<string> {
    const el = await this.find(css);
    return this.call<string>('GET', `/element/${el.id}/text`);
  }

  /** Runs `script` (a function body) in the page with `args`. */
  execute<T>(script: string, ...args: unknown[]): Promise<T> {
    return this.call<T>('POST', '/execute/sync', { script, args });
  }

  /** Whether an element matching `css` exists now. */
  exists(css: string): Promise<boolean> {
    return this.execute<boolean>('return !!document.querySelector(arguments[0]);', css);
  }

  /** The text of every element matching `css`. */
  texts(css: string): Promise<string[]> {
    return this.execute<string[]>(
      'return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent.trim());',
      css,
    );
  }

  /** The web view's content as PNG bytes. */
  async screenshot(): Promise<Buffer> {
    return Buffer.from(await this.call<string>('GET', '/screenshot'), 'base64');
  }

  async setWindowSize(width: number, height: number): Promise<void> {
    await this.call('POST', '/window/rect', { width, height });
  }

  /** Waits until `check` gives a truthy value (polling), failing after `timeoutMs`. */
  async until<T>(what: string, check: () => Promise<T>, timeoutMs = 30_000): Promise<NonNullable<T>> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const v = await check();
        if (v) return v as NonNullable<T>;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  /** Waits until an element matching `css` exists. */
  waitFor(css: string, timeoutMs?: number): Promise<boolean> {
    return this.until(css, () => this.exists(css), timeoutMs);
  }
}
