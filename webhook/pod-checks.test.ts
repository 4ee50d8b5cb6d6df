import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { hardenAgentContainer, type PodCheckOptions, podViolations } from './pod-checks.ts';

const options: PodCheckOptions = {
  sidecarUid: 15999,
  sidecarGid: 15999,
  requireAgentRunAsUser: true,
  protectedSecrets: ['db-creds'],
  policyName: 'p',
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
    assert.ok(found.some((f) => f.includes('capability NET_ADMIN added')));
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
    assert.equal(podViolations(unknownUser, options).length, 1);
    assert.deepEqual(podViolations(unknownUser, { ...options, requireAgentRunAsUser: false }), []);
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
    assert.deepEqual(found, [
      'container "chaperone": the name is reserved for chaperone',
      'ephemeralContainer "dbg": capability ALL added (could undo capture or take the sidecar\'s identity)',
    ]);
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
