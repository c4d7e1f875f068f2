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
