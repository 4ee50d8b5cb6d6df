// The floor of any Node.js TCP proxy on this machine: a relay that only copies bytes both ways,
// with the same socket settings as the sidecar (no Nagle, upstream reads into a reused buffer).
// The postgres bench runs it as a baseline: the distance from it to direct is what Node's event
// loop and two extra loopback hops cost before the sidecar does any work of its own.
//
//   node bench/node-relay.ts <listenPort> <upstreamHost> <upstreamPort>
import { connect, createServer } from 'node:net';

const [listenPort, upstreamHost, upstreamPort] = process.argv.slice(2);
if (!listenPort || !upstreamHost || !upstreamPort) {
  process.stderr.write('usage: node bench/node-relay.ts <listenPort> <upstreamHost> <upstreamPort>\n');
  process.exit(2);
}

const server = createServer({ noDelay: true }, (client) => {
  const readBuffer = Buffer.allocUnsafe(64 * 1024);
  const upstream = connect({
    host: upstreamHost,
    port: Number(upstreamPort),
    noDelay: true,
    onread: {
      buffer: readBuffer,
      // The buffer is reused by the next read: hand the socket a copy.
      callback: (n: number, buf: Uint8Array) => {
        client.write(Buffer.from(buf.subarray(0, n)));
        return true;
      },
    },
  });
  client.on('data', (chunk: Buffer) => upstream.write(chunk));
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(Number(listenPort), '127.0.0.1');
