import { expect, test } from 'vitest';
import { compileTrust, networkIfHostBitsSet, parseCidr } from '../../../src/proxy/cidr.js';

test.each([
  { text: '10.0.0.0/8', want: { address: '10.0.0.0', prefix: 8, family: 'ipv4' } },
  { text: '127.0.0.1', want: { address: '127.0.0.1', prefix: 32, family: 'ipv4' } },
  { text: '::1/128', want: { address: '::1', prefix: 128, family: 'ipv6' } },
  { text: 'fd00::/8', want: { address: 'fd00::', prefix: 8, family: 'ipv6' } },
  { text: '10.0.0.0/33', want: undefined },
  { text: '10.0.0.0/-1', want: undefined },
  { text: '10.0.0.0/8.5', want: undefined },
  { text: '10.0.0.0/', want: undefined },
  { text: '10.0.0.0/ 8', want: undefined },
  { text: 'example.com/8', want: undefined },
  { text: '::1/129', want: undefined },
])('parseCidr($text)', ({ text, want }) => {
  expect(parseCidr(text)).toEqual(want);
});

test.each([
  { cidrs: [], address: '127.0.0.1', trusted: false },
  { cidrs: ['127.0.0.0/8'], address: '127.0.0.1', trusted: true },
  { cidrs: ['127.0.0.0/8'], address: '::ffff:127.0.0.1', trusted: true },
  { cidrs: ['127.0.0.0/8'], address: '128.0.0.1', trusted: false },
  { cidrs: ['10.0.0.0/8', '192.168.1.0/24'], address: '192.168.1.77', trusted: true },
  { cidrs: ['10.0.0.0/8', '192.168.1.0/24'], address: '192.168.2.77', trusted: false },
  { cidrs: ['::1'], address: '::1', trusted: true },
  { cidrs: ['::1'], address: '127.0.0.1', trusted: false },
  { cidrs: ['127.0.0.1/32'], address: undefined, trusted: false },
  { cidrs: ['127.0.0.1/32'], address: '', trusted: false },
])('compileTrust($cidrs)($address) → $trusted', ({ cidrs, address, trusted }) => {
  expect(compileTrust(cidrs)(address)).toBe(trusted);
});

test('a CIDR with two prefixes is refused, never read as its first', () => {
  expect(parseCidr('10.0.0.0/8/16')).toBeUndefined();
  expect(parseCidr('1.2.3.4/32/x')).toBeUndefined();
});

test('::/0 and ::/64 trust IPv6 peers only, never IPv4 clients (as nginx); IPv4-mapped ranges still name IPv4 peers', () => {
  for (const cidr of ['::/0', '::/64']) {
    expect(compileTrust([cidr])('203.0.113.9')).toBe(false);
    expect(compileTrust([cidr])('::ffff:203.0.113.9')).toBe(false);
  }
  expect(compileTrust(['::/0'])('2001:db8::1')).toBe(true);
  expect(compileTrust(['::ffff:10.0.0.0/104'])('10.1.2.3')).toBe(true);
  expect(compileTrust(['::ffff:0:0/96'])('::ffff:198.51.100.1')).toBe(true);
});

test.each([
  { text: '10.0.0.0/8', network: undefined },
  { text: '10.0.0.1', network: undefined },
  { text: '0.0.0.0/0', network: undefined },
  { text: '10.0.0.1/8', network: '10.0.0.0/8' },
  { text: '192.168.1.77/24', network: '192.168.1.0/24' },
  { text: '172.16.0.1/31', network: '172.16.0.0/31' },
  { text: 'fd00::/8', network: undefined },
  { text: '::1', network: undefined },
  { text: '::/0', network: undefined },
  { text: 'fd00::1/64', network: 'fd00::/64' },
  { text: '2001:db8:1:2:3:4:5:6/48', network: '2001:db8:1::/48' },
  { text: '::ffff:10.0.0.1/104', network: '::ffff:a00:0/104' },
  { text: '::ffff:10.0.0.0/104', network: undefined },
])('$text has host bits set: $network', ({ text, network }) => {
  expect(networkIfHostBitsSet(parseCidr(text)!)).toBe(network);
});
