// The part of a webhook replica's config that decides what it renders into a pod, and its stable
// hash. The mutating call stamps the hash on the pod (ANNOTATIONS.renderedWith); during a rollout the
// validating call may run on a replica with another config and re-render with the one the hash names
// (renderer-registry.ts). Pure: no I/O.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../recording/index.ts';
import { type WebhookConfig, webhookConfigSchema } from './config.ts';

/**
 * Everything injectPod and attributePod read from the config, plus the effective DNS resolvers
 * (configured and discovered: the capture rules name them). Not listen, tls, logLevel, the checks'
 * switches (requireAgentRunAsUser, breakGlassGroups, operatorUsers): those never change the rendering,
 * and the validating replica always applies its own checks.
 */
export const renderingSchema = webhookConfigSchema
  .pick({
    sidecarImage: true,
    initImage: true,
    initCommand: true,
    imagePullPolicy: true,
    sidecarUid: true,
    sidecarGid: true,
    adminPort: true,
    resources: true,
    spoolSizeLimit: true,
    templateControllers: true,
  })
  .extend({ dnsResolvers: z.array(z.string()) })
  .strict();
export type Rendering = z.infer<typeof renderingSchema>;

export function renderingOf(config: WebhookConfig, dnsResolvers: readonly string[]): Rendering {
  return {
    sidecarImage: config.sidecarImage,
    ...(config.initImage !== undefined ? { initImage: config.initImage } : {}),
    initCommand: [...config.initCommand],
    ...(config.imagePullPolicy !== undefined ? { imagePullPolicy: config.imagePullPolicy } : {}),
    sidecarUid: config.sidecarUid,
    sidecarGid: config.sidecarGid,
    adminPort: config.adminPort,
    resources: config.resources,
    spoolSizeLimit: config.spoolSizeLimit,
    ...(config.templateControllers !== undefined ? { templateControllers: config.templateControllers } : {}),
    // In order: the capture rules list them in this order.
    dnsResolvers: [...dnsResolvers],
  };
}

/** Canonical JSON (RFC 8785): the same rendering gives the same bytes on every replica. */
export function renderingJson(rendering: Rendering): string {
  return canonicalJson(rendering);
}

/** 16 hex digits of SHA-256 over the canonical JSON: short enough for a ConfigMap name and a label. */
export function renderingHash(rendering: Rendering): string {
  return createHash('sha256').update(renderingJson(rendering)).digest('hex').slice(0, 16);
}

/** Parses what a registry ConfigMap holds; undefined unless it is a rendering whose hash is `hash`. */
export function parseRendering(json: string, hash: string): Rendering | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  const parsed = renderingSchema.safeParse(value);
  if (!parsed.success) return undefined;
  // The name is the content's hash: a ConfigMap whose data was edited under an old name counts for nothing.
  return renderingHash(parsed.data) === hash ? parsed.data : undefined;
}

/** This replica's config, rendering as another replica did (its own checks and switches stay). */
export function configWithRendering(config: WebhookConfig, rendering: Rendering): WebhookConfig {
  const { dnsResolvers: _, ...fields } = rendering;
  const merged: WebhookConfig = { ...config, ...fields };
  for (const key of ['initImage', 'imagePullPolicy', 'templateControllers'] as const) {
    if (fields[key] === undefined) delete merged[key];
  }
  return merged;
}

const memo = new WeakMap<WebhookConfig, { resolvers: string; hash: string }>();

/** renderingHash(renderingOf(...)), remembered per config object (admissions call it per pod). */
export function configRenderingHash(config: WebhookConfig, dnsResolvers: readonly string[]): string {
  const resolvers = dnsResolvers.join(',');
  const known = memo.get(config);
  if (known?.resolvers === resolvers) return known.hash;
  const hash = renderingHash(renderingOf(config, dnsResolvers));
  memo.set(config, { resolvers, hash });
  return hash;
}
