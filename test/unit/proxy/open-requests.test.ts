import type { ServerResponse } from 'node:http';
import { expect, test } from 'vitest';
import { type OpenLink, OpenRequests } from '../../../src/proxy/open-requests.js';

function link(name: string): OpenLink {
  return { res: { name } as unknown as ServerResponse, prevOpen: undefined, nextOpen: undefined, cutAtDeadline: () => undefined };
}

const names = (open: OpenRequests): string[] => [...open].map((res) => (res as unknown as { name: string }).name);

test('keeps requests in the order they were added, whichever leaves, and can be read twice', () => {
  const open = new OpenRequests();
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(link) as [OpenLink, OpenLink, OpenLink, OpenLink];
  for (const l of [a, b, c, d]) open.add(l);
  expect(names(open)).toEqual(['a', 'b', 'c', 'd']);
  open.delete(b);
  expect(names(open)).toEqual(['a', 'c', 'd']);
  expect(names(open)).toEqual(['a', 'c', 'd']);
  open.delete(a);
  open.delete(d);
  expect(names(open)).toEqual(['c']);
  open.add(b);
  expect(names(open)).toEqual(['c', 'b']);
  open.delete(c);
  open.delete(b);
  expect(names(open)).toEqual([]);
  open.add(a);
  expect(names(open)).toEqual(['a']);
});
