// The floor: about the least a correct streaming undici proxy can do per request (one
// keep-alive Pool, hop-by-hop headers stripped, bodies streamed with backpressure, no routing,
// no metrics, no log). ficus's distance to it is the cost of its features.
//
// usage: node bench/minimal-proxy.js --port PORT --upstream http://127.0.0.1:N [--sink http://127.0.0.1:M]
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' }, sink: { type: 'string' } } });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const app = new Pool(values.upstream, { pipelining: 1, keepAliveTimeout: 4_000 });
const sink = values.sink ? new Pool(values.sink, { pipelining: 1 }) : app;

const server = createServer((req, res) => {
  const raw = req.rawHeaders;
  const headers = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  const pool = req.url.startsWith('/upload') ? sink : app;
  pool.dispatch(
    { path: req.url, method: req.method, headers, body: hasBody ? req : null },
    {
      onConnect() {},
      onHeaders(status, rawHeaders, resume) {
        const out = [];
        for (let i = 0; i < rawHeaders.length; i += 2) {
          const name = rawHeaders[i].toString('latin1');
          if (!HOP.has(name.toLowerCase())) out.push(name, rawHeaders[i + 1].toString('latin1'));
        }
        res.writeHead(status, out);
        res.on('drain', resume);
        return true;
      },
      onData(chunk) {
        return res.write(chunk);
      },
      onComplete() {
        res.end();
      },
      onError() {
        if (res.headersSent) res.destroy();
        else res.writeHead(502).end();
      },
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void Promise.all([app.destroy(), sink.destroy()]).finally(() => process.exit(0));
});
