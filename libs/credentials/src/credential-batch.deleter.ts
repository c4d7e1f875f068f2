import { Injectable } from '@nestjs/common';
import type { OperationContext } from '@app/common';
import type { BatchDeleteResult } from './credential.types';
import { CredentialWriter } from './credential.writer';
import { CredentialNotFoundError, CredentialValidationError } from './errors/credential-errors';
import { assertContext, UUID } from './internal/guards';
import { CredentialRepository } from './persistence/credential.repository';
import { assertIdentifier } from './validation/identifiers';

/** Most ids `deleteMany` takes in one call. */
const MAX_DELETE_MANY = 1000;

/**
 * `deleteMany` and `deleteByConnection`: the whole batch is checked first, then each credential goes
 * through `CredentialWriter.delete` (its own transaction, audit row and event). A failure other than
 * not-found stops the batch and is thrown; the credentials deleted before it stay deleted.
 */
@Injectable()
export class CredentialBatchDeleter {
  constructor(
    private readonly writer: CredentialWriter,
    private readonly rows: CredentialRepository,
  ) {}

  /** See `CredentialsService.deleteByConnection`. */
  async deleteByConnection(ctx: OperationContext, integrationId: string, connectionId: string): Promise<BatchDeleteResult> {
    assertContext(ctx);
    assertIdentifier(integrationId, 'integrationId');
    assertIdentifier(connectionId, 'connectionId');
    return this.deleteMany(ctx, await this.rows.liveIdsOfConnection(ctx.tenantId, integrationId, connectionId));
  }

  /** See `CredentialsService.deleteMany`. */
  async deleteMany(ctx: OperationContext, ids: string[]): Promise<BatchDeleteResult> {
    assertContext(ctx);
    if (!Array.isArray(ids) || ids.length > MAX_DELETE_MANY) throw new CredentialValidationError(`ids must be an array of at most ${MAX_DELETE_MANY} ids`, 'ids');
    // The whole batch is checked before the first delete: a malformed id fails it and deletes nothing.
    const bad = ids.findIndex((id) => typeof id !== 'string' || !UUID.test(id));
    if (bad >= 0) throw new CredentialValidationError(`ids[${bad}] is not a credential id (a UUID); nothing was deleted`, 'ids');
    const result: BatchDeleteResult = { deleted: [], notFound: [] };
    for (const id of new Set(ids)) {
      try {
        await this.writer.delete(ctx, id);
        result.deleted.push(id);
      } catch (e) {
        if (e instanceof CredentialNotFoundError) result.notFound.push(id);
        else throw e;
      }
    }
    return result;
  }
}
