// There is no container runtime here, so no images: each container runs the program its image
// would run, taken from this checkout. Chaperone's own images become `node [SIDECAR_NODE_FLAGS]
// <repo>/sidecar/main.ts` with the image's SIDECAR_IMAGE_ENV, and `node <repo>/webhook/init/main.ts`
// for chaperone-init, with Node 24 and the checkout bind-mounted read-only under /opt/chaperone (the
// container's UID may not be able to reach them where they live, /root is mode 700). Any other
// image runs its command as declared with the host's programs (psql, sh), which is what an agent
// image would carry.
import { dirname, join } from 'node:path';
import type { V1Container } from '@kubernetes/client-node';
import { SIDECAR_IMAGE_ENV, SIDECAR_NODE_FLAGS } from '../../sidecar/index.ts';
import type { BindMount } from './pod-exec.ts';
import type { ContainerProgram, ProgramResolver } from './pod-runner.ts';

const REPO = join(import.meta.dirname, '..', '..');
const MOUNTED_NODE_DIR = '/opt/chaperone/node';
const MOUNTED_REPO = '/opt/chaperone/repo';

export interface ChaperoneImages {
  sidecarImage: string;
  initImage?: string;
}

/** Image name without tag or digest. */
export function imageName(image: string | undefined): string {
  return (image ?? '').replace(/@.*$/, '').replace(/:[^/:]*$/, '');
}

export function chaperonePrograms(images: ChaperoneImages): ProgramResolver {
  const nodeDir = dirname(process.execPath);
  const mounts: BindMount[] = [
    { source: nodeDir, target: MOUNTED_NODE_DIR, readOnly: true },
    { source: REPO, target: MOUNTED_REPO, readOnly: true },
  ];
  const node = (script: string, args: string[]): ContainerProgram => ({
    command: `${MOUNTED_NODE_DIR}/${'node'}`,
    args: [`${MOUNTED_REPO}/${script}`, ...args],
    mounts,
  });
  const sidecar = imageName(images.sidecarImage);
  const init = imageName(images.initImage ?? images.sidecarImage);
  return (container: V1Container) => {
    const declared = [...(container.command ?? []), ...(container.args ?? [])];
    const image = imageName(container.image);
    if (container.command?.[0] === 'chaperone-init' && image === init) {
      return node('webhook/init/main.ts', container.command.slice(1).concat(container.args ?? []));
    }
    if (image === sidecar && !container.command) {
      const program = node('sidecar/main.ts', container.args ?? []);
      return { ...program, args: [...SIDECAR_NODE_FLAGS, ...program.args], env: { ...SIDECAR_IMAGE_ENV } };
    }
    if (declared.length === 0) {
      throw new Error(`${container.name}: image ${container.image} has no known entrypoint; set command`);
    }
    return { command: declared[0]!, args: declared.slice(1) };
  };
}
