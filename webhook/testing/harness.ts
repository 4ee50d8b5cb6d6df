// Runs the webhook as a local process next to the test apiserver, registered by URL with a CA made
// here, scoped to this run's namespaces (a run label every webhook requires) so test files sharing
// the apiserver never see it. cleanup() removes the configurations first, then everything else.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { get } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { SESSION_POLICY } from '../../crds/index.ts';
import type { KubeInfo } from '../../test/env/index.ts';
import { kubeConfigFor } from '../../test/env/kube.ts';
import { parseWebhookConfig, type WebhookConfig, type WebhookConfigInput } from '../config.ts';
import { LABELS, TLS_SECRET_NAME } from '../constants.ts';
import { type RunningWebhook, startWebhook } from '../main.ts';
import { renderWebhookConfigurations } from '../webhook-configurations.ts';
import { agentPod } from './fixtures.ts';
import { createTestCa, issueServingCert, type ServingCert, type TestCa } from './pki.ts';

const exec = promisify(execFile);
export const RUN_LABEL = 'chaperone.dev/test-run';
const CRD_DIR = join(import.meta.dirname, '..', '..', 'crds');

export interface KubectlResult {
  ok: boolean;
  out: string;
}

export class WebhookHarness {
  readonly id = randomBytes(3).toString('hex');
  readonly systemNamespace = `chp-sys-${this.id}`;
  readonly configName = `chaperone-test-${this.id}`;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly admission: AdmissionregistrationV1Api;
  config!: WebhookConfig;
  webhook: RunningWebhook | undefined;
  /** The webhook as its own process (startProcess), as in production. */
  process: ChildProcess | undefined;
  port = 0;
  ca!: TestCa;
  serving!: ServingCert;
  private readonly namespaces: string[] = [];

  readonly kube: KubeInfo;

  constructor(kube: KubeInfo) {
    this.kube = kube;
    this.kc = kubeConfigFor(kube);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.admission = this.kc.makeApiClient(AdmissionregistrationV1Api);
  }

  async kubectl(args: string[], input?: object | string): Promise<KubectlResult> {
    const run = exec(this.kube.kubectl, ['--kubeconfig', this.kube.kubeconfigPath, ...args], {
      maxBuffer: 16 << 20,
    });
    if (input !== undefined) run.child.stdin!.end(typeof input === 'string' ? input : stringify(input));
    try {
      const { stdout, stderr } = await run;
      return { ok: true, out: stdout + stderr };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
    }
  }

  async mustKubectl(args: string[], input?: object | string): Promise<string> {
    const result = await this.kubectl(args, input);
    if (!result.ok) throw new Error(`kubectl ${args.join(' ')}: ${result.out}`);
    return result.out;
  }

