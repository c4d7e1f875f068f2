import { Injectable } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { In } from 'typeorm';
import { WebhookSecretState, WebhookSecretVersionEntity } from './webhook-secret-version.entity';

/** Newest first; rows made in one transaction (a pick-up's live rows and its current row) by version. */
const NEWEST_FIRST = { createdAt: 'DESC', credentialVersion: 'DESC', id: 'ASC' } as const;

/**
 * Every SQL access to `cv_webhook_secret_versions`. Reads go through `runner.read`, writes through
 * `runner.run` (they join the caller's transaction), never an EntityManager argument.
 */
@Injectable()
export class WebhookSecretVersionRepository {
  constructor(private readonly runner: TransactionRunner) {}

  /** The current, live and pending rows of a credential (retired ones are history). */
  active(credentialId: string): Promise<WebhookSecretVersionEntity[]> {
    return this.runner.read(() =>
      this.runner.manager.find(WebhookSecretVersionEntity, {
        where: { credentialId, state: In([WebhookSecretState.CURRENT, WebhookSecretState.LIVE, WebhookSecretState.PENDING]) },
        order: NEWEST_FIRST,
      }),
    );
  }

  /** Every row of a credential, newest first (history included). */
  history(credentialId: string): Promise<WebhookSecretVersionEntity[]> {
    return this.runner.read(() => this.runner.manager.find(WebhookSecretVersionEntity, { where: { credentialId }, order: NEWEST_FIRST }));
  }

  /** One rotation's row of a credential, or null. */
  byId(credentialId: string, id: string): Promise<WebhookSecretVersionEntity | null> {
    return this.runner.read(() => this.runner.manager.findOneBy(WebhookSecretVersionEntity, { id, credentialId }));
  }

  insert(row: WebhookSecretVersionEntity): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.insert(WebhookSecretVersionEntity, row);
    });
  }

  /** Changes the given fields of one row, only if it is still in state `from` (false: it moved on). */
  async transition(id: string, from: WebhookSecretState, changes: Partial<WebhookSecretVersionEntity>): Promise<boolean> {
    return this.runner.run(async () => {
      const result = await this.runner.manager
        .createQueryBuilder()
        .update(WebhookSecretVersionEntity)
        .set(changes)
        .where('id = :id AND state = :from', { id, from })
        .execute();
      return (result.affected ?? 0) === 1;
    });
  }

  /** Pending rows of every tenant (interrupted or failed rotations to resume), oldest first. */
  pending(limit: number): Promise<WebhookSecretVersionEntity[]> {
    return this.runner.read(() =>
      this.runner.manager.find(WebhookSecretVersionEntity, { where: { state: WebhookSecretState.PENDING }, order: { createdAt: 'ASC', id: 'ASC' }, take: limit }),
    );
  }

  /** Current rows of every tenant, keyset-paged by (current_since, id): the rotation job's scan. */
  currentPage(limit: number, after?: { currentSinceMs: number; id: string }): Promise<WebhookSecretVersionEntity[]> {
    return this.runner.read(() => {
      const qb = this.runner.manager
        .createQueryBuilder(WebhookSecretVersionEntity, 'v')
        .where('v.state = :state', { state: WebhookSecretState.CURRENT })
        .orderBy('v.currentSince', 'ASC')
        .addOrderBy('v.id', 'ASC')
        .take(limit);
      if (after) qb.andWhere('(v.currentSince > :since OR (v.currentSince = :since AND v.id > :id))', { since: after.currentSinceMs, id: after.id });
      return qb.getMany();
    });
  }

  /** Live rows whose window closed at or before `nowMs`, of every tenant. */
  expiredLive(nowMs: number, limit: number): Promise<WebhookSecretVersionEntity[]> {
    return this.runner.read(() =>
      this.runner.manager
        .createQueryBuilder(WebhookSecretVersionEntity, 'v')
        .where('v.state = :state AND v.liveUntil <= :now', { state: WebhookSecretState.LIVE, now: nowMs })
        .orderBy('v.liveUntil', 'ASC')
        .take(limit)
        .getMany(),
    );
  }
}
