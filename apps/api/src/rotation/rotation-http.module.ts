import { readFileSync } from 'node:fs';
import { Module } from '@nestjs/common';
import { RotationModule, type RotationModuleOptions } from '@app/rotation';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { RotationMetrics } from '../metrics/rotation-metrics';
import { NotificationSettingsController } from './notifications.controller';
import { RotationController } from './rotation.controller';
import { WebhookSecretsController } from './webhook-secrets.controller';

/** RotationModule's options from the host configuration (ROTATION_*, WEBHOOK_SECRET_*, NOTIFICATIONS_*, SMTP_*). */
export function rotationModuleOptions(c: AppConfig): RotationModuleOptions {
  const { notifications, smtpCaCertPath } = c.rotation;
  const email = notifications.email && smtpCaCertPath ? { ...notifications.email, caCertPem: readFileSync(smtpCaCertPath, 'utf8') } : notifications.email;
  return {
    expiryMonitor: { enabled: c.rotation.expiryMonitor.enabled, cronTime: c.rotation.expiryMonitor.cron },
    rotationCheck: { enabled: c.rotation.rotationCheck.enabled, cronTime: c.rotation.rotationCheck.cron },
    webhooks: c.rotation.webhooks,
    notifications: { ...notifications, email },
  };
}

/** The rotation lib configured from the host's variables, and its HTTP surface. */
@Module({
  imports: [
    RotationModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: rotationModuleOptions,
    }),
  ],
  controllers: [RotationController, NotificationSettingsController, WebhookSecretsController],
  providers: [RotationMetrics],
  // RevocationService for the credentials routes (a PATCH to status revoked is a revoke).
  exports: [RotationModule],
})
export class RotationHttpModule {}
