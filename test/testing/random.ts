// Seeded randomness for fuzz and random tests: one seed per run, printed on failure, rerun with
// CHAPERONE_SEED=<seed>. The generator is mulberry32 (32-bit state, good enough to pick test
// cases; not for anything secret).
import { randomInt } from 'node:crypto';

export type Random = () => number;

/** mulberry32: a float in [0, 1) per call, the same sequence for the same seed. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The run's seed: CHAPERONE_SEED if set, else a fresh one. */
export function testSeed(): number {
  const fromEnv = process.env.CHAPERONE_SEED;
  if (fromEnv !== undefined && fromEnv !== '') {
    const seed = Number(fromEnv);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new Error(`CHAPERONE_SEED must be an integer in [0, 2^32): ${fromEnv}`);
    return seed;
  }
  return randomInt(0, 2 ** 32 - 1);
}

/** Helpers over one generator. */
export interface Seeded {
  seed: number;
  random: Random;
  /** An integer in [min, max). */
  int(min: number, max: number): number;
  bytes(n: number): Buffer;
}

export function seeded(seed: number): Seeded {
  const random = mulberry32(seed);
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min));
  return {
    seed,
    random,
    int,
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = int(0, 256);
      return b;
    },
  };
}

/**
 * Runs a random test body with the run's seed; a failure carries the seed and how to rerun it
 * (`CHAPERONE_SEED=<seed> node --test <file>`).
 */
export async function withSeed<T>(body: (rng: Seeded) => Promise<T> | T): Promise<T> {
  const seed = testSeed();
  try {
    return await body(seeded(seed));
  } catch (error) {
    const hint = `[seed ${seed}: rerun with CHAPERONE_SEED=${seed}]`;
    if (error instanceof Error) {
      const original = error.message;
      error.message = `${original} ${hint}`;
      // Reporters print the stack, which was written with the old message.
      if (error.stack) error.stack = error.stack.replace(original, error.message);
      throw error;
    }
    throw new Error(`${String(error)} ${hint}`);
  }
}
