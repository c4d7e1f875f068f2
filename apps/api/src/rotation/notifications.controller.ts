import { Controller, Get, Header, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { OperationContext } from '@app/common';
import { NotificationSettingsService } from '@app/rotation';
import { RequireScopes } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { bodyOf } from '../http/openapi';
import { UpdateNotificationSettingsDto } from './notifications.dto';
import { Body } from '../http/validated-params';

/**
 * The tenant's notification settings: outbound webhook URL, its signing secret, e-mail recipients.
 * Scopes: `rotation:read` to read, `rotation:write` to change. The signing secret is never returned,
 * except once, as `generatedWebhookSecret`, in the answer of the update that generated it.
 */
@ApiTags('rotation')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/rotation/notifications')
export class NotificationSettingsController {
  constructor(private readonly settings: NotificationSettingsService) {}

  @Get('settings')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: "The tenant's notification settings (whether a signing secret is configured, never the secret)" })
  @ApiOkResponse({ description: 'the settings', schema: bodyOf('NotificationSettings') })
  get(@OpContext() ctx: OperationContext) {
    return this.settings.get(ctx);
  }

  @Put('settings')
  @RequireScopes(Scope.ROTATION_WRITE)
  // The answer may carry the generated signing secret.
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'Change the webhook URL, set or generate the signing secret, replace the e-mail recipients (compare-and-set with expectedRowVersion)',
    description:
      'Answers the settings and, only when this call generated a signing secret, `generatedWebhookSecret` (shown once). ' +
      'A private or loopback webhook target is 400 NOTIFICATION_TARGET_FORBIDDEN; a stale expectedRowVersion is 409 NOTIFICATION_SETTINGS_CONFLICT. Audited as notification_settings_change; ' +
      'a save that changes nothing writes nothing (the stored settings, rowVersion unchanged, no audit entry).',
  })
  @ApiOkResponse({ description: 'the settings after the change (and the generated secret, once)', schema: bodyOf('NotificationSettingsUpdate') })
  async update(@OpContext() ctx: OperationContext, @Body() dto: UpdateNotificationSettingsDto) {
    const out = await this.settings.update(ctx, dto);
    return { ...out.settings, ...(out.generatedWebhookSecret ? { generatedWebhookSecret: out.generatedWebhookSecret } : {}) };
  }
}
