import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMsDate } from '../persistence/column-transformers';

/**
 * A lease: work named `name` is in progress by `holder` until `expires_at`, whatever happens to the
 * session that held its advisory lock (`LockLeases`). No value, only names and times.
 */
@Entity({ name: 'cv_lock_leases' })
export class LockLeaseEntity {
  @PrimaryColumn({ type: 'varchar', length: 255 })
  name: string;

  @Column({ type: 'varchar', length: 64 })
  holder: string;

  @Column({ name: 'expires_at', type: 'bigint', transformer: epochMsDate })
  expiresAt: Date;
}