  /**
   * CRDs, system namespace with the TLS Secret, the webhook (in this process, or its own with
   * ownProcess: node webhook/main.ts), its configurations.
   */
  async start(overrides: Partial<WebhookConfigInput> = {}, ownProcess = false): Promise<void> {
    await this.mustKubectl(['apply', '--server-side', '--force-conflicts', '-f', CRD_DIR]);
    await this.mustKubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/sessionpolicies.chaperone.dev',
      'crd/sessionapprovals.chaperone.dev',
    ]);
    await this.createNamespace(this.systemNamespace, {});
    this.ca = await createTestCa();
    this.serving = await issueServingCert(this.ca);
    await this.putTlsSecret(this.serving, this.ca);
    this.port = ownProcess ? await freePort() : 0;
    this.config = parseWebhookConfig({
      sidecarImage: 'ghcr.io/chaperone/chaperone:test',
      systemNamespace: this.systemNamespace,
      listen: { host: '127.0.0.1', port: this.port },
      tls: { source: 'secret' },
      dns: { resolvers: ['10.0.0.10'], discoverService: null },
      kubeconfig: this.kube.kubeconfigPath,
      logLevel: 'warn',
      ...overrides,
    });
    if (ownProcess) await this.startProcess();
    else {
      this.webhook = await startWebhook(this.config, this.kc);
      this.port = Number(new URL(this.webhook.url).port);
    }
    await this.registerConfigurations(this.ca.certPem);
  }

  /**
   * start(), then a namespace opted in to recording with these SessionPolicies (Ready, by name),
   * once the webhook answers there (a dry run of `probe` comes back injected). Returns the namespace.
   */
  async startInRecordedNamespace(
    prefix: string,
    policies: Record<string, object>,
    options: { config?: Partial<WebhookConfigInput>; probe?: V1Pod } = {},
  ): Promise<string> {
    await this.start(options.config);
    const namespace = await this.recordedNamespace(prefix);
    for (const [name, spec] of Object.entries(policies)) await this.createPolicy(namespace, name, spec);
    await this.waitUntilActive(namespace, options.probe ?? agentPod('probe'));
    return namespace;
  }

  private async startProcess(): Promise<void> {
    const main = join(import.meta.dirname, '..', 'main.ts');
    const child = spawn(process.execPath, [main], {
      env: { ...process.env, CHAPERONE_WEBHOOK_CONFIG: JSON.stringify(this.config) },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    this.process = child;
    const deadline = Date.now() + 30_000;
    while ((await this.webhookGet('/healthz').catch(() => undefined)) !== 'ok') {
      if (child.exitCode !== null) throw new Error(`webhook process exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error('webhook process not healthy in 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** GET on the webhook's HTTPS port, trusting the test CA. */
  webhookGet(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port: this.port, path, ca: this.ca.certPem }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
    });
  }

  async putTlsSecret(serving: ServingCert, ca: TestCa): Promise<void> {
    await this.mustKubectl(['apply', '-f', '-'], {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: TLS_SECRET_NAME, namespace: this.systemNamespace },
      stringData: { 'tls.crt': serving.certPem, 'tls.key': serving.keyPem, 'ca.crt': ca.certPem },
    });
  }

  get baseUrl(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async registerConfigurations(caPem: string): Promise<void> {
    const { mutating, validating } = renderWebhookConfigurations({
      client: { mode: 'url', baseUrl: this.baseUrl },
      caBundle: caPem,
      systemNamespace: this.systemNamespace,
      name: this.configName,
      extraNamespaceLabels: { [RUN_LABEL]: this.id },
    });
    await this.mustKubectl(['apply', '-f', '-'], `${stringify(mutating)}---\n${stringify(validating)}`);
  }

  async createNamespace(name: string, labels: Record<string, string>): Promise<void> {
    this.namespaces.push(name);
    await this.core.createNamespace({
      body: { metadata: { name, labels: { [RUN_LABEL]: this.id, ...labels } } },
    });
  }

  /** A namespace opted in to recording (plus extra labels). */
  async recordedNamespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
    const name = `${prefix}-${this.id}`;
    await this.createNamespace(name, { [LABELS.recording]: 'enabled', ...labels });
    return name;
  }

  async createSecret(namespace: string, name: string, data: Record<string, string>): Promise<void> {
    await this.core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: data } });
  }

  async createPolicy(namespace: string, name: string, spec: object, ready = true): Promise<void> {
    const api = {
      group: SESSION_POLICY.group,
      version: SESSION_POLICY.version,
      plural: SESSION_POLICY.plural,
    };
    const created = (await this.custom.createNamespacedCustomObject({
      ...api,
      namespace,
      body: { apiVersion: 'chaperone.dev/v1alpha1', kind: 'SessionPolicy', metadata: { name }, spec },
    })) as { metadata: { generation: number } };
    if (ready) await this.setPolicyReady(namespace, name, created.metadata.generation);
  }

  /** What the operator does once it rendered the ConfigMap (no operator runs in these tests). */
  async setPolicyReady(namespace: string, name: string, generation: number, status = 'True'): Promise<void> {
    await this.mustKubectl([
      'patch',
      'sessionpolicy',
      name,
      '-n',
      namespace,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          observedGeneration: generation,
          configMapName: `chaperone-policy-${name}`,
          conditions: [
            {
              type: 'Ready',
              status,
              reason: status === 'True' ? 'Rendered' : 'RenderFailed',
              message: status === 'True' ? 'sidecar config rendered' : 'Secret missing',
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
              observedGeneration: generation,
            },
          ],
        },
      }),
    ]);
  }

  async createPod(namespace: string, pod: V1Pod): Promise<V1Pod> {
    return this.core.createNamespacedPod({ namespace, body: pod });
  }

  /** The apiserver picks new webhook configurations up asynchronously: wait until ours answers. */
  async waitUntilActive(namespace: string, probe: V1Pod): Promise<void> {
    const deadline = Date.now() + 30_000;
    let last = 'admitted without injection';
    for (;;) {
      try {
        const pod = await this.core.createNamespacedPod({ namespace, body: probe, dryRun: 'All' });
        if (pod.spec?.initContainers?.some((c) => c.name === 'chaperone')) return;
      } catch (error) {
        // Not active yet, or refused by a half-registered configuration.
        last = error instanceof Error ? error.message : String(error);
      }
      if (Date.now() > deadline)
        throw new Error(`webhook configurations did not become active in 30 s: ${last}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async deleteConfigurations(): Promise<void> {
    await this.admission.deleteMutatingWebhookConfiguration({ name: this.configName }).catch(() => {});
    await this.admission.deleteValidatingWebhookConfiguration({ name: this.configName }).catch(() => {});
  }

  async stopWebhook(): Promise<void> {
    await this.webhook?.stop();
    this.webhook = undefined;
    const child = this.process;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    this.process = undefined;
  }

  async cleanup(): Promise<void> {
    await this.deleteConfigurations();
    await this.stopWebhook();
    await Promise.allSettled(this.namespaces.map((name) => this.core.deleteNamespace({ name })));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
