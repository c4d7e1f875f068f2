/** Raw or resolved `notifications` options (the module owner provides it from RotationModule's options). */
export const NOTIFICATION_OPTIONS = Symbol('NOTIFICATION_OPTIONS');
/** `ResolvedNotificationOptions`, validated once at bootstrap. */
export const NOTIFICATION_RESOLVED_OPTIONS = Symbol('NOTIFICATION_RESOLVED_OPTIONS');
/** The notifications' Clock (default: the host's global Clock, else the system clock). */
export const NOTIFICATION_CLOCK = Symbol('NOTIFICATION_CLOCK');

/** Where a tenant's outbound-webhook signing secret lives among its credentials (type `webhook_secret`). */
export const NOTIFICATION_WEBHOOK_SECRET_INTEGRATION = 'credential-vault';
export const NOTIFICATION_WEBHOOK_SECRET_CONNECTION = 'notifications-webhook';
/** Audit action of a settings change. */
export const NOTIFICATION_SETTINGS_AUDIT_ACTION = 'notification_settings_change';
/** Actor id of the notifications' own reads (the webhook secret). */
export const NOTIFICATION_SYSTEM_JOB = 'notifications';
