import { Controller, Get, Header, Headers, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { OperationContext } from '@app/common';
import { WebhookSecretKeyring, WebhookSecretsService, type IncomingWebhookHeaders, type WebhookTarget } from '@app/rotation';
import { RequireScopes } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { bodyOf } from '../http/openapi';
import { ConnectionParamsDto } from '../http/connection-params.dto';
import { RawBody, RawBodyRoute } from '../http/request-body';
import { CreateWebhookSecretDto, StagedWebhookSecretDto } from './webhook-secrets.dto';
import { Body, Param } from '../http/validated-params';

/**
 * A connection's Standard Webhooks secret: create (the value is answered once), rotate (two-phase:
 * pushed to the provider by the integration's WebhookSecretUpdater, then current; the previous one
 * verifies through the overlap window), the operator-confirmed rotation for providers without an
 * updater (stage — the new value answered once —, install it in the provider's dashboard, activate;
 * or discard), its versions (no values), and verify a received payload.
 * Scopes: `rotation:write` (create, rotate, stage, activate, discard), `rotation:read` (versions, verify).
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
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: "Generate the connection's webhook secret (whsec_ + 32 random bytes), enrolled for automatic rotation",
    description: 'The answer is the credential metadata and `secret`, the only time the value is returned: hand it to the provider. 409 when the connection already has one.',
  })
  @ApiCreatedResponse({ description: 'the metadata and the secret (shown once)', schema: bodyOf('WebhookSecretCreated') })
  async create(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto, @Body() dto: CreateWebhookSecretDto) {
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
      '409 WEBHOOK_UPDATER_NOT_REGISTERED without an updater (nothing written: use …/secret/stage and …/secret/activate), 502 WEBHOOK_UPDATE_FAILED when the provider refused (the old secret stays current; retried later).',
  })
  @ApiOkResponse({ description: 'the version now current and until when the previous one verifies', schema: bodyOf('WebhookSecretRotation') })
  rotate(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto) {
    return this.webhooks.rotateConnection(target(ctx, p));
  }

  @Post('secret/stage')
  @RequireScopes(Scope.ROTATION_WRITE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'Stage a new webhook secret to install at the provider by hand (operator-confirmed rotation, step 1)',
    description:
      'Answers `secret` (the only time it is returned), `rotationId` and `activateBefore`. From now on verification accepts it as well as the current one (the provider may switch at any moment); ' +
      'the current one still signs. Install it in the provider’s dashboard, then POST …/secret/activate. Not activated before `activateBefore`: discarded. 409 WEBHOOK_SECRET_ALREADY_STAGED when one is staged (activate or discard it first).',
  })
  @ApiCreatedResponse({ description: 'the staged secret (shown once)', schema: bodyOf('StagedWebhookSecret') })
  stage(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto) {
    return this.webhooks.stageConnection(target(ctx, p));
  }

  @Post('secret/activate')
  @HttpCode(200)
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({
    summary: 'Activate the staged webhook secret once the provider has it (step 2)',
    description:
      'The staged secret becomes the current one (signs, verifies); the previous one keeps verifying through the overlap window (`previousLiveUntil`). ' +
      '409 WEBHOOK_NOTHING_STAGED, 409 WEBHOOK_STAGED_ROTATION_MISMATCH (another secret is staged than `rotationId`), 410 WEBHOOK_STAGED_SECRET_EXPIRED (waited too long: discarded, stage a new one).',
  })
  @ApiOkResponse({ description: 'the version now current and until when the previous one verifies', schema: bodyOf('WebhookSecretRotation') })
  @ApiBody({ type: StagedWebhookSecretDto, required: false })
  activate(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto, @Body() dto: StagedWebhookSecretDto) {
    return this.webhooks.activateConnection(target(ctx, p), dto?.rotationId);
  }

  @Post('secret/discard')
  @HttpCode(200)
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({ summary: 'Discard the staged webhook secret (it stops verifying; the current one stays current)', description: '409 WEBHOOK_NOTHING_STAGED when none is staged.' })
  @ApiOkResponse({ description: 'the discarded rotation and the version that stays current', schema: bodyOf('WebhookSecretDiscarded') })
  @ApiBody({ type: StagedWebhookSecretDto, required: false })
  discard(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto, @Body() dto: StagedWebhookSecretDto) {
    return this.webhooks.discardConnection(target(ctx, p), dto?.rotationId);
  }

  @Get('versions')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: 'The versions of the webhook secret and their states (pending, current, live, retired), newest first; never a value' })
  @ApiOkResponse({ description: 'newest first', schema: bodyOf('WebhookSecretVersions') })
  async versions(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto) {
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
  @ApiOkResponse({ description: 'the signature is valid', schema: bodyOf('WebhookVerified') })
  async verify(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto, @RawBody() body: Buffer, @Headers() headers: IncomingWebhookHeaders) {
    const out = await this.webhooks.verifyWebhook(target(ctx, p), body, headers);
    return { valid: true, version: out.version, msgId: out.msgId, timestamp: out.timestamp };
  }
}

function target(ctx: OperationContext, p: ConnectionParamsDto): WebhookTarget {
  return { tenantId: ctx.tenantId, integrationId: p.integrationId, connectionId: p.connectionId, context: ctx };
}
