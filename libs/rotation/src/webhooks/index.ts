import type { Provider } from '@nestjs/common';

/**
 * Webhook secrets (issue #12): Standard Webhooks signing/verification and the two-phase rotation.
 * The rotation module spreads these into RotationModule; the lib index re-exports this file.
 */
export const WEBHOOK_PROVIDERS: Provider[] = [];

/** TypeORM entities of the webhook-secret versions table (the host registers them with the others). */
export const WEBHOOK_ENTITIES: (new (...args: any[]) => object)[] = [];

/** Migrations of the webhook-secret versions table. */
export const WEBHOOK_MIGRATIONS: (new (...args: any[]) => object)[] = [];

