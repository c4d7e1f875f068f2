/**
 * False when `text` holds a lone (unpaired) UTF-16 surrogate, which no UTF-8 store can keep as sent
 * (it would come back as U+FFFD). In unicode mode a class only matches unpaired surrogates.
 */
export function isWellFormedUnicode(text: string): boolean {
  return !/[\uD800-\uDFFF]/u.test(text);
}
