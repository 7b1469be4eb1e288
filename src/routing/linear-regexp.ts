import { setFlagsFromString } from 'node:v8';

// V8's backtracking engine takes exponential time on some patterns (`^/(a+)+$` against
// `/aaaa…!`): one request would stall the whole proxy. With these flags a match that
// backtracks too much is finished by V8's linear-time engine instead, and a pattern can be
// checked for that engine (the `l` flag). Process-wide, and read when a pattern is compiled.
setFlagsFromString('--enable-experimental-regexp-engine');
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

/**
 * Compiles a pattern from routes.yaml so that no request can make matching it take more than
 * linear time (as RE2 gives Envoy). Throws for a pattern only a backtracking engine can run: a
 * backreference or a lookaround. V8's linear engine also declines a counted repetition over 16
 * (`{36}`); such a pattern is accepted and runs on the backtracking engine alone, as before.
 */
export function linearRegExp(pattern: string): RegExp {
  // Compiled as it will run first, so that a syntax error reads as it always does.
  const regex = new RegExp(pattern);
  try {
    // `l` is V8's flag for its linear-time engine (enabled above); the rule does not know it.
    // eslint-disable-next-line no-invalid-regexp
    new RegExp(pattern, 'l');
  } catch {
    if (BACKTRACKING_ONLY.test(pattern)) {
      throw new SyntaxError(`/${pattern}/ cannot be matched in linear time (it has a backreference or a lookahead/lookbehind), so a request could make it stall the proxy`);
    }
  }
  return regex;
}

/** A backreference (`\1`, `\k<name>`) or a lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`). */
const BACKTRACKING_ONLY = /\\[1-9]|\\k<|\(\?<?[=!]/;
