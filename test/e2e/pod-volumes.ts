// Materializes a pod's volumes as directories, reading ConfigMaps and Secrets through the API and
// minting projected service-account tokens with TokenRequest, as the kubelet does.
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CoreV1Api, V1KeyToPath, V1Pod, V1Volume } from '@kubernetes/client-node';

export interface MaterializedVolumes {
  /** Volume name -> host directory. */
  dirs: Map<string, string>;
  /** What the runner could not honour, said to the user. */
  warnings: string[];
}

function decodeData(data: Record<string, string> | undefined, base64: boolean): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(data ?? {}))
    out.set(k, base64 ? Buffer.from(v, 'base64') : Buffer.from(v));
  return out;
}

async function writeKeys(
  dir: string,
  data: Map<string, Buffer>,
  items: V1KeyToPath[] | undefined,
  mode: number,
): Promise<void> {
  const entries = items?.length
    ? items.map((i) => ({ path: i.path, value: data.get(i.key), mode: i.mode ?? mode, key: i.key }))
    : [...data].map(([key, value]) => ({ path: key, value, mode, key }));
  for (const e of entries) {
    if (!e.value) throw new Error(`key ${e.key} not found`);
    const file = join(dir, e.path);
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, e.value);
    await chmod(file, e.mode);
  }
}

export async function materializeVolumes(
  core: CoreV1Api,
  pod: V1Pod,
  baseDir: string,
): Promise<MaterializedVolumes> {
  const namespace = pod.metadata!.namespace!;
  const dirs = new Map<string, string>();
  const warnings: string[] = [];
  const root = await mkdtemp(join(baseDir, 'volumes-'));
  await chmod(root, 0o755);

  const tokenFor = async (audience: string | undefined, expirationSeconds: number | undefined) => {
    const request = await core.createNamespacedServiceAccountToken({
      name: pod.spec!.serviceAccountName ?? 'default',
      namespace,
      body: {
        spec: {
          audiences: audience ? [audience] : [],
          expirationSeconds: expirationSeconds ?? 3600,
          boundObjectRef: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: pod.metadata!.name!,
            uid: pod.metadata!.uid!,
          },
        },
      },
    });
    const token = request.status?.token;
    if (!token) throw new Error('TokenRequest returned no token');
    return token;
  };

  const materialize = async (volume: V1Volume, dir: string) => {
    if (volume.emptyDir) {
      // Writable by every UID of the pod, as an emptyDir with fsGroup would be.
      await chmod(dir, 0o1777);
    } else if (volume.configMap) {
      const cm = await core.readNamespacedConfigMap({ name: volume.configMap.name!, namespace });
      await writeKeys(
        dir,
        decodeData(cm.data, false),
        volume.configMap.items,
        volume.configMap.defaultMode ?? 0o644,
      );
    } else if (volume.secret) {
      const secret = await core.readNamespacedSecret({ name: volume.secret.secretName!, namespace });
      await writeKeys(
        dir,
        decodeData(secret.data, true),
        volume.secret.items,
        volume.secret.defaultMode ?? 0o644,
      );
    } else if (volume.projected) {
      const mode = volume.projected.defaultMode ?? 0o644;
      for (const source of volume.projected.sources ?? []) {
        if (source.serviceAccountToken) {
          const token = await tokenFor(
            source.serviceAccountToken.audience,
            source.serviceAccountToken.expirationSeconds,
          );
          await writeKeys(
            dir,
            new Map([[source.serviceAccountToken.path, Buffer.from(token)]]),
            undefined,
            mode,
          );
        } else if (source.configMap) {
          const cm = await core.readNamespacedConfigMap({ name: source.configMap.name!, namespace });
          await writeKeys(dir, decodeData(cm.data, false), source.configMap.items, mode);
        } else if (source.secret) {
          const s = await core.readNamespacedSecret({ name: source.secret.name!, namespace });
          await writeKeys(dir, decodeData(s.data, true), source.secret.items, mode);
        } else if (source.downwardAPI) {
          const files = new Map<string, Buffer>();
          for (const item of source.downwardAPI.items ?? []) {
            const value = item.fieldRef ? podField(pod, item.fieldRef.fieldPath) : undefined;
            if (value === undefined) {
              warnings.push(`volume ${volume.name}: downwardAPI ${item.path} not supported`);
            } else files.set(item.path, Buffer.from(value));
          }
          await writeKeys(dir, files, undefined, mode);
        } else {
          warnings.push(
            `volume ${volume.name}: projected source ${Object.keys(source).join(',')} not materialized`,
          );
        }
      }
    } else {
      warnings.push(
        `volume ${volume.name}: kind ${Object.keys(volume)
          .filter((k) => k !== 'name')
          .join(',')} not supported`,
      );
    }
  };

  for (const volume of pod.spec?.volumes ?? []) {
    const dir = join(root, volume.name);
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755);
    try {
      await materialize(volume, dir);
    } catch (error) {
      throw new Error(`volume ${volume.name}: ${(error as Error).message}`);
    }
    dirs.set(volume.name, dir);
  }
  return { dirs, warnings };
}

/** The pod fields a downwardAPI file can name, as the kubelet resolves them. */
function podField(pod: V1Pod, path: string): string | undefined {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return (m[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations)?.[m[2]!];
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName ?? 'default',
  };
  return fields[path];
}
