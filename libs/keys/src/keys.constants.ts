/** Internal token of the validated options (ResolvedKeysOptions). */
export const KEYS_RESOLVED_OPTIONS = Symbol('keys:resolved-options');
/** Internal token of the lib's Clock. */
export const KEYS_CLOCK = Symbol('keys:clock');
/** Internal token of the DistributedLock the lib uses (the host's, or one built from its DataSource). */
export const KEYS_LOCK = Symbol('keys:lock');
