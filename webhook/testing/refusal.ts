// What the apiserver answered a refused request, worded as kubectl prints it: `403 admission webhook
// "pods.chaperone.dev" denied the request: ...`.
import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';

export interface Refusal {
  code: number;
  message: string;
}

/** The apiserver's refusal of `request`, or undefined when it was admitted. */
export async function refusalOf(request: Promise<unknown>): Promise<Refusal | undefined> {
  try {
    await request;
    return undefined;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body = typeof error.body === 'string' ? JSON.parse(error.body) : error.body;
    return { code: error.code, message: String(body?.message ?? '') };
  }
}

/** `<code> <message>` of the refusal (what kubectl prints); fails the test when it was admitted. */
export async function refusal(request: Promise<unknown>): Promise<string> {
  const refused = await refusalOf(request);
  if (!refused) assert.fail('expected the apiserver to refuse the request');
  return `${refused.code} ${refused.message}`;
}
