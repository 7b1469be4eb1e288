import type { IncomingMessage } from 'node:http';
import { Pool } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import type { ShadowDef } from '../../../src/config/snapshot.js';
import { ShadowCopy, type ComparisonResult, type CopyReport } from '../../../src/shadow/copy.js';
import { Endpoint } from '../../../src/upstream/endpoint.js';
import { startUpstream } from '../../helpers/upstream.js';

const def: ShadowDef = { service: 'fresh', percent: 100, compare: true, methods: new Set(['GET']), ignoreHeaders: new Set(), ignoreJsonPaths: [], maxBodyBytes: 1024, timeoutMs: 2_000, maxConcurrent: 1 };

test("the comparison runs after end() returns, so it never delays the primary's last bytes (SPEC §1.5)", async () => {
  const shadow = await startUpstream('fresh', (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"a":1}'));
  const pool = new Pool(shadow.url);
  onTestFinished(() => pool.destroy());
  const endpoint = new Endpoint({ origin: shadow.url, basePath: '' }, pool);

  let answered!: () => void;
  const shadowAnswered = new Promise<void>((resolve) => (answered = resolve));
  const results: ComparisonResult[] = [];
  let compared!: () => void;
  const judged = new Promise<void>((resolve) => (compared = resolve));
  const report: CopyReport = {
    released: () => undefined,
    dropped: () => undefined,
    exchanged: () => answered(),
    compared: (result) => {
      results.push(result);
      compared();
    },
    failed: (error) => {
      throw error;
    },
  };
  const copy = new ShadowCopy({ route: 'r', def, colour: '', endpoint, method: 'GET', path: '/x', headers: ['host', 'a'], hidden: undefined }, report);
  copy.start({} as IncomingMessage, false);
  await shadowAnswered;

  // The shadow's answer is in; the primary's arrives and ends, as the handler reports it just
  // before writing the client's last bytes.
  copy.head(200, [Buffer.from('content-type'), Buffer.from('application/json')]);
  copy.data(Buffer.from('{"a":1}'));
  copy.end(true);
  expect(results).toEqual([]);
  await judged;
  expect(results).toEqual(['match']);
});
