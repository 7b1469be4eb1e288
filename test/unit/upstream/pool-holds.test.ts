import { Pool } from 'undici';
import { expect, test } from 'vitest';
import { closeWhenReleased, holdPool } from '../../../src/upstream/pool-holds.js';

test('a held pool is closed only once every hold is released, each release counting once', async () => {
  const pool = new Pool('http://127.0.0.1:9');
  const first = holdPool(pool);
  const second = holdPool(pool);
  const closing = closeWhenReleased(pool);
  first();
  first();
  await new Promise((resolve) => setImmediate(resolve));
  expect(pool.closed).toBe(false);
  second();
  await closing;
  expect(pool.closed).toBe(true);
});

test('a pool nobody holds is closed at once', async () => {
  const pool = new Pool('http://127.0.0.1:9');
  await closeWhenReleased(pool);
  expect(pool.closed).toBe(true);
});

test('a hold never released keeps the pool open only up to the limit given', async () => {
  const pool = new Pool('http://127.0.0.1:9');
  holdPool(pool);
  await closeWhenReleased(pool, 50);
  expect(pool.closed).toBe(true);
});
