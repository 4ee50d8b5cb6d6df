// kubectl exec -it and kubectl port-forward through the Kubernetes target into a pod on the real
// node (test/env/node.ts): the streams kubectl 1.34 opens (WebSocket) relayed by the sidecar, the exec
// recorded as a terminal session (played back with the asciicast exporter), the port-forward
// recorded with its bytes. Runs only when the `node` part is asked for.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { KubeConfig, PortForward } from '@kubernetes/client-node';
import { run } from '../../cli/program.ts';
import type { RecordedEvent } from '../../recording/index.ts';
import { type KubeInfo, type NodeInfo, testEnv } from '../../test/env/index.ts';
import { NODE_TOLERATION } from '../../test/env/node.ts';
import { httpdPod } from '../../test/node/testing/pods.ts';
import { nodePartSkip } from '../../test/testing/exclusive.ts';
import { until } from '../../test/testing/until.ts';
import type { HttpHarness } from '../http/testing/harness.ts';
import { runProcess } from '../testing/harness.ts';
import { type KubeTarget, startKubeTarget } from './testing/target.ts';

const skip = nodePartSkip();

/** The 101's negotiated subprotocol is the plain channel protocol (v4/v5.channel.k8s.io). */
const channelProtocol = (headers: unknown) =>
  /^v[45]\.channel\.k8s\.io$/.test(
    String((headers as Record<string, unknown>)['sec-websocket-protocol'] ?? ''),
  );

