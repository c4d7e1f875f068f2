/**
 * False when `text` holds a lone (unpaired) UTF-16 surrogate, which no UTF-8 store can keep as sent
 * (it would come back as U+FFFD). In unicode mode a class only matches unpaired surrogates.
 */
export function isWellFormedUnicode(text: string): boolean {
  return !/[\uD800-\uDFFF]/u.test(text);
}

/**
 * True when `text` holds a C0 control character (NUL, tab, line breaks, ESC, …) or DEL: the rule of every
 * single-line text field (values of one-line types, reasons, tag values). PostgreSQL text cannot even hold NUL.
 */
export function hasControlCharacter(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text);
}

const SHOWN: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` for a terminal or a log line: each C0 or C1 control character and DEL written as an escape (`\n`, `\u001b`).
 * For ids and names read from input that a line reports (a refused one most of all): a line break there forged a
 * line of the report, an ESC sequence drove the operator's terminal.
 */
export function showControlCharacters(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => SHOWN[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
