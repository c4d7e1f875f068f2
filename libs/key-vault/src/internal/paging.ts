import type { ListPageOptions, Page } from '../key-vault.provider';
import type { AttemptContext } from '../resilience/key-vault.resilience';

/** Key Vault's page size limit for `maxresults`. */
export const MAX_PAGE_SIZE = 25;

/** Object names of both sides (secrets and keys): `^[0-9a-zA-Z-]{1,127}$`. */
export const OBJECT_NAME = /^[0-9a-zA-Z-]{1,127}$/;
export const OBJECT_VERSION = /^[0-9a-zA-Z]{1,64}$/;

/** Reads one page; the continuation token is the page's own or the `nextLink` the pipeline captured. */
export async function readFirstPage<S, T>(
  ctx: AttemptContext,
  iterable: { byPage(settings?: { maxPageSize?: number; continuationToken?: string }): AsyncIterableIterator<S[]> },
  options: ListPageOptions,
  map: (item: S) => T,
): Promise<Page<T>> {
  const pages = iterable.byPage({ maxPageSize: options.maxPageSize, continuationToken: options.continuationToken });
  try {
    const first = await pages.next();
    if (first.done || !first.value) return { items: [] };
    const page = first.value as S[] & { continuationToken?: string };
    const token = page.continuationToken ?? ctx.call.nextLink ?? undefined;
    return token ? { items: page.map(map), continuationToken: token } : { items: page.map(map) };
  } finally {
    await pages.return?.(undefined);
  }
}

/**
 * Why the page options are refused, or undefined when they are fine. A continuation token is a URL
 * the SDK follows with our token, so it must point at this vault and at the list being paged
 * (`listPath`, e.g. `/keys/{name}/versions`): a token forged for another list would page that one —
 * another tenant's key versions, every deleted key — with our identity.
 */
export function pageOptionsProblem(vaultUrl: string, listPath: string, options: ListPageOptions): string | undefined {
  const { maxPageSize, continuationToken } = options;
  if (maxPageSize !== undefined && (!Number.isInteger(maxPageSize) || maxPageSize < 1 || maxPageSize > MAX_PAGE_SIZE)) {
    return `maxPageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`;
  }
  if (continuationToken !== undefined) {
    let ok = false;
    try {
      const token = new URL(continuationToken);
      const vault = new URL(vaultUrl);
      // Object names are case-insensitive in Key Vault; a nextLink may end the path with a slash.
      const path = (u: string) => u.replace(/\/+$/, '').toLowerCase();
      ok = token.origin === vault.origin && path(token.pathname) === path(vault.pathname.replace(/\/+$/, '') + listPath);
    } catch {
      ok = false;
    }
    if (!ok) return 'continuationToken is not a token of this list';
  }
  return undefined;
}
