// Metadata shared by the objects rendered for a SessionPolicy: name, labels, and the controller
// ownerReference that lets kube-controller-manager's garbage collector delete them with the policy.
import { SESSION_POLICY } from '../../crds/index.ts';
import type { SidecarConfig } from '../../sidecar/config/index.ts';
import { childLabels, childName } from './labels.ts';
import { SESSION_POLICY_API_VERSION, type SessionPolicyObject } from './policy.ts';
import { serializeSidecarConfig } from './sidecar-config.ts';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export interface ChildMetadata {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export function ownerReference(policy: SessionPolicyObject): OwnerReference | undefined {
  if (!policy.metadata.uid) return undefined;
  return {
    apiVersion: SESSION_POLICY_API_VERSION,
    kind: SESSION_POLICY.kind,
    name: policy.metadata.name,
    uid: policy.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function childMetadata(policy: SessionPolicyObject): ChildMetadata {
  const owner = ownerReference(policy);
  return {
    name: childName(policy.metadata.name),
    ...(policy.metadata.namespace !== undefined ? { namespace: policy.metadata.namespace } : {}),
    labels: childLabels(policy.metadata.name),
    ...(owner ? { ownerReferences: [owner] } : {}),
  };
}

export const CONFIG_KEY = 'config.json';

export interface RenderedConfigMap {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: ChildMetadata;
  data: Record<string, string>;
}

export function renderConfigMap(policy: SessionPolicyObject, config: SidecarConfig): RenderedConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMetadata(policy),
    data: { [CONFIG_KEY]: serializeSidecarConfig(config) },
  };
}
