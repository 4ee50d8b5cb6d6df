// The web viewer in a real browser: Debian's Chromium driven by playwright-core through a viewer
// over recordings the real recorder wrote into MinIO. Screenshots land in .tmp/artifacts/viewer/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { generateSigningKey, openStore } from '../../recording/index.ts';
import { rawS3, s3OptionsFor, s3UrlFor, tempDir } from '../../recording/testing/fixtures.ts';
import { testEnv } from '../../test/env/index.ts';
import { buildViewer } from './app.ts';
import { Gate } from './auth.ts';
import { SessionSource } from './source.ts';
import { launchChromium, screenshotPath } from './testing/browser.ts';
import {
  APPROVED_SQL,
  BLOCKED_SQL,
  type Recorded,
  recordFixtures,
  TERMINAL_SUBJECT,
  TERMINAL_TEXT,
  tamperFirstSegment,
  XSS_SQL,
} from './testing/recordings.ts';

const env = await testEnv(['minio']);
const token = randomBytes(24).toString('base64url');
const key = generateSigningKey();
const problems: string[] = [];
const text = async (l: Locator) => (await l.textContent()) ?? '';

// Set up at the top level: after() in a describe's before() would run as soon as that hook ends.
const dir = await tempDir('viewer');
const url = s3UrlFor(env.minio, 'viewer');
const s3 = s3OptionsFor(env.minio);
const ids: Recorded = await recordFixtures(dir, url, s3, key);
const tamperedKey = await tamperFirstSegment(
  rawS3(env.minio),
  env.minio.bucket,
  url.slice(`s3://${env.minio.bucket}/`.length),
  ids.tampered,
);
const app = await buildViewer({
  source: new SessionSource(openStore(url, s3), [key.publicKeyPem]),
  gate: new Gate({ mode: 'token', token }),
  pageSize: 2,
});
const base = await app.listen({ host: '127.0.0.1', port: 0 });
after(() => app.close());
const browser: Browser = await launchChromium();
const viewport = { width: 1280, height: 900 };
const context: BrowserContext = await browser.newContext({ viewport });

async function newPage(ctx = context): Promise<Page> {
  const page = await ctx.newPage();
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return page;
}

