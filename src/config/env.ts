import { isScalar, visit, type Document, type Scalar } from 'yaml';

/** Any `${env:…}`, well-formed or not, so that a typo is reported instead of kept as literal text. */
const ANY_REFERENCE = /\$\{env:([^}]*)\}?/g;
const WELL_FORMED = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

export interface EnvProblem {
  node: { range?: [number, number, number] | null };
  message: string;
}

/**
 * Replaces `${env:NAME}` and `${env:NAME:-default}` in every string scalar of the document, in
 * place, so that later errors still point at the scalar's position in the file;
 * `substitutedNode` hears of each scalar replaced, with its text as written.
 */
export function substituteEnv(doc: Document, env: NodeJS.ProcessEnv, substitutedNode?: (node: Scalar, written: string) => void): EnvProblem[] {
  const problems: EnvProblem[] = [];
  visit(doc, {
    Scalar(key, node) {
      // SPEC §1: references are replaced in values; a key is a name the schema checks, not data.
      if (key === 'key' || !isScalar(node) || typeof node.value !== 'string' || !node.value.includes('${env:')) return;
      const substituted = node.value.replace(ANY_REFERENCE, (whole, inner: string) => {
        const parts = WELL_FORMED.exec(inner);
        if (!parts || !whole.endsWith('}')) {
          problems.push({ node, message: `malformed reference ${whole} (write \${env:NAME} or \${env:NAME:-default})` });
          return whole;
        }
        const [, name = '', fallback] = parts;
        // `${env:A:-${env:B}}`: the first `}` ends the reference, so the rest would be kept as text.
        if (fallback?.includes('${') === true) {
          problems.push({ node, message: `a default cannot hold another reference: ${node.value} (set ${name} instead)` });
          return whole;
        }
        const value = env[name];
        if (value !== undefined) return value;
        if (fallback !== undefined) return fallback;
        problems.push({ node, message: `environment variable ${name} is not set (write \${env:${name}:-default} to allow that)` });
        return whole;
      });
      substitutedNode?.(node, node.value);
      node.value = node.type === 'PLAIN' ? plainScalar(substituted) : substituted;
    },
  });
  return problems;
}

/** An unquoted `port: ${env:PORT}` means a number, as it would had the value been written in place. */
function plainScalar(text: string): string | number | boolean {
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}
