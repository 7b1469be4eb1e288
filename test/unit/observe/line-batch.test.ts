import { expect, test } from 'vitest';
import { BATCH_CHARS, LineBatch, type LineSink } from '../../../src/observe/line-batch.js';

function recordingSink() {
  const calls: string[] = [];
  const sink: LineSink = {
    write: (text) => calls.push(`write:${text}`),
    flush: (cb) => {
      calls.push('flush');
      cb?.();
    },
    flushSync: () => void calls.push('flushSync'),
  };
  return { sink, calls };
}

const line = (i: number) => `${JSON.stringify({ n: i, pad: 'x'.repeat(300) })}\n`;

test('lines wait in memory and reach the destination in order, one write per batch', () => {
  const { sink, calls } = recordingSink();
  const batch = new LineBatch(sink);
  const lines: string[] = [];
  for (let i = 0; lines.join('').length < BATCH_CHARS; i++) {
    expect(calls).toEqual([]);
    lines.push(line(i));
    batch.write(line(i));
  }
  expect(calls).toEqual([`write:${lines.join('')}`]);
  batch.write(line(999));
  expect(calls).toHaveLength(1);
});

test('flush hands over a partial batch before asking the destination to flush; an empty one writes nothing', () => {
  const { sink, calls } = recordingSink();
  const batch = new LineBatch(sink);
  batch.write(line(1));
  batch.write(line(2));
  let flushed = false;
  batch.flush(() => (flushed = true));
  expect(calls).toEqual([`write:${line(1)}${line(2)}`, 'flush']);
  expect(flushed).toBe(true);
  batch.flush();
  batch.flushSync();
  expect(calls).toEqual([`write:${line(1)}${line(2)}`, 'flush', 'flush', 'flushSync']);
});