describe('kubectl exec -it and port-forward through the Kubernetes target, on the real node', {
  skip,
}, () => {
  let kube: KubeInfo;
  let node: NodeInfo;
  let target: KubeTarget | undefined;
  let h: HttpHarness;
  let dir: string;
  let kubeconfig: string;
  const ns = `kube-streams-${randomBytes(3).toString('hex')}`;
  const pod = 'shell';

  const admin = (args: string[]) =>
    runProcess(kube.kubectl, [`--kubeconfig=${kube.kubeconfigPath}`, ...args], { timeoutMs: 120_000 });

  before(async () => {
    ({ kube, node } = await testEnv(['kube', 'node']));
    // Pods are admitted once kube-controller-manager has made the namespace's default ServiceAccount.
    target = await startKubeTarget(kube, ns, { forPods: true });
    ({ dir, kubeconfig } = target);
    const core = target.core;
    h = await target.startSidecar({
      guardrails: [
        {
          name: 'no-exec-here',
          match: { kubernetes: { verbs: ['create'], subresources: ['exec'], names: ['guarded'] } },
          action: 'block',
          message: 'no shells in this pod',
        },
      ],
    });
    // A pod on the node: a shell to exec into, and busybox httpd on 8080 to forward to.
    await core.createNamespacedPod({
      namespace: ns,
      body: httpdPod({
        name: pod,
        image: node.testImage,
        page: 'chaperone-port-forward',
        container: 'main',
        declarePort: true,
        terminationGracePeriodSeconds: 0,
      }),
    });
    // The pod the guardrail protects: kubectl reads it before it asks for the exec.
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'guarded' },
        spec: {
          tolerations: [NODE_TOLERATION],
          terminationGracePeriodSeconds: 0,
          containers: [{ name: 'main', image: node.testImage, command: ['sleep', '3600'] }],
        },
      },
    });
    const ready = await admin(['wait', '-n', ns, `pod/${pod}`, '--for=condition=Ready', '--timeout=180s']);
    if (ready.code !== 0) {
      const described = await admin(['describe', '-n', ns, `pod/${pod}`]);
      assert.fail(`pod ${pod} not ready: ${ready.stderr}\n${described.stdout}`);
    }
  });

  after(() => target?.close());

  const agentEnv = () => ({ PATH: process.env.PATH, HOME: dir, KUBECONFIG: kubeconfig, TERM: 'xterm' });

  async function recorded(match: (evs: RecordedEvent[]) => boolean): Promise<RecordedEvent[]> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      for (const id of await h.sessionIds()) {
        const evs = await h.events(id).catch(() => [] as RecordedEvent[]);
        if (match(evs)) return evs;
      }
      if (Date.now() > deadline) throw new Error('not recorded in time');
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  test('kubectl exec -it: a terminal session recorded (input, output, resize, exit status) and replayable', async () => {
    // kubectl -t needs a terminal on its stdin: script(1) gives it a pty.
    const child = spawn(
      'script', // A known size for the pty, which kubectl sends as the first resize.
      ['-qec', `stty cols 101 rows 31 && ${kube.kubectl} exec -it -n ${ns} ${pod} -- sh`, '/dev/null'],
      {
        env: agentEnv(),
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    // Typed once the remote shell has answered: the marker's digits appear only in its output.
    child.stdin.write('echo chaperone-$((6*7))\r');
    for (const deadline = Date.now() + 45_000; !out.includes('chaperone-42'); ) {
      if (Date.now() > deadline || child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.stdin.write('exit 3\r');
    const code = await exited;
    clearTimeout(timer);
    child.stdin.destroy();
    if (!/chaperone-42/.test(out)) {
      // What the sidecar answered each request of this exec (a refused WebSocket makes kubectl fall
      // back to SPDY, refused too).
      const all = (
        await Promise.all((await h.sessionIds()).map((id) => h.events(id).catch(() => [])))
      ).flat();
      const seen = all.filter((e) => e.kind.startsWith('http.') || e.kind.startsWith('policy.'));
      assert.fail(
        `kubectl exec -it: ${out}\nrecorded: ${JSON.stringify(seen.map((e) => [e.kind, e.payload]))}`,
      );
    }
    assert.equal(code, 3, out);

    const events = await recorded((evs) => evs.some((e) => e.kind === 'terminal.exit'));
    const open = events.find((e) => e.kind === 'terminal.open')!;
    assert.equal(open.payload.mode, 'exec');
    assert.equal(open.payload.command, 'sh');
    assert.ok(open.payload.pty, 'the exec asked for a tty');
    const request = events.find(
      (e) =>
        e.kind === 'http.request' &&
        (e.payload.kubernetes as { subresource?: string })?.subresource === 'exec',
    )!;
    assert.deepEqual(
      {
        verb: (request.payload.kubernetes as Record<string, string>).verb,
        name: (request.payload.kubernetes as Record<string, string>).name,
      },
      // A WebSocket exec is a GET: RequestInfo's verb (guardrails match it as create too).
      { verb: 'get', name: pod },
    );
    const text = (kind: string) =>
      events
        .filter((e) => e.kind === kind)
        .map((e) => Buffer.from(String(e.payload.data), 'base64').toString())
        .join('');
    assert.match(text('terminal.input'), /echo chaperone-\$\(\(6\*7\)\)/);
    assert.match(text('terminal.output'), /chaperone-42/);
    const resize = events.find((e) => e.kind === 'terminal.resize');
    assert.deepEqual(
      resize && { cols: resize.payload.cols, rows: resize.payload.rows },
      { cols: 101, rows: 31 },
      'the terminal size was recorded',
    );
    assert.equal(events.find((e) => e.kind === 'terminal.exit')!.payload.code, 3);

    // Replayable: the asciicast export (what `chaperone sessions play` plays) holds the output.
    const sessionId = String(events[0]!.payload.sessionId);
    const cast = join(dir, 'exec.cast');
    const io = { out: () => {}, err: () => {} };
    assert.equal(
      await run(
        ['--store', h.storeUrl, 'sessions', 'export', sessionId, '--format', 'asciicast', '-o', cast],
        io,
      ),
      0,
    );
    const lines = (await readFile(cast, 'utf8')).trim().split('\n');
    const header = JSON.parse(lines[0]!) as { version: number; width: number };
    assert.equal(header.version, 2);
    const frames = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    assert.match(
      frames
        .filter((f) => f[1] === 'o')
        .map((f) => f[2])
        .join(''),
      /chaperone-42/,
    );
  });

  test('a guardrail on create pods/exec stops kubectl exec (a WebSocket GET); kubectl prints the rule', async () => {
    const r = await runProcess(kube.kubectl, ['exec', '-n', ns, 'guarded', '--', 'true'], {
      env: agentEnv(),
      timeoutMs: 60_000,
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /blocked by rule no-exec-here: no shells in this pod/, r.stderr);
    const events = await recorded((evs) =>
      evs.some((e) => e.kind === 'policy.blocked' && e.payload.rule === 'no-exec-here'),
    );
    assert.equal(
      events.filter((e) => e.kind === 'policy.blocked' && e.payload.rule === 'no-exec-here').length,
      1,
      'one decision, not one per protocol kubectl tries',
    );
  });

  test('kubectl port-forward: relayed, recorded with the bytes each way', async () => {
    const child = spawn(kube.kubectl, ['port-forward', '-n', ns, `pod/${pod}`, ':8080'], {
      env: agentEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const closed = new Promise((r) => child.once('close', r));
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      let port: number | undefined;
      for (const deadline = Date.now() + 30_000; port === undefined; ) {
        const m = /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(out);
        if (m) port = Number(m[1]);
        else if (Date.now() > deadline || child.exitCode !== null)
          assert.fail(`kubectl port-forward: ${out}`);
        else await new Promise((r) => setTimeout(r, 50));
      }
      const body = await (
        await fetch(`http://127.0.0.1:${port}/index.html`, { signal: AbortSignal.timeout(30_000) })
      ).text();
      assert.equal(body, 'chaperone-port-forward\n');
    } finally {
      child.kill('SIGINT');
      await closed;
    }
    // The WebSocket (SPDY inside) closed with kubectl: the stream was recorded with its port and bytes.
    const events = await recorded((evs) =>
      evs.some((e) => e.kind === 'http.portforward' && e.payload.streamType === 'data'),
    );
    const request = events.find(
      (e) =>
        e.kind === 'http.request' &&
        (e.payload.kubernetes as { subresource?: string })?.subresource === 'portforward',
    )!;
    assert.equal((request.payload.kubernetes as Record<string, string>).name, pod);
    const stream = events.find((e) => e.kind === 'http.portforward' && e.payload.streamType === 'data')!;
    assert.equal(stream.payload.port, 8080);
    // The GET went to the pod; the answer (headers and the 23-byte page) came back.
    assert.ok(
      Number(stream.payload.bytesToPod) >= 'GET /index.html HTTP/1.1\r\n'.length,
      JSON.stringify(stream),
    );
    assert.ok(
      Number(stream.payload.bytesFromPod) > 'chaperone-port-forward\n'.length,
      JSON.stringify(stream),
    );
  });
  test('port-forward over the plain channel protocol (@kubernetes/client-node): recorded per port', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const input = new PassThrough();
    const output = new PassThrough();
    let got = '';
    output.on('data', (d: Buffer) => {
      got += d.toString();
    });
    const before = (await h.sessionIds()).length;
    // A WebSocket (retryCount 0): closed here once the page is through, as an agent would.
    const ws = (await new PortForward(kc).portForward(ns, pod, [8080], output, null, input)) as {
      close(): void;
    };
    try {
      input.write('GET /index.html HTTP/1.0\r\n\r\n');
      await until('the page through the forwarded port', () => got.includes('chaperone-port-forward'), {
        timeoutMs: 30_000,
      });
    } finally {
      ws.close();
    }
    // The sidecar saw the channel protocol (not kubectl's SPDY tunnel) and recorded the port's streams.
    const events = await recorded(
      (evs) =>
        evs.some(
          (e) => e.kind === 'http.response' && e.payload.status === 101 && channelProtocol(e.payload.headers),
        ) && evs.some((e) => e.kind === 'http.portforward' && e.payload.streamType === 'data'),
    );
    assert.ok((await h.sessionIds()).length >= before);
    const data = events.find((e) => e.kind === 'http.portforward' && e.payload.streamType === 'data')!;
    assert.equal(data.payload.port, 8080);
    assert.equal(data.payload.streamId, 0);
    assert.equal(data.payload.bytesToPod, 'GET /index.html HTTP/1.0\r\n\r\n'.length, JSON.stringify(data));
    assert.ok(Number(data.payload.bytesFromPod) > 'chaperone-port-forward\n'.length, JSON.stringify(data));
    const error = events.find((e) => e.kind === 'http.portforward' && e.payload.streamType === 'error');
    assert.equal(error?.payload.port, 8080, 'the error channel is named with its port too');
  });
});
