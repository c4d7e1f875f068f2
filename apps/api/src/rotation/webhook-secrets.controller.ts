import { Body, Controller, Get, Headers, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiHeader, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { OperationContext } from '@app/common';
import { WebhookSecretKeyring, WebhookSecretsService, type IncomingWebhookHeaders, type WebhookTarget } from '@app/rotation';
import { RequireScopes } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { RawBody, RawBodyRoute } from '../http/request-body';
import { CreateWebhookSecretDto, WebhookConnectionParamsDto } from './webhook-secrets.dto';

/**
 * A connection's Standard Webhooks secret: create (the value is answered once), rotate (two-phase:
 * pushed to the provider by the integration's WebhookSecretUpdater, then current; the previous one
 * verifies through the overlap window), its versions (no values), and verify a received payload.
 * Scopes: `rotation:write` (create, rotate), `rotation:read` (versions, verify).
 */
@ApiTags('rotation')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/rotation/webhooks/:integrationId/:connectionId')
export class WebhookSecretsController {
  constructor(
    private readonly webhooks: WebhookSecretsService,
    private readonly keyring: WebhookSecretKeyring,
  ) {}

  @Post('secret')
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({
    summary: "Generate the connection's webhook secret (whsec_ + 32 random bytes), enrolled for automatic rotation",
    description: 'The answer is the credential metadata and `secret`, the only time the value is returned: hand it to the provider. 409 when the connection already has one.',
  })
  async create(@OpContext() ctx: OperationContext, @Param() p: WebhookConnectionParamsDto, @Body() dto: CreateWebhookSecretDto) {
    const { credential, secret } = await this.webhooks.create(ctx, { integrationId: p.integrationId, connectionId: p.connectionId, valueStore: dto?.valueStore });
    return { ...credential, secret };
  }

  @Post('rotate')
  @HttpCode(200)
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({
    summary: 'Rotate the webhook secret now (two-phase)',
    description:
      "A new version is written pending, pushed by the integration's WebhookSecretUpdater, then made current; the previous one stays live for the overlap window. " +
      '409 WEBHOOK_UPDATER_NOT_REGISTERED without an updater (nothing written), 502 WEBHOOK_UPDATE_FAILED when the provider refused (the old secret stays current; retried later).',
  })
  rotate(@OpContext() ctx: OperationContext, @Param() p: WebhookConnectionParamsDto) {
    return this.webhooks.rotateConnection(target(ctx, p));
  }

  @Get('versions')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: 'The versions of the webhook secret and their states (pending, current, live, retired), newest first; never a value' })
  async versions(@OpContext() ctx: OperationContext, @Param() p: WebhookConnectionParamsDto) {
    const credential = await this.keyring.find(target(ctx, p));
    return { credentialId: credential.id, items: await this.webhooks.versions(ctx, credential.id) };
  }

  @Post('verify')
  @HttpCode(200)
  @RawBodyRoute()
  @RequireScopes(Scope.ROTATION_READ)
  @ApiConsumes('application/octet-stream', 'application/json')
  @ApiBody({ description: 'The webhook body exactly as received (bytes, not re-serialised)', schema: { type: 'string', format: 'binary' } })
  @ApiHeader({ name: 'webhook-id', required: true })
  @ApiHeader({ name: 'webhook-timestamp', required: true, description: 'Unix seconds; ± 5 minutes' })
  @ApiHeader({ name: 'webhook-signature', required: true, description: 'v1,<base64 HMAC-SHA256>, several space-separated' })
  @ApiOperation({
    summary: 'Verify a received webhook (Standard Webhooks) against every live secret of the connection',
    description: '200 {valid: true, version, msgId, timestamp} (version null: a secret being pushed, not yet current); 400 for a missing header, 401 WEBHOOK_SIGNATURE_MISMATCH or a timestamp out of tolerance.',
  })
  async verify(@OpContext() ctx: OperationContext, @Param() p: WebhookConnectionParamsDto, @RawBody() body: Buffer, @Headers() headers: IncomingWebhookHeaders) {
    const out = await this.webhooks.verifyWebhook(target(ctx, p), body, headers);
    return { valid: true, version: out.version, msgId: out.msgId, timestamp: out.timestamp };
  }
}

function target(ctx: OperationContext, p: WebhookConnectionParamsDto): WebhookTarget {
  return { tenantId: ctx.tenantId, integrationId: p.integrationId, connectionId: p.connectionId, context: ctx };
}
