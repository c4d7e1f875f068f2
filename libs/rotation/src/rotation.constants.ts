/** Internal token of the merged, validated options (ResolvedRotationOptions). */
export const ROTATION_RESOLVED_OPTIONS = Symbol('rotation:resolved-options');
/** Internal token of the Clock the lib uses (`provideLibClock`: the `clock` option, else the host's, else the system clock). */
export const ROTATION_CLOCK = Symbol('rotation:clock');
/** Internal token of the DistributedLock the lib uses (the host's, or one built from its DataSource). */
export const ROTATION_LOCK = Symbol('rotation:lock');

/** Actor ids recorded for work the lib does on its own. */
export const EXPIRY_MONITOR_ACTOR = 'expiry-monitor';
export const ROTATION_CHECK_ACTOR = 'rotation-check';
