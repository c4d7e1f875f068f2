import type { Provider } from '@nestjs/common';

// Notifications part of RotationModule (issue #12). The module owner spreads these three arrays
// into RotationModule; they grow as the notifiers, the delivery log and the settings land.
export const NOTIFICATION_PROVIDERS: Provider[] = [];
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const NOTIFICATION_ENTITIES: Function[] = [];
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const NOTIFICATION_MIGRATIONS: Function[] = [];
