// Which tests may run now. Tests on the real node (test/env/node.ts) run only when the run asks for
// the `node` part. Tests that install Chaperone cluster-wide (webhook configurations, CRDs adopted by
// a helm release) must not share the cluster with the rest of the suite either: a webhook they
// install, roll and kill would answer other tests' admissions. `make test` runs them in a second
// pass of their own.

const wanted = (process.env.CHAPERONE_TEST_ENV_PARTS ?? '').split(',').map((p) => p.trim());

/** false when this run has the real node, else the reason to skip (node:test's `skip` option). */
export function nodePartSkip(): false | string {
  return wanted.includes('node') ? false : 'the real node runs only with CHAPERONE_TEST_ENV_PARTS=...,node';
}

/** false when this file may run now, else the reason it skips (node:test's `skip` option). */
export function clusterExclusiveSkip(): false | string {
  const noNode = nodePartSkip();
  if (noNode) return noNode;
  if (process.env.CHAPERONE_TEST_CLUSTER_EXCLUSIVE !== '1') {
    return "installs Chaperone cluster-wide: runs alone in make test's second pass (CHAPERONE_TEST_CLUSTER_EXCLUSIVE=1)";
  }
  return false;
}