async function signIn(page: Page): Promise<void> {
  await page.goto(`${base}/`);
  assert.match(page.url(), /\/login\?next=%2F$/);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/`);
}

{
  const page = await newPage();
  await signIn(page);
  await page.close();
}

describe('web viewer in Chromium', () => {
  test('sign in with the token; a wrong token is refused', async () => {
    const fresh = await browser.newContext({ viewport });
    const page = await newPage(fresh);
    await page.goto(`${base}/sessions/${ids.sql}`);
    assert.match(page.url(), /\/login\?next=/);
    await page.getByLabel('Access token').fill('not-the-token-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'does not open this viewer' }).waitFor();
    await page.screenshot({ path: await screenshotPath('01-login-refused') });
    await page.getByLabel('Access token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Back to the page asked for first.
    await page.waitForURL(`${base}/sessions/${ids.sql}`);
    await fresh.close();
  });

  test('the list paginates and searches by identity', async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.getByText('4 matching sessions, showing 1–2').waitFor();
    await page.getByRole('link', { name: 'Next page' }).click();
    await page.getByText('4 matching sessions, showing 3–4').waitFor();
    await page.getByLabel('Identity').fill(TERMINAL_SUBJECT);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('1 matching session, showing 1–1').waitFor();
    const rows = page.locator('table.sessions tbody tr');
    assert.equal(await rows.count(), 1);
    assert.match(await text(rows.first()), new RegExp(TERMINAL_SUBJECT.replace('.', '\\.')));
    await page.screenshot({ path: await screenshotPath('02-search-by-identity'), fullPage: true });
    await page.getByRole('link', { name: ids.terminal }).click();
    await page.waitForURL(`${base}/sessions/${ids.terminal}`);
    await page.close();
  });

  test('a terminal session replays in asciinema-player and verifies with the key id', async () => {
    const page = await newPage();
    await page.goto(`${base}/sessions/${ids.terminal}`);
    const verified = page.locator('.verify.ok');
    await verified.waitFor();
    assert.match(await text(verified), new RegExp(`Verified.*signed by key ${key.keyId}`, 's'));
    const player = page.getByRole('region', { name: 'Terminal replay of channel 0' });
    await player.locator('.ap-player').waitFor();
    // Nothing printed yet; play it and the recorded output appears on the player's terminal.
    assert.doesNotMatch(await text(player), new RegExp(TERMINAL_TEXT));
    await player.locator('.ap-player').click();
    await player.getByText(TERMINAL_TEXT).last().waitFor();
    await page.waitForFunction(
      () =>
        (
          globalThis as unknown as {
            document: { querySelector(s: string): { dataset: Record<string, string> } | null };
          }
        ).document.querySelector('.player')?.dataset.ended === 'true',
    );
    await page.screenshot({ path: await screenshotPath('03-terminal-replay'), fullPage: true });
    // The timeline shows the same bytes as inert text, escape sequences visible.
    await page.locator('.event.terminal pre', { hasText: '\\x1b[32m' }).first().waitFor();
    await page.close();
  });

  test('SQL with masked samples, a blocked and an approved statement, an XSS payload shown inert', async () => {
    const page = await newPage();
    const res = await page.goto(`${base}/sessions/${ids.sql}`);
    const raw = (await res!.text()) as string;
    assert.ok(
      raw.includes('&lt;script&gt;window.__xss = 1&lt;/script&gt;'),
      'the payload is escaped in the HTML',
    );
    assert.ok(!raw.includes('<script>window.__xss'), 'the payload never appears as markup');
    const blocked = page.locator('.event.blocked');
    assert.equal(await blocked.count(), 1);
    assert.match(await text(blocked), /Blocked by rule no-drop: DROP is not allowed for agents/);
    assert.match(await text(blocked), new RegExp(BLOCKED_SQL));
    const approved = page.locator('.event.approved');
    assert.match(await text(approved), /Approved by carol@example\.com/);
    await page.locator('pre.sql', { hasText: APPROVED_SQL }).first().waitFor();
    const masked = page.locator('table.rows').first();
    assert.match(await text(masked), /\*\*\*/);
    await page.getByText('2 cells masked').waitFor();
    // The payload is on the page as text, and did not run or create elements.
    await page.locator('pre.sql', { hasText: XSS_SQL }).waitFor();
    await page.getByRole('cell', { name: '<b>bold?</b>' }).waitFor();
    assert.equal(await page.evaluate('window.__xss'), undefined);
    assert.equal(await page.locator('main img, main script, main b').count(), 0);
    await page.screenshot({ path: await screenshotPath('04-sql-blocked-approved-xss'), fullPage: true });
    await page.close();
  });

  test('HTTP exchanges are shown with method, URL and status', async () => {
    const page = await newPage();
    await page.goto(`${base}/sessions/${ids.http}`);
    await page.locator('.event.http', { hasText: 'DELETE /api/v1/namespaces/prod/pods/web-0' }).waitFor();
    await page.locator('.event.http.error', { hasText: '403 Forbidden' }).waitFor();
    await page.close();
  });

  test('a tampered session is shown as failing verification, here and in the list', async () => {
    const page = await newPage();
    await page.goto(`${base}/sessions/${ids.tampered}`);
    const alert = page.locator('.verify.fail');
    await alert.waitFor();
    const segment = Number(/seg-(\d+)\.zst$/.exec(tamperedKey)?.[1]);
    assert.match(
      await text(alert),
      new RegExp(`Verification failed: segment-tampered at segment ${segment} `),
    );
    await page.screenshot({ path: await screenshotPath('05-tampered'), fullPage: true });
    await page.goto(`${base}/?subject=mallory@example.com`);
    const row = page.locator('table.sessions tbody tr');
    assert.match(await text(row), /verification failed/);
    await page.close();
  });

  test('keyboard only: skip link, search form, open a session', async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    const focused = () =>
      page.evaluate(
        'document.activeElement && (document.activeElement.id || document.activeElement.textContent.trim())',
      );
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await focused(), 'main');
    // From the main landmark the first stop is the identity field.
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'f-subject');
    await page.keyboard.type(TERMINAL_SUBJECT);
    await page.keyboard.press('Enter');
    await page.getByText('1 matching session').waitFor();
    // Tab until the session link has focus, then open it with Enter.
    for (let i = 0; i < 30 && (await focused()) !== ids.terminal; i++) await page.keyboard.press('Tab');
    assert.equal(await focused(), ids.terminal);
    await page.screenshot({ path: await screenshotPath('06-keyboard-focus') });
    await page.keyboard.press('Enter');
    await page.waitForURL(`${base}/sessions/${ids.terminal}`);
    await page.close();
  });

  test('no console errors and no CSP violations on any page', () => {
    assert.deepEqual(problems, []);
  });
});
