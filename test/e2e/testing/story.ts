// What the agent story on the real node needs outside the cluster, set up the same way by `make demo`
// (test/e2e/demo-story.ts), the chart's tests (test/chart/) and the injected test (test/node/): the
// orders database, PostgreSQL and MinIO relayed on the node's address, the recording signing key,
// and from them the agents' namespace objects and the chart's values.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey } from '../../../recording/index.ts';
import type { KubeInfo, MinioInfo, NodeInfo, PostgresInfo } from '../../env/types.ts';
import {
  agentNamespaceObjects,
  controllerUser,
  createOrdersDatabase,
  dropOrdersDatabase,
  exposeOnNode,
  type NodeExposed,
  nodeValues,
  type OrdersDatabase,
} from './cluster.ts';

export interface StoryEnv {
  kube: KubeInfo;
  node: NodeInfo;
  minio: MinioInfo;
  postgres: PostgresInfo;
}

export interface StoryServers {
  db: OrdersDatabase;
  /** PostgreSQL and MinIO as pods reach them: ports on the node's address. */
  pg: NodeExposed;
  s3: NodeExposed;
  /** The recording signing key; its public half is in `publicKeyFile` for `chaperone verify`. */
  signingKeyPem: string;
  publicKeyFile: string;
  /** ServiceAccount, Secrets and SessionPolicy of the agents' namespace (agentNamespaceObjects). */
  namespaceObjects(o: { namespace: string; bucket: string; prefix: string }): Record<string, unknown>[];
  /** The chart's values for this cluster, storage through the MinIO relay (nodeValues). */
  chartValues(): Promise<Record<string, unknown>>;
  /** Closes the relays and drops the database; `onError` hears what failed (default: nothing). */
  close(onError?: (what: string, error: Error) => void): Promise<void>;
}

/** Relays PostgreSQL and MinIO on the node's address, creates the orders database, makes a key. */
export async function startStoryServers(env: StoryEnv, id: string, workDir: string): Promise<StoryServers> {
  const exposed: NodeExposed[] = [];
  let db: OrdersDatabase | undefined;
  const close = async (onError: (what: string, error: Error) => void = () => {}) => {
    for (const e of exposed) await e.close().catch((error: Error) => onError('relay', error));
    if (db) await dropOrdersDatabase(env.postgres, db).catch((error: Error) => onError('database', error));
  };
  try {
    const pg = await exposeOnNode(env.node, env.postgres.port);
    exposed.push(pg);
    const s3 = await exposeOnNode(env.node, Number(new URL(env.minio.endpoint).port));
    exposed.push(s3);
    db = await createOrdersDatabase(env.postgres, id);
    const orders = db;
    const signing = generateSigningKey();
    const publicKeyFile = join(workDir, 'recording-signing.pub');
    await writeFile(publicKeyFile, signing.publicKeyPem);
    return {
      db: orders,
      pg,
      s3,
      signingKeyPem: signing.privateKeyPem,
      publicKeyFile,
      namespaceObjects: (o) =>
        agentNamespaceObjects({
          ...o,
          kube: env.kube,
          node: env.node,
          minio: env.minio,
          db: orders,
          pgPort: pg.port,
          s3Port: s3.port,
          signingKeyPem: signing.privateKeyPem,
        }),
      chartValues: async () =>
        nodeValues({
          kube: env.kube,
          node: env.node,
          storagePort: s3.port,
          controllerUser: await controllerUser(env.kube),
        }),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A directory for this run's files under `base`; earlier runs' are removed, the last one is kept to read. */
export async function freshWorkDir(base: string): Promise<string> {
  await rm(base, { recursive: true, force: true });
  await mkdir(base, { recursive: true });
  return mkdtemp(join(base, 'run-'));
}
