import type { OperationContext } from '@app/common';
import type { ConnectionTokens, StoredToken, TokenWrite } from '../store/oauth-token-store';
import { persistToken, RefreshDeps } from './refresh-support';

/** The refresh token to present to the provider, and where it came from. */
export interface LiveRefreshToken {
  value: string;
  /** Not (yet) written over the stored refresh token: the stored one is spent at the provider. */
  unsaved: boolean;
}

/** Where a rotated refresh token ended up. */
export type KeptRefreshToken =
  /** Written over the refresh-token credential (new version). */
  | { outcome: 'stored'; refresh: StoredToken }
  /** Another writer stored a different refresh token meanwhile (a reconnect): ours was dropped. */
  | { outcome: 'superseded' }
  /** The write failed: held in this process's memory only. */
  | { outcome: 'memory'; error: unknown };

export type Connection = { ctx: OperationContext; integrationId: string; connectionId: string; key: string };

/**
 * Where the provider's newest refresh token lives: written over the refresh-token credential, else
 * (the write failed; the stored one is spent) in this process's memory for the next attempt.
 */
export class RotatedRefreshTokens {
  /** Rotated refresh tokens the store refused to write, by connection key. */
  private readonly unsaved = new Map<string, { basedOnVersion: number; token: string }>();

  constructor(private readonly deps: RefreshDeps) {}

  /** The refresh token to present: an unsaved rotated one over `refresh`, else the stored one. */
  async live(c: Connection, _tokens: ConnectionTokens, refresh: StoredToken): Promise<LiveRefreshToken> {
    const held = this.unsaved.get(c.key);
    if (held && held.basedOnVersion === refresh.version) return { value: held.token, unsaved: true };
    return { value: await this.deps.store.readValue(c.ctx, refresh), unsaved: false };
  }

  /** Writes a rotated refresh token over `refresh`; keeps it in memory when that fails. */
  async keep(c: Connection, _tokens: ConnectionTokens, refresh: StoredToken, write: TokenWrite): Promise<KeptRefreshToken> {
    let written: StoredToken | undefined;
    try {
      written = await persistToken(this.deps, c.ctx, refresh, write, c.integrationId, c.connectionId);
    } catch (error) {
      this.unsaved.set(c.key, { basedOnVersion: refresh.version, token: write.value });
      this.deps.logger.error(`could not store the rotated refresh token of connection ${c.connectionId} (tenant ${c.ctx.tenantId}); kept in memory for the next attempt: ${(error as Error).message}`);
      return { outcome: 'memory', error };
    }
    this.unsaved.delete(c.key);
    return written ? { outcome: 'stored', refresh: written } : { outcome: 'superseded' };
  }

  /** New tokens were stored for the connection: the token held in memory is not the live one any more. */
  forgetHeld(key: string): void {
    this.unsaved.delete(key);
  }
}
