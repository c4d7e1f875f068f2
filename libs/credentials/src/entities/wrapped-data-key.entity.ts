import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMsDate } from '@app/common';

/**
 * A tenant's envelope data key, wrapped (RSA-OAEP-256) by the vault key `envelope.keyEncryptionKey`:
 * the database holds only the wrapped blob, the vault key never leaves the vault. `kekVersion` names
 * the vault key version that can unwrap it; after the vault key rotates, the row is re-wrapped under
 * the latest version the next time a process loads it (compare-and-set on `kek_version`).
 */
@Entity({ name: 'cv_wrapped_data_keys' })
@Index('UQ_cv_wrapped_data_keys_tenant_version', ['tenantId', 'version'], { unique: true })
@Index('IDX_cv_wrapped_data_keys_tenant_created', ['tenantId', 'createdAt'])
export class WrappedDataKeyEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  /** The data key's own version (what envelope rows record as `data_key_version`). */
  @Column({ type: 'varchar', length: 64 })
  version: string;

  @Column({ name: 'kek_name', type: 'varchar', length: 127 })
  kekName: string;

  @Column({ name: 'kek_version', type: 'varchar', length: 64 })
  kekVersion: string;

  /** base64 of the wrapped key (never the key). */
  @Column({ name: 'wrapped_key', type: 'text' })
  wrappedKey: string;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMsDate })
  updatedAt: Date;
}
