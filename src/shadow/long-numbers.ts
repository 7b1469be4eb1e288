/**
 * JSON numbers with more significant digits than a double holds exactly (64-bit ids such as
 * 9007199254740993) are kept as written: parsed as doubles, two different ids would compare
 * equal. Node 20's JSON.parse offers no access to a number's source text, so such literals
 * are turned into marked strings before parsing and revived as `LongNumber`s.
 */
export class LongNumber {
  constructor(readonly text: string) {}
}

/** The mark a parsed string starts with: a document's own strings hold U+0000 only if they escape it. */
const MARK = '\u0000#';
/** 15 significant decimal digits always survive a double's round trip. */
const EXACT_DIGITS = 15;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
/** Anything with 16 digits in a row (or across a point) is worth a closer look. */
const MAYBE_LONG = /\d[\d.]{15}/;

/** The document's text with every long number literal written as a marked string. */
export function markLongNumbers(text: string): string {
  if (!MAYBE_LONG.test(text)) return text;
  let out = '';
  let copied = 0;
  for (let i = 0; i < text.length; ) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 34) i += text.charCodeAt(i) === 92 /* \ */ ? 2 : 1;
      i++;
      continue;
    }
    if (c !== 45 /* - */ && (c < 48 || c > 57)) {
      i++;
      continue;
    }
    NUMBER.lastIndex = i;
    const token = NUMBER.exec(text)?.[0];
    if (token === undefined) {
      i++;
      continue;
    }
    if (significantDigits(token) > EXACT_DIGITS) {
      // Escaped: JSON text may not hold U+0000 raw, only its parsed strings can.
      out += `${text.slice(copied, i)}"\\u0000#${token}"`;
      copied = i + token.length;
    }
    i += token.length;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** The reviver that turns marked strings back into `LongNumber`s. */
export function reviveLongNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'string' && value.startsWith(MARK) ? new LongNumber(value.slice(MARK.length)) : value;
}

function significantDigits(token: string): number {
  const mantissa = token.replace(/^-/, '').replace(/[eE].*$/, '').replace('.', '');
  return mantissa.replace(/^0+/, '').replace(/0+$/, '').length;
}
