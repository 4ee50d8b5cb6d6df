// The agent leg's reads alone: CPU per loopback round trip when the accepted socket reads through
// the Readable stream ('data' events of a fresh buffer) and when it is adopted for direct reads
// (sidecar/postgres/direct-reads.ts: one reused buffer, a pooled copy per read). Both sides in this
// process, 60-byte messages (a pgbench select-only Query), pairs interleaved; prints µs per round trip.
//   node bench/agent-reads.bench.ts [--trips 40000] [--pairs 8]
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { adoptWithDirectReads } from '../sidecar/postgres/direct-reads.ts';

const { values } = parseArgs({ options: { trips: { type: 'string' }, pairs: { type: 'string' } } });
const TRIPS = Number(values.trips ?? 40_000);
const PAIRS = Number(values.pairs ?? 8);

async function cpuPerRoundTrip(adopt: boolean, trips: number): Promise<number> {
  const server = createServer({ noDelay: true, pauseOnConnect: true }, (accepted) => {
    const socket: Socket = adopt ? adoptWithDirectReads(accepted) : accepted.resume();
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const agent = connect({ port, host: '127.0.0.1', noDelay: true });
  await new Promise((resolve) => agent.once('connect', resolve));
  const message = Buffer.alloc(60, 0x51);
  let left = trips;
  const before = process.cpuUsage();
  await new Promise<void>((resolve) => {
    agent.on('data', () => (--left > 0 ? agent.write(message) : resolve()));
    agent.write(message);
  });
  const used = process.cpuUsage(before);
  agent.destroy();
  await new Promise((resolve) => server.close(resolve));
  return (used.user + used.system) / trips;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
await cpuPerRoundTrip(true, 5000); // warm-up of both paths
await cpuPerRoundTrip(false, 5000);
const stream: number[] = [];
const direct: number[] = [];
for (let i = 0; i < PAIRS; i++) {
  if (i % 2) {
    stream.push(await cpuPerRoundTrip(false, TRIPS));
    direct.push(await cpuPerRoundTrip(true, TRIPS));
  } else {
    direct.push(await cpuPerRoundTrip(true, TRIPS));
    stream.push(await cpuPerRoundTrip(false, TRIPS));
  }
}
const show = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
process.stdout.write(
  `agent reads, CPU µs per round trip (${PAIRS} pairs of ${TRIPS}):\n` +
    `  stream 'data':  median ${median(stream).toFixed(2)} (${show(stream)})\n` +
    `  direct reads:   median ${median(direct).toFixed(2)} (${show(direct)})\n`,
);
