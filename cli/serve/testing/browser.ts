// Debian's Chromium driven by playwright-core for the viewer's browser tests, and where their
// screenshots go (a gitignored folder; CHAPERONE_ARTIFACTS_DIR moves it, e.g. for CI uploads).
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after } from 'node:test';
import { type Browser, chromium } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

export function chromiumPath(): string {
  const path = process.env.CHAPERONE_CHROMIUM ?? CANDIDATES.find((p) => existsSync(p));
  if (!path)
    throw new Error("no Chromium: run `make system` (installs Debian's chromium) or set CHAPERONE_CHROMIUM");
  return path;
}

export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // The tests run as root, where Chromium refuses its own sandbox.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  after(() => browser.close());
  return browser;
}

export const ARTIFACTS_DIR =
  process.env.CHAPERONE_ARTIFACTS_DIR ?? new URL('../../../.tmp/artifacts/viewer/', import.meta.url).pathname;

export async function screenshotPath(name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, `${name}.png`);
}
