import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMsDate, jsonText } from '../persistence/column-transformers';

/**
 * One row of the transactional outbox: written in the same transaction as the change it announces,
 * delivered after commit by the `OutboxDispatcher`, pruned some time after delivery.
 */
@Entity({ name: 'cv_outbox' })
@Index('IDX_cv_outbox_due', ['availableAt', 'createdAt'], { where: '"delivered_at" IS NULL' })
@Index('IDX_cv_outbox_delivered', ['deliveredAt'], { where: '"delivered_at" IS NOT NULL' })
export class OutboxEventEntity {
  /** A UUID, and the idempotency key handlers de-duplicate on. */
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 128 })
  name: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128, nullable: true })
  tenantId: string | null;

  /**
   * An `OutboxPayload`: ids and metadata, JSON in TEXT. Never a credential value. (Typed loosely
   * here: TypeORM's deep-partial types do not terminate on a recursive JSON type.)
   */
  @Column({ type: 'text', transformer: jsonText })
  payload: object;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  /** Not before: pushed forward by the retry backoff. */
  @Column({ name: 'available_at', type: 'bigint', transformer: epochMsDate })
  availableAt: Date;

  /** Failed deliveries so far. */
  @Column({ type: 'integer', default: 0 })
  attempts: number;

  /** Name/code of the last delivery failure, never its message (which might quote data). */
  @Column({ name: 'last_error', type: 'varchar', length: 200, nullable: true })
  lastError: string | null;

  @Column({ name: 'delivered_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  deliveredAt: Date | null;
}
