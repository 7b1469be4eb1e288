import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** Whether an IP address is a loopback one, compared as an address: `0:0:0:0:0:0:0:1` is `::1`, `::ffff:7f00:1` is 127.0.0.1. */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Parses `10.0.0.0/8`, `::1/128` or a bare address; returns undefined when malformed. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const parts = text.split('/');
  // One prefix at most: `10.0.0.0/8/16` is a typo, never silently `10.0.0.0/8`.
  if (parts.length > 2) return undefined;
  const [address = '', prefixText] = parts;
  // A zone (`fe80::1%eth0`) would be dropped by the match, trusting the address on every interface.
  if (address.includes('%')) return undefined;
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (!family) return undefined;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText !== undefined && !/^\d+$/.test(prefixText))) return undefined;
  return { address, prefix, family };
}

/**
 * The first address of a CIDR's network, when the CIDR has bits set past its prefix
 * (`10.0.0.1/8`); undefined when it is already a network. Such an entry is most often a typo
 * for one address (`10.0.0.1/32`): nginx warns about it, ficus refuses it.
 */
export function networkIfHostBitsSet(cidr: { address: string; prefix: number; family: 'ipv4' | 'ipv6' }): string | undefined {
  const width = cidr.family === 'ipv4' ? 32 : 128;
  const bits = cidr.family === 'ipv4' ? ipv4Bits(cidr.address) : ipv6Bits(cidr.address);
  const host = (1n << BigInt(width - cidr.prefix)) - 1n;
  if ((bits & host) === 0n) return undefined;
  const network = bits & ~host;
  if (cidr.family === 'ipv4') return `${[24n, 16n, 8n, 0n].map((shift) => (network >> shift) & 0xffn).join('.')}/${cidr.prefix}`;
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) => ((network >> shift) & 0xffffn).toString(16));
  // WHATWG URL writes an IPv6 address in its canonical, compressed form.
  return `${new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)}/${cidr.prefix}`;
}

function ipv4Bits(address: string): bigint {
  return address.split('.').reduce((bits, octet) => (bits << 8n) | BigInt(Number(octet)), 0n);
}

function ipv6Bits(address: string): bigint {
  // A dotted IPv4 tail (`::ffff:10.0.0.1`) is two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  let text = address.replace(/%.*$/, '');
  if (dotted) {
    const v4 = ipv4Bits(dotted[1] as string);
    text = `${text.slice(0, text.length - (dotted[1] as string).length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const before = head === '' ? [] : head.split(':');
  const after = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? before : [...before, ...Array<string>(8 - before.length - after.length).fill('0'), ...after];
  return groups.reduce((bits, group) => (bits << 16n) | BigInt(parseInt(group, 16)), 0n);
}

export type PeerTrust = (address: string | undefined) => boolean;

/** The IPv4 address an IPv4-mapped IPv6 address (`::ffff:10.0.0.0`, `::ffff:a00:0`) stands for. */
function mappedIPv4(address: string): string | undefined {
  if (address.includes('%') || !address.toLowerCase().includes('ffff')) return undefined;
  // WHATWG URL serializes any spelling of an IPv6 address canonically, the mapped part in hex.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!hex) return undefined;
  const high = parseInt(hex[1] as string, 16);
  const low = parseInt(hex[2] as string, 16);
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/**
 * Whether a peer may set X-Forwarded-* / Forwarded for us; IPv4-mapped IPv6 peers count as IPv4.
 * IPv4 peers are judged by IPv4 ranges only (and by IPv4-mapped ranges written in IPv6,
 * `::ffff:10.0.0.0/104`), as nginx does: node's BlockList alone would let `::/0` or `::/64`
 * trust every IPv4 client, since it matches IPv4 addresses against IPv6 rules as ::ffff:a.b.c.d.
 */
export function compileTrust(cidrs: readonly string[]): PeerTrust {
  if (cidrs.length === 0) return () => false;
  const v4 = new BlockList();
  const v6 = new BlockList();
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (!cidr) continue;
    if (cidr.family === 'ipv4') {
      v4.addSubnet(cidr.address, cidr.prefix, 'ipv4');
      continue;
    }
    const mapped = cidr.prefix >= 96 ? mappedIPv4(cidr.address) : undefined;
    if (mapped !== undefined) v4.addSubnet(mapped, cidr.prefix - 96, 'ipv4');
    else v6.addSubnet(cidr.address, cidr.prefix, 'ipv6');
  }
  return (address) => {
    if (!address) return false;
    const ipv4 = isIPv4(address) ? address : address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : undefined;
    // Node reports a mapped peer dotted (::ffff:10.0.0.1); any other IPv6 peer is judged by IPv6 ranges.
    return ipv4 !== undefined ? v4.check(ipv4, 'ipv4') : v6.check(address, 'ipv6');
  };
}
