// admission.k8s.io/v1 AdmissionReview: the request the apiserver sends and the responses we build.
import type { Operation } from 'fast-json-patch';
import { z } from 'zod';

export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  userInfo: UserInfo;
  /** Raw JSON: never parsed through a zod object, which would drop unknown fields. */
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason?: string; message: string };
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  /** Added by the apiserver to its audit event for this request (key prefixed with the webhook name). */
  auditAnnotations?: Record<string, string>;
}

// Only the envelope is validated; object and oldObject pass through untouched (z.unknown()).
const admissionReviewSchema = z.object({
  apiVersion: z.literal('admission.k8s.io/v1'),
  kind: z.literal('AdmissionReview'),
  request: z.looseObject({
    uid: z.string().min(1),
    kind: z.looseObject({ group: z.string(), version: z.string(), kind: z.string() }),
    resource: z.looseObject({ group: z.string(), version: z.string(), resource: z.string() }),
    subResource: z.string().optional(),
    name: z.string().optional(),
    namespace: z.string().optional(),
    operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
    userInfo: z.looseObject({
      username: z.string().optional(),
      uid: z.string().optional(),
      groups: z.array(z.string()).optional(),
    }),
    object: z.unknown().optional(),
    oldObject: z.unknown().optional(),
    dryRun: z.boolean().optional(),
  }),
});

export function parseAdmissionReview(body: unknown): AdmissionRequest {
  const parsed = admissionReviewSchema.safeParse(body);
  if (!parsed.success)
    throw new Error(`not an admission.k8s.io/v1 AdmissionReview: ${z.prettifyError(parsed.error)}`);
  return parsed.data.request as AdmissionRequest;
}

export function reviewOf(response: AdmissionResponse): object {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

/** What a handler decides; the server adds the request uid. */
export type Decision =
  | { allowed: true; patch?: Operation[]; warnings?: string[]; auditAnnotations?: Record<string, string> }
  | { allowed: false; code: number; message: string; warnings?: string[] };

export const allow = (warnings?: string[]): Decision => ({
  allowed: true,
  ...(warnings?.length ? { warnings } : {}),
});
export const deny = (message: string, code = 403): Decision => ({ allowed: false, code, message });

export function toResponse(uid: string, decision: Decision): AdmissionResponse {
  const warnings = {
    ...(decision.warnings?.length ? { warnings: decision.warnings } : {}),
    ...(decision.allowed && decision.auditAnnotations ? { auditAnnotations: decision.auditAnnotations } : {}),
  };
  if (!decision.allowed) {
    return {
      uid,
      allowed: false,
      status: {
        code: decision.code,
        reason: decision.code === 403 ? 'Forbidden' : 'InternalError',
        message: decision.message,
      },
      ...warnings,
    };
  }
  if (decision.patch && decision.patch.length > 0) {
    return {
      uid,
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(decision.patch)).toString('base64'),
      ...warnings,
    };
  }
  return { uid, allowed: true, ...warnings };
}
