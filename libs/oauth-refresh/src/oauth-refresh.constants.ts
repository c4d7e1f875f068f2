import { LOCK_KEYS } from '@app/common';

/** Internal token of the merged, validated options (ResolvedOAuthRefreshOptions). */
export const OAUTH_REFRESH_RESOLVED_OPTIONS = Symbol('oauth-refresh:resolved-options');
/** Internal token of the DistributedLock the lib uses (the host's, or one built from its DataSource). */
export const OAUTH_REFRESH_LOCK = Symbol('oauth-refresh:lock');
/** Internal token of the LockLeases of the refresh-in-flight leases (from the host's DataSource; null without one). */
export const OAUTH_REFRESH_LEASES = Symbol('oauth-refresh:leases');
/** Internal token of the Clock the lib uses (`provideLibClock`: the `clock` option, else the host's, else the system clock). */
export const OAUTH_REFRESH_CLOCK = Symbol('oauth-refresh:clock');

/** Lock name of the proactive job (one replica at a time), from the registry of libs/common. */
export const PROACTIVE_REFRESH_LOCK = LOCK_KEYS.oauthProactiveRefresh;
/** Actor id recorded for work the lib does on its own. */
export const OAUTH_REFRESH_ACTOR = 'system:oauth-refresh';
