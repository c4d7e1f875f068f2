import { Module } from '@nestjs/common';
import { RotationModule } from '@app/rotation';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { RotationMetrics } from '../metrics/rotation-metrics';
import { NotificationSettingsController } from './notifications.controller';
import { RotationController } from './rotation.controller';
import { WebhookSecretsController } from './webhook-secrets.controller';

/** The rotation lib configured from ROTATION_* variables, and its HTTP surface. */
@Module({
  imports: [
    RotationModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({
        expiryMonitor: { enabled: c.rotation.expiryMonitor.enabled, cronTime: c.rotation.expiryMonitor.cron },
        rotationCheck: { enabled: c.rotation.rotationCheck.enabled, cronTime: c.rotation.rotationCheck.cron },
        notifications: { webhook: { enabled: c.rotation.webhookNotificationsEnabled } },
      }),
    }),
  ],
  controllers: [RotationController, NotificationSettingsController, WebhookSecretsController],
  providers: [RotationMetrics],
})
export class RotationHttpModule {}
