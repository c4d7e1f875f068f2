/** What a query string that does not decode is answered (never repeating it), worded as a path that does not decode is. */
export const UNDECODABLE_QUERY = 'the request URL is not valid (its query string: malformed percent-encoding, or bytes that are not UTF-8)';

/**
 * False when the query of `url` has a malformed escape (`100%`) or escapes bytes that are not UTF-8
 * (`%FF`, an encoded surrogate). Fastify's parser keeps such a value as its raw text, so it matched
 * nothing (or failed some other check), where the same bytes in a body are 400. Decoded only when the
 * query holds a '%': a read's URL has none, and this runs on every request.
 */
export function queryDecodes(url: string): boolean {
  const q = url.indexOf('?');
  if (q === -1 || url.indexOf('%', q + 1) === -1) return true;
  try {
    decodeURIComponent(url.slice(q + 1));
    return true;
  } catch {
    return false;
  }
}
