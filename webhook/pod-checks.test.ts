import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { closedProbePorts, hardenAgentContainer, type PodCheckOptions, podViolations } from './pod-checks.ts';

const options: PodCheckOptions = {
  sidecarUid: 15999,
  sidecarGid: 15999,
  requireAgentRunAsUser: true,
  protectedSecrets: ['db-creds'],
  sidecarHosts: ['orders-db.data.svc', 'amazonaws.com'],
};

function pod(container: Partial<V1Container> = {}, spec: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    spec: {
      securityContext: { runAsUser: 1000 },
      containers: [{ name: 'agent', image: 'x', ...container }],
      ...spec,
    },
  };
}

describe('podViolations', () => {
  it('accepts an ordinary agent', () => {
    assert.deepEqual(podViolations(pod(), options), []);
  });

  it('reports every finding at once, naming the container', () => {
    const found = podViolations(
      pod(
        {
          securityContext: {
            privileged: true,
            runAsUser: 15999,
            capabilities: { add: ['net_admin', 'SYS_ADMIN'] },
          },
        },
        { hostNetwork: true, hostPID: true },
      ),
      options,
    );
    assert.equal(found.length, 6, found.join('\n'));
    assert.ok(found.some((f) => f.startsWith('[capability] container "agent": capability NET_ADMIN added')));
    assert.ok(found.some((f) => f.includes('capability SYS_ADMIN added')));
  });

  it('takes the pod-level UID/GID when the container sets none', () => {
    const found = podViolations(
      pod({}, { securityContext: { runAsUser: 15999, runAsGroup: 15999 } }),
      options,
    );
    assert.equal(found.length, 2);
  });

  it('lets the container UID override a pod-level sidecar UID', () => {
    const found = podViolations(
      pod({ securityContext: { runAsUser: 1000 } }, { securityContext: { runAsUser: 15999 } }),
      options,
    );
    assert.deepEqual(found, []);
  });

  it('requires a known UID unless configured to trust images', () => {
    const unknownUser = pod({}, { securityContext: {} });
    assert.match(podViolations(unknownUser, options).join(), /^\[unknown-user\]/);
    // Trusting images still needs runAsNonRoot, so the kubelet refuses a root image.
    const trusting = { ...options, requireAgentRunAsUser: false };
    assert.match(podViolations(unknownUser, trusting).join(), /^\[root-user\] .*runAsNonRoot/);
    assert.deepEqual(podViolations(pod({}, { securityContext: { runAsNonRoot: true } }), trusting), []);
  });

  it('refuses agents reading the sidecar-only Secrets through env, envFrom or volumes', () => {
    const found = podViolations(
      pod(
        {
          env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'db-creds', key: 'password' } } }],
          envFrom: [{ secretRef: { name: 'db-creds' } }],
        },
        {
          volumes: [
            { name: 'a', secret: { secretName: 'db-creds' } },
            { name: 'b', projected: { sources: [{ secret: { name: 'db-creds' } }] } },
            { name: 'c', secret: { secretName: 'other' } },
          ],
        },
      ),
      options,
    );
    assert.equal(found.length, 4, found.join('\n'));
  });

  it('reserves chaperone container names and checks ephemeral containers', () => {
    const found = podViolations(
      pod(
        { name: 'chaperone' },
        { ephemeralContainers: [{ name: 'dbg', securityContext: { capabilities: { add: ['ALL'] } } }] },
      ),
      options,
    );
    assert.equal(found.length, 2, found.join('\n'));
    assert.match(found[0]!, /^\[reserved-name\] container "chaperone": the name is reserved/);
    assert.match(found[1]!, /^\[capability\] ephemeralContainer "dbg": capability ALL added/);
  });

  it('normalises capability names and allows only the harmless ones', () => {
    const adds = ['cap_sys_ptrace', ' Sys_Module', 'CAP_DAC_READ_SEARCH', 'dac_override', 'BPF', 'WHATEVER'];
    const found = podViolations(pod({ securityContext: { capabilities: { add: adds } } }), options);
    assert.deepEqual(
      found.map((f) => /capability (\S+) added/.exec(f)?.[1]),
      ['SYS_PTRACE', 'SYS_MODULE', 'DAC_READ_SEARCH', 'DAC_OVERRIDE', 'BPF', 'WHATEVER'],
    );
    const harmless = pod({ securityContext: { capabilities: { add: ['cap_net_bind_service', 'CHOWN'] } } });
    assert.deepEqual(podViolations(harmless, options), []);
  });

  it('refuses pod-level escapes: hostPath, host namespaces, shared process namespace, root, fsGroup', () => {
    const found = podViolations(
      pod(
        { securityContext: { runAsUser: 0 } },
        {
          hostIPC: true,
          shareProcessNamespace: true,
          securityContext: { runAsUser: 1000, fsGroup: 15999, supplementalGroups: [15999] },
          volumes: [{ name: 'kubelet', hostPath: { path: '/var/lib/kubelet/pods' } }],
        },
      ),
      options,
    );
    const rules = found.map((f) => /^\[([a-z-]+)\]/.exec(f)?.[1]).sort();
    assert.deepEqual(
      rules,
      ['host-namespace', 'host-namespace', 'host-path', 'root-user', 'sidecar-identity', 'sidecar-identity'],
      found.join('\n'),
    );
  });

  it('refuses Windows host-process containers and unmasked /proc', () => {
    const found = podViolations(
      pod(
        { securityContext: { procMount: 'Unmasked' } },
        { securityContext: { runAsUser: 1000, windowsOptions: { hostProcess: true } } },
      ),
      options,
    );
    assert.deepEqual(
      found.map((f) => f.replace(/ \(.*$/, '')),
      [
        '[host-namespace] container "agent": windowsOptions.hostProcess: true',
        '[host-namespace] container "agent": procMount Unmasked',
      ],
    );
  });

  it('refuses mounts of chaperone volumes, and debug containers targeting chaperone', () => {
    const found = podViolations(
      pod(
        {
          volumeMounts: [
            { name: 'chaperone-signing-key', mountPath: '/k' },
            { name: 'chaperone-token', mountPath: '/t' },
          ],
        },
        {
          ephemeralContainers: [
            { name: 'dbg', targetContainerName: 'chaperone', securityContext: { runAsUser: 1000 } },
          ],
        },
      ),
      options,
    );
    assert.equal(found.length, 2, found.join('\n'));
    assert.match(found[0]!, /^\[chaperone-volume\] container "agent": mounts volume chaperone-signing-key/);
    assert.match(found[1]!, /^\[chaperone-process\] ephemeralContainer "dbg": targetContainerName chaperone/);
  });

  it('refuses name overrides of hosts the sidecar connects to', () => {
    const found = podViolations(
      pod(
        {},
        {
          hostAliases: [
            { ip: '10.1.1.1', hostnames: ['ORDERS-DB.data.svc.', 'unrelated.example'] },
            { ip: '10.1.1.2', hostnames: ['recordings.s3.eu-west-1.amazonaws.com'] },
          ],
          dnsPolicy: 'None',
          dnsConfig: {
            nameservers: ['10.1.1.53'],
            searches: ['evil.example'],
            options: [{ name: 'ndots', value: '1' }],
          },
        },
      ),
      options,
    );
    assert.equal(found.length, 5, found.join('\n'));
    assert.ok(found.every((f) => f.startsWith('[name-resolution] ')));
  });

  it('bystander scope: only what protects the injected pods around it', () => {
    const bystander = { ...options, scope: 'bystander' as const };
    const loose = pod(
      { securityContext: { runAsUser: 15999, allowPrivilegeEscalation: true } },
      { securityContext: {}, hostAliases: [{ ip: '1.1.1.1', hostnames: ['orders-db.data.svc'] }] },
    );
    assert.deepEqual(podViolations(loose, bystander), []);
    const reaching = pod(
      { env: [{ name: 'K', valueFrom: { secretKeyRef: { name: 'db-creds', key: 'k' } } }] },
      { hostPID: true, volumes: [{ name: 'node', hostPath: { path: '/' } }] },
    );
    assert.equal(podViolations(reaching, bystander).length, 3);
  });
});

describe('closedProbePorts', () => {
  it('names probes on ports the rules keep closed, resolving named ports', () => {
    const p = pod({
      ports: [{ name: 'http', containerPort: 8080 }],
      livenessProbe: { httpGet: { port: 'http', path: '/' } },
      readinessProbe: { tcpSocket: { port: 9090 } },
      startupProbe: { exec: { command: ['true'] } },
    });
    assert.deepEqual(closedProbePorts(p, [15090, 9090]), ['container "agent": livenessProbe on port 8080']);
    assert.deepEqual(closedProbePorts(p, [8080, 9090]), []);
  });
});

describe('hardenAgentContainer', () => {
  it('adds no_new_privs and drops the capabilities that change identity or netfilter, once', () => {
    const c: V1Container = { name: 'a', securityContext: { capabilities: { drop: ['NET_RAW'] } } };
    hardenAgentContainer(c);
    hardenAgentContainer(c);
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['NET_RAW', 'NET_ADMIN', 'SETUID', 'SETGID']);
  });

  it('leaves a container that drops ALL as it is', () => {
    const c: V1Container = { name: 'a', securityContext: { capabilities: { drop: ['ALL'] } } };
    hardenAgentContainer(c);
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
  });
});
