import { Module } from '@nestjs/common';
import { CredentialCache } from '@app/credentials';
import { KeyChangeFanOut } from '@app/keys';

/** The scope the keys lib's announcements travel in on the credentials cache's fan-out. */
const KEYS_SCOPE = 'keys';

/**
 * Lends the credentials cache's eviction fan-out (Redis pub/sub or PostgreSQL NOTIFY, its heartbeats and its "not
 * hearing" state) to the keys lib's key cache, so that a key changed through one replica is dropped from every
 * replica's key cache at once. `null` when the credentials cache has no fan-out (one process, `CACHE_INVALIDATION=none`):
 * the key cache then keeps today's `KEYS_CACHE_TTL_MS` bound.
 */
export function keyChangeFanOut(cache: CredentialCache): KeyChangeFanOut | null {
  const evictions = cache.replicaEvictions();
  if (!evictions) return null;
  return {
    heardGeneration: () => evictions.heardGeneration(),
    announce: (vaultNames) => evictions.announce(KEYS_SCOPE, vaultNames),
    listen: (listener) => evictions.listen(KEYS_SCOPE, listener),
  };
}

/** Provides `KeyChangeFanOut` to `KeysModule` (imported through its `forRootAsync({ imports })`). */
@Module({
  providers: [{ provide: KeyChangeFanOut, inject: [CredentialCache], useFactory: keyChangeFanOut }],
  exports: [KeyChangeFanOut],
})
export class KeyChangeFanOutModule {}
