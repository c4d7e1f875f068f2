import { AuditLogEntry } from './entities/audit-log-entry.entity';
import { CreateAuditLog1790000000000 } from './migrations/1790000000000-create-audit-log';
import { DropAuditTimeIndex1880000000000 } from './migrations/1880000000000-drop-audit-time-index';
import { AuditQueryIndexesInChainOrder1890000000000 } from './migrations/1890000000000-audit-query-indexes-in-chain-order';
import { AuditQueryIndexesOffTheCommit1930000000000 } from './migrations/1930000000000-audit-query-indexes-off-the-commit';

/** Pass to the host's `TypeOrmModule.forRoot({ entities })`. */
export const AUDIT_ENTITIES = [AuditLogEntry];

/** Pass to the host's `TypeOrmModule.forRoot({ migrations })` (run them; no `synchronize`). */
export const AUDIT_MIGRATIONS = [
  CreateAuditLog1790000000000,
  DropAuditTimeIndex1880000000000,
  AuditQueryIndexesInChainOrder1890000000000,
  AuditQueryIndexesOffTheCommit1930000000000,
];
