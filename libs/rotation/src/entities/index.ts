import { RotationHistoryEntity } from './rotation-history.entity';
import { RotationNoticeEntity } from './rotation-notice.entity';
import { RotationPolicyEntity } from './rotation-policy.entity';

export { RotationHistoryEntity, RotationNoticeEntity, RotationPolicyEntity };

/** The core's tables (policies, notice dedupe keys, rotation history). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const ROTATION_CORE_ENTITIES: Function[] = [RotationPolicyEntity, RotationNoticeEntity, RotationHistoryEntity];
