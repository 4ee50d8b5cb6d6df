// Server-side apply with the operator's field manager: the apiserver merges our fields, takes
// ownership (force) from anyone who edited them, and skips the write when nothing changed.
import { type KubernetesObject, type KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../render/labels.ts';

export async function serverSideApply<T extends KubernetesObject>(
  api: KubernetesObjectApi,
  object: T,
): Promise<T> {
  return api.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}
