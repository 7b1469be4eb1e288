import { isScalar, visit, type Document } from 'yaml';

const REFERENCE = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface EnvProblem {
  node: { range?: [number, number, number] | null };
  message: string;
}

/**
 * Replaces `${env:NAME}` and `${env:NAME:-default}` in every string scalar of the document, in
 * place, so that later errors still point at the scalar's position in the file.
 */
export function substituteEnv(doc: Document, env: NodeJS.ProcessEnv): EnvProblem[] {
  const problems: EnvProblem[] = [];
  visit(doc, {
    Scalar(_key, node) {
      if (!isScalar(node) || typeof node.value !== 'string' || !node.value.includes('${env:')) return;
      const substituted = node.value.replace(REFERENCE, (whole, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined) return value;
        if (fallback !== undefined) return fallback;
        problems.push({ node, message: `environment variable ${name} is not set (write \${env:${name}:-default} to allow that)` });
        return whole;
      });
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
