// Plays kubelet for one pod that the webhook injected: its network namespace, its init containers
// (the iptables rules of chaperone-init really applied), its native sidecar (started and probed),
// then its containers, with exactly the env, args and volumes the pod spec declares. What it
// cannot honour it reports in `warnings`. There is no container runtime: container-programs.ts maps
// each container to the program of this checkout that its image would run.
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { CoreV1Api, V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';
import { type BindMount, ensureMountRoots, spawnInPod } from './pod-exec.ts';
import type { PodNetwork } from './pod-network.ts';
import { materializeVolumes } from './pod-volumes.ts';

const run = promisify(execFile);

export interface ContainerProgram {
  command: string;
  args: string[];
  /** Extra mounts standing in for the image's filesystem (e.g. the program and its runtime). */
  mounts?: BindMount[];
  /** The image's ENV; the container's own env wins over it, as with a container runtime. */
  env?: Record<string, string>;
}

export type ProgramResolver = (container: V1Container) => ContainerProgram;

export interface ContainerResult {
  name: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export interface PodRun {
  pod: V1Pod;
  warnings: string[];
  initContainers: ContainerResult[];
  containers: ContainerResult[];
  /** Logs of the native sidecars, complete once the run has stopped them. */
  sidecars: ContainerResult[];
}

export interface RunPodOptions {
  core: CoreV1Api;
  pod: V1Pod;
  network: PodNetwork;
  resolve: ProgramResolver;
  workDir: string;
  nodeName: string;
  log: (line: string) => void;
  containerTimeoutMs?: number;
  sidecarStopTimeoutMs?: number;
  /** Service env the kubelet adds to every container (KUBERNETES_SERVICE_HOST/PORT). */
  serviceEnv?: Record<string, string>;
}

interface Running {
  name: string;
  child: ChildProcess;
  result: ContainerResult;
  exited: Promise<ContainerResult>;
}

function start(name: string, child: ChildProcess): Running {
  const result: ContainerResult = { name, exitCode: null, stdout: '', stderr: '' };
  child.stdout?.on('data', (d: Buffer) => {
    result.stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    result.stderr += d.toString();
  });
  child.stdin?.end();
  const exited = new Promise<ContainerResult>((resolve) => {
    child.on('close', (code, signal) => {
      result.exitCode = code ?? (signal ? 128 : null);
      resolve(result);
    });
  });
  return { name, child, result, exited };
}

function resolveEnv(
  container: V1Container,
  pod: V1Pod,
  podIp: string,
  warnings: string[],
): Record<string, string> {
  const env: Record<string, string> = {};
  const field = (path: string): string | undefined => {
    // metadata.annotations['k'] / labels['k'], as the kubelet resolves them (an absent key is "").
    const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
    if (m) return (m[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations)?.[m[2]!] ?? '';
    switch (path) {
      case 'metadata.name':
        return pod.metadata?.name;
      case 'metadata.namespace':
        return pod.metadata?.namespace;
      case 'metadata.uid':
        return pod.metadata?.uid;
      case 'spec.nodeName':
        return pod.spec?.nodeName;
      case 'spec.serviceAccountName':
        return pod.spec?.serviceAccountName ?? 'default';
      case 'status.podIP':
        return podIp;
      default:
        return undefined;
    }
  };
  for (const e of container.env ?? ([] as V1EnvVar[])) {
    if (e.value !== undefined)
      env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => env[n] ?? m);
    else if (e.valueFrom?.fieldRef) {
      const v = field(e.valueFrom.fieldRef.fieldPath);
      if (v === undefined)
        warnings.push(
          `${container.name}: env ${e.name}: fieldRef ${e.valueFrom.fieldRef.fieldPath} not supported`,
        );
      else env[e.name] = v;
    } else if (e.valueFrom) {
      warnings.push(`${container.name}: env ${e.name}: ${Object.keys(e.valueFrom).join(',')} not supported`);
    } else env[e.name] = '';
  }
  if ((container.envFrom ?? []).length > 0) warnings.push(`${container.name}: envFrom not supported`);
  return env;
}

function identityOf(container: V1Container, pod: V1Pod, warnings: string[]): { uid: number; gid: number } {
  const uid = container.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser;
  const gid = container.securityContext?.runAsGroup ?? pod.spec?.securityContext?.runAsGroup;
  if (uid === undefined)
    warnings.push(`${container.name}: no runAsUser; the image's user is unknown here, running as root`);
  return { uid: uid ?? 0, gid: gid ?? uid ?? 0 };
}

async function probe(netns: string, container: V1Container, timeoutMs: number): Promise<void> {
  const probeSpec = container.startupProbe ?? container.readinessProbe;
  const http = probeSpec?.httpGet;
  if (!http) return;
  const url = `http://127.0.0.1:${http.port}${http.path ?? '/'}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await run('ip', ['netns', 'exec', netns, 'curl', '-sf', '-o', '/dev/null', '--max-time', '2', url]);
      return;
    } catch {
      if (Date.now() > deadline)
        throw new Error(`${container.name}: startup probe ${url} did not pass in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function runPod(options: RunPodOptions): Promise<PodRun> {
  const { pod, network, log } = options;
  const warnings: string[] = [];
  const volumes = await materializeVolumes(options.core, pod, options.workDir);
  warnings.push(...volumes.warnings);
  await ensureMountRoots();

  const spawnContainer = (container: V1Container): Running => {
    const program = options.resolve(container);
    const { uid, gid } = identityOf(container, pod, warnings);
    const mounts: BindMount[] = [...(program.mounts ?? [])];
    for (const m of container.volumeMounts ?? []) {
      const dir = volumes.dirs.get(m.name);
      if (!dir) throw new Error(`${container.name}: volumeMount ${m.name} names no volume`);
      mounts.push({
        source: m.subPath ? `${dir}/${m.subPath}` : dir,
        target: m.mountPath,
        readOnly: m.readOnly ?? false,
      });
    }
    // Container runtimes set HOME (to / for a UID without a passwd entry); programs such as the AWS
    // SDK fail without it.
    const env = {
      HOME: '/',
      ...program.env,
      ...options.serviceEnv,
      ...resolveEnv(container, pod, network.podIp, warnings),
    };
    return start(
      container.name,
      spawnInPod({
        netns: network.netns,
        uid,
        gid,
        env,
        mounts,
        command: program.command,
        args: program.args,
      }),
    );
  };

  const result: PodRun = { pod, warnings, initContainers: [], containers: [], sidecars: [] };
  const sidecars: Running[] = [];
  try {
    for (const container of pod.spec?.initContainers ?? []) {
      const running = spawnContainer(container);
      if (container.restartPolicy === 'Always') {
        log(`started native sidecar ${container.name}; waiting for its startup probe`);
        sidecars.push(running);
        const failed = running.exited.then((r) => {
          throw new Error(
            `${container.name} exited (${r.exitCode}) before it was ready:\n${r.stderr.slice(-2000)}`,
          );
        });
        await Promise.race([probe(network.netns, container, 60_000), failed]);
        failed.catch(() => {});
        log(`${container.name} is ready`);
      } else {
        const done = await running.exited;
        result.initContainers.push(done);
        if (done.exitCode !== 0) {
          throw new Error(
            `init container ${container.name} failed (${done.exitCode}):\n${done.stderr.slice(-2000)}`,
          );
        }
        log(`init container ${container.name} completed`);
      }
    }
    const mains = (pod.spec?.containers ?? []).map((c) => spawnContainer(c));
    const timeout = options.containerTimeoutMs ?? 120_000;
    for (const main of mains) {
      const timer = setTimeout(() => main.child.kill('SIGKILL'), timeout);
      result.containers.push(await main.exited);
      clearTimeout(timer);
    }
  } finally {
    // Like the kubelet for a finished Job pod: sidecars get SIGTERM once the main containers end.
    for (const s of sidecars.reverse()) {
      s.child.kill('SIGTERM');
      const timer = setTimeout(() => s.child.kill('SIGKILL'), options.sidecarStopTimeoutMs ?? 30_000);
      result.sidecars.push(await s.exited);
      clearTimeout(timer);
    }
  }
  return result;
}
