import { CreateRotationTables1830000000000 } from './1830000000000-create-rotation-tables';
import { RotationHistoryOneRowPerRotation1940000000000 } from './1940000000000-rotation-history-one-row-per-rotation';
import { RevokedVersionsBeforeRevokedAt1950000000000 } from './1950000000000-revoked-versions-before-revoked-at';

export { CreateRotationTables1830000000000, RotationHistoryOneRowPerRotation1940000000000, RevokedVersionsBeforeRevokedAt1950000000000 };

/** The core's migrations, in order. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const ROTATION_CORE_MIGRATIONS: Function[] = [CreateRotationTables1830000000000, RotationHistoryOneRowPerRotation1940000000000, RevokedVersionsBeforeRevokedAt1950000000000];
