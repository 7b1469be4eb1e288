import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** Parses `10.0.0.0/8`, `::1/128` or a bare address; returns undefined when malformed. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const parts = text.split('/');
  // One prefix at most: `10.0.0.0/8/16` is a typo, never silently `10.0.0.0/8`.
  if (parts.length > 2) return undefined;
  const [address = '', prefixText] = parts;
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (!family) return undefined;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText !== undefined && !/^\d+$/.test(prefixText))) return undefined;
  return { address, prefix, family };
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
