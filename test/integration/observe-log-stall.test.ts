import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { expect, onTestFinished, test } from 'vitest';

const LOG = fileURLToPath(new URL('../../dist/observe/log.js', import.meta.url));
const METRICS = fileURLToPath(new URL('../../dist/observe/metrics.js', import.meta.url));

/*
 * A log reader that stops reading (a stalled shipper behind ficus's stdout pipe) must not grow
 * ficus's memory by an access line per request: lines waiting for it are bounded, those over
 * the bound are dropped and counted (ficus_log_dropped_lines_total).
 */
test('a stdout nobody reads holds a bounded amount of log text; the rest is dropped and counted', async () => {
  const script = `
    import { createLogger, logDrops, MAX_PENDING_LOG_CHARS } from ${JSON.stringify(LOG)};
    import { Metrics } from ${JSON.stringify(METRICS)};
    const logger = createLogger('info');
    const filler = 'x'.repeat(200);
    // Three times the bound, written while nobody reads the pipe.
    const lines = Math.ceil((3 * MAX_PENDING_LOG_CHARS) / 260);
    for (let i = 0; i < lines; i++) logger.info({ event: 'access', i, filler });
    setTimeout(async () => {
      const scraped = await new Metrics().registry.metrics();
      const metric = Number(/^ficus_log_dropped_lines_total (\\d+)$/m.exec(scraped)?.[1]);
      process.stderr.write(JSON.stringify({ lines, dropped: logDrops.lines, metric }) + '\\n');
    }, 100);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  child.stdout.pause();
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const reported = new Promise<{ lines: number; dropped: number; metric: number }>((resolve, reject) => {
    child.stderr.on('data', () => err.includes('\n') && resolve(JSON.parse(err) as { lines: number; dropped: number; metric: number }));
    child.on('exit', () => reject(new Error(`exited early: ${err}`)));
  });
  const { lines, dropped, metric } = await reported;
  expect(metric).toBe(dropped);
  // At most the bound (about a third of it all) waits; the rest was dropped.
  expect(dropped).toBeGreaterThan(lines / 2);
  expect(dropped).toBeLessThan(lines);
  // Reading again, the child flushes what it kept and exits.
  child.stdout.resume();
  expect((await once(child, 'exit'))[0]).toBe(0);
});
