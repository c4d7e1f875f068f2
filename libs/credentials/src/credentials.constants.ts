/** Internal token of the merged, validated options (ResolvedCredentialsOptions). */
export const CREDENTIALS_RESOLVED_OPTIONS = Symbol('credentials:resolved-options');
/** Internal token of the lib's Clock (from options; not the host's, so a lib never shadows it). */
export const CREDENTIALS_CLOCK = Symbol('credentials:clock');
/** Internal token of the lib's DistributedLock (the host's, else one on its DataSource): the orphan-versions job's. */
export const CREDENTIALS_LOCK = Symbol('credentials:lock');
