// Tiny network tools the iptables tests run inside network namespaces (as chosen UIDs):
//   serve-tcp <host> <port> <banner>     answers every connection with the banner, then closes
//   serve-udp <host> <port>              echoes every datagram
//   relay <listenPort> <host> <port>     loopback TCP relay (plays the sidecar)
//   connect-tcp <host> <port>            prints {"ok":true,"data":...} or {"ok":false,"code":...}
//   send-udp <host> <port>               same, for one datagram and its echo
import { createSocket } from 'node:dgram';
import { connect, createServer, isIP } from 'node:net';

const TIMEOUT_MS = 1500;
const [mode, ...args] = process.argv.slice(2);

function print(result: { ok: boolean; data?: string; code?: string }): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function ready(): void {
  process.stdout.write('ready\n');
}

switch (mode) {
  case 'serve-tcp': {
    const [host, port, banner] = args;
    createServer((socket) => {
      socket.on('error', () => {});
      socket.end(banner ?? '');
    }).listen(Number(port), host, ready);
    break;
  }
  case 'serve-udp': {
    const [host, port] = args;
    const socket = createSocket(isIP(host!) === 6 ? 'udp6' : 'udp4');
    socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
    socket.bind(Number(port), host, ready);
    break;
  }
  case 'relay': {
    const [listenPort, host, port] = args;
    createServer((client) => {
      const upstream = connect(Number(port), host);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.pipe(upstream).pipe(client);
    }).listen(Number(listenPort), '127.0.0.1', ready);
    break;
  }
  case 'connect-tcp': {
    const [host, port] = args;
    const socket = connect(Number(port), host);
    let data = '';
    const timer = setTimeout(() => {
      print({ ok: false, code: 'TIMEOUT' });
      process.exit(0);
    }, TIMEOUT_MS);
    socket.setEncoding('utf8').on('data', (d: string) => {
      data += d;
    });
    socket.on('end', () => {
      clearTimeout(timer);
      print({ ok: true, data });
      process.exit(0);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      print({ ok: false, code: e.code ?? e.message });
      process.exit(0);
    });
    break;
  }
  case 'send-udp': {
    const [host, port] = args;
    const socket = createSocket(isIP(host!) === 6 ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      print({ ok: false, code: 'TIMEOUT' });
      process.exit(0);
    }, TIMEOUT_MS);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      print({ ok: true, data: msg.toString('utf8') });
      process.exit(0);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      print({ ok: false, code: e.code ?? e.message });
      process.exit(0);
    });
    socket.connect(Number(port), host, () => socket.send('ping'));
    break;
  }
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}
