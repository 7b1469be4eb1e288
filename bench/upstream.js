// The node:http upstream: a sink for uploads (POST answers {"bytes": N} once the whole body
// is read) and, when nginx is not installed, the static responses of the throughput tests.
//
// usage: node bench/upstream.js --port PORT
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const SMALL = Buffer.from('hello, world\n');
const LARGE = Buffer.alloc(16 * 1024, 'ficus-bench ');

const server = createServer((req, res) => {
  if (req.method === 'POST' || req.method === 'PUT') {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      const body = JSON.stringify({ bytes });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  const body = req.url === '/bench/16k' ? LARGE : SMALL;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
