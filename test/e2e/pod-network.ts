// The network side of the pod runner: a network namespace per pod joined to the host by a veth pair,
// and "Services": addresses on the host end of the veth where a forwarder relays to a server that
// listens on the host's loopback. This stands in for a CNI plugin and kube-proxy, which cannot run
// here; everything inside the pod's namespace (loopback, iptables, routes) is real.
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PodNetwork {
  netns: string;
  hostIp: string;
  podIp: string;
  hostInterface: string;
  /** Makes `ip:port` reachable from the pod and relays it to `target` on the host's loopback. */
  exposeService(service: ServiceAddress): Promise<void>;
  destroy(): Promise<void>;
}

export interface ServiceAddress {
  ip: string;
  port: number;
  target: { host: string; port: number };
  /** Names for /etc/hosts inside the pod. */
  names?: string[];
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

/** Removes leftovers of an earlier run that was killed before it could clean up. */
async function removeStale(netns: string, hostInterface: string): Promise<void> {
  await run('ip', ['netns', 'del', netns]).catch(() => {});
  await run('ip', ['link', 'del', hostInterface]).catch(() => {});
}

/**
 * Creates netns `name` with lo up and a veth to the host. `subnet` picks a /30 out of
 * 10.213.<subnet>.0/24, an address range that exists only on these veths.
 */
export async function createPodNetwork(name: string, subnet: number): Promise<PodNetwork> {
  const netns = name;
  const hostInterface = `chh${subnet}`;
  const podInterface = `chp${subnet}`;
  const hostIp = `10.213.${subnet}.1`;
  const podIp = `10.213.${subnet}.2`;
  await removeStale(netns, hostInterface);
  await ip('netns', 'add', netns);
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const hostsLines = ['127.0.0.1 localhost', '::1 localhost'];
  const etcDir = `/etc/netns/${netns}`;
  try {
    await ip('link', 'add', hostInterface, 'type', 'veth', 'peer', 'name', podInterface);
    await ip('link', 'set', podInterface, 'netns', netns);
    await ip('addr', 'add', `${hostIp}/30`, 'dev', hostInterface);
    await ip('link', 'set', hostInterface, 'up');
    await ip('-n', netns, 'link', 'set', 'lo', 'up');
    await ip('-n', netns, 'addr', 'add', `${podIp}/30`, 'dev', podInterface);
    await ip('-n', netns, 'link', 'set', podInterface, 'up');
    await ip('-n', netns, 'route', 'add', 'default', 'via', hostIp);
    await mkdir(etcDir, { recursive: true });
    await writeFile(`${etcDir}/hosts`, `${hostsLines.join('\n')}\n`);
  } catch (error) {
    await removeStale(netns, hostInterface);
    throw error;
  }

  return {
    netns,
    hostIp,
    podIp,
    hostInterface,
    async exposeService(service) {
      await ip('addr', 'add', `${service.ip}/32`, 'dev', hostInterface).catch((error: Error) => {
        if (!/File exists/.test(String((error as { stderr?: string }).stderr ?? error.message))) throw error;
      });
      // The pod reaches the service address through its default route; the host answers because
      // the address is its own.
      const server = createServer((client) => {
        sockets.add(client);
        const upstream = createConnection(service.target);
        sockets.add(upstream);
        client.pipe(upstream).pipe(client);
        const close = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', close).on('close', close);
        upstream.on('error', close).on('close', close);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(service.port, service.ip, () => resolve());
      });
      servers.push(server);
      if (service.names?.length) {
        hostsLines.push(`${service.ip} ${service.names.join(' ')}`);
        await writeFile(`${etcDir}/hosts`, `${hostsLines.join('\n')}\n`);
      }
    },
    async destroy() {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      await removeStale(netns, hostInterface);
      await rm(etcDir, { recursive: true, force: true });
    },
  };
}
