// The viewer's static files (its own stylesheet and script, and asciinema-player's bundle), read
// from wherever this program runs: a single executable carries them as SEA assets (node:sea), the
// npm package and the plain bundle as files in assets/ next to the bundle, a checkout as the
// source files. release/build.ts uses assetSources() to pack the same four files.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { getAsset, isSea } from 'node:sea';

declare const __CHAPERONE_BUILD__: { version: string; revision: string } | undefined;

export interface Asset {
  type: string;
  body: Buffer;
}

/** Asset name (the last segment of /assets/<name>) → content type. */
export const ASSET_TYPES: Readonly<Record<string, string>> = {
  'viewer.css': 'text/css',
  'viewer.js': 'text/javascript',
  'asciinema-player.min.js': 'text/javascript',
  'asciinema-player.css': 'text/css',
};

/** Where each asset lives in a checkout (run from source only: the bundle has no import.meta.url). */
export function assetSources(): Map<string, string> {
  const here = (name: string) => new URL(`./assets/${name}`, import.meta.url).pathname;
  const player = (name: string) =>
    createRequire(import.meta.url).resolve(`asciinema-player/dist/bundle/${name}`);
  return new Map([
    ['viewer.css', here('viewer.css')],
    ['viewer.js', here('viewer.js')],
    ['asciinema-player.min.js', player('asciinema-player.min.js')],
    ['asciinema-player.css', player('asciinema-player.css')],
  ]);
}

/** Where this program finds its assets: `sea`, `bundle` (assets/ beside it) or `checkout`. */
export function assetOrigin(): 'sea' | 'bundle' | 'checkout' {
  if (isSea()) return 'sea';
  return typeof __CHAPERONE_BUILD__ !== 'undefined' ? 'bundle' : 'checkout';
}

/** The bytes of every asset, keyed by name; throws (with the place looked at) when one is missing. */
export function loadAssets(): Map<string, Asset> {
  const origin = assetOrigin();
  const sources = origin === 'checkout' ? assetSources() : undefined;
  const read = (name: string): Buffer => {
    if (origin === 'sea') return Buffer.from(getAsset(name));
    // In the CommonJS bundle __dirname is the bundle's folder (npm package: lib/).
    if (origin === 'bundle') return readFileSync(join(__dirname, 'assets', name));
    return readFileSync(sources!.get(name)!);
  };
  const out = new Map<string, Asset>();
  for (const [name, type] of Object.entries(ASSET_TYPES)) {
    try {
      out.set(name, { type, body: read(name) });
    } catch (err) {
      throw new Error(`viewer asset ${name} (${origin}): ${(err as Error).message}`);
    }
  }
  return out;
}
