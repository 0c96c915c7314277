import { defineConfig } from 'vitest/config';

// End-to-end tests: the real app window (tauri-driver + WebKitWebDriver under Xvfb),
// a real relay, and the `doran` command line as the second family member. One file,
// steps in order, nothing in parallel.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
    sequence: { concurrent: false },
    reporters: ['verbose'],
  },
});
