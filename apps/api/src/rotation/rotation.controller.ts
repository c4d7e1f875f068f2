import { BadRequestException, Controller, Delete, Get, HttpCode, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { OperationContext } from '@app/common';
import { RevocationService, RotationPolicyService, RotationQueries, RotationService, type RevokeTarget } from '@app/rotation';
import { RequireScopes } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { DaysQueryDto, HistoryQueryDto, ManualRollbackDto, ManualRotateDto, PolicyScopeQueryDto, RevokeDto, SetPolicyDto, UnrevokeDto } from './rotation.dto';
import { bodyOf } from '../http/openapi';
import { Body, CredentialIdParam, Query } from '../http/validated-params';

const Id = () => CredentialIdParam();

/**
 * Tenant-scoped rotation API: policies, manual rotation, emergency revoke, what needs attention.
 * Thin: the tenant comes from the authenticated principal, every rule lives in the rotation lib.
 * Scopes: `rotation:read` (policies, history, expiries, due), `rotation:write` (policies, rotate,
 * rollback), `credentials:revoke` (revoke, un-revoke).
 */
@ApiTags('rotation')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/rotation')
export class RotationController {
  constructor(
    private readonly policies: RotationPolicyService,
    private readonly rotation: RotationService,
    private readonly revocation: RevocationService,
    private readonly queries: RotationQueries,
  ) {}

  @Get('policies')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: "The tenant's policy overrides (the defaults per type apply where none is set)" })
  @ApiOkResponse({ description: 'every override of the tenant', schema: bodyOf('RotationPolicyOverrideList') })
  async listPolicies(@OpContext() ctx: OperationContext) {
    return { items: await this.policies.list(ctx) };
  }

  @Get('policies/scope')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: 'The override at one scope (404 when none)' })
  @ApiOkResponse({ description: 'the override', schema: bodyOf('RotationPolicyOverride') })
  getPolicy(@OpContext() ctx: OperationContext, @Query() q: PolicyScopeQueryDto) {
    return this.policies.get(ctx, q);
  }

  @Put('policies')
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({
    summary: 'Create or change the override at a scope (null clears a field); audited as policy_change',
    description: 'A change of an existing override whose given fields all equal the stored ones writes nothing: 200 with the stored override (same rowVersion), no audit row, no event.',
  })
  @ApiOkResponse({ description: 'the override as stored', schema: bodyOf('RotationPolicyOverride') })
  setPolicy(@OpContext() ctx: OperationContext, @Body() dto: SetPolicyDto) {
    const { expectedVersion, ...input } = dto;
    return this.policies.set(ctx, input, { expectedVersion });
  }

  @Delete('policies')
  @HttpCode(204)
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({ summary: 'Remove the override at a scope; audited as policy_change' })
  @ApiNoContentResponse({ description: 'removed' })
  async removePolicy(@OpContext() ctx: OperationContext, @Query() q: PolicyScopeQueryDto): Promise<void> {
    await this.policies.remove(ctx, q);
  }

  @Get('credentials/:id/policy')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: 'The effective policy of a credential and, per field, the level that won' })
  @ApiOkResponse({ description: 'the effective policy', schema: bodyOf('EffectiveRotationPolicy') })
  effectivePolicy(@OpContext() ctx: OperationContext, @Id() id: string) {
    return this.policies.effectivePolicy(ctx, id);
  }

  @Post('credentials/:id/rotate')
  @HttpCode(200)
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({ summary: "Rotate now: the given value, else the integration's handler, else the type's generator (409 NO_ROTATION_HANDLER when none)" })
  @ApiOkResponse({ description: 'the metadata of the new version, the version it replaced and how the value was obtained', schema: bodyOf('RotatedCredential') })
  async rotate(@OpContext() ctx: OperationContext, @Id() id: string, @Body() dto: ManualRotateDto) {
    const out = await this.rotation.rotate(ctx, id, dto);
    return { ...out.metadata, fromVersion: out.fromVersion, method: out.method };
  }

  @Post('credentials/:id/rollback')
  @HttpCode(200)
  @RequireScopes(Scope.ROTATION_WRITE)
  @ApiOperation({ summary: 'Make an earlier version current again (as a new version), with a history entry' })
  @ApiOkResponse({ description: 'the metadata of the new version', schema: bodyOf('CredentialMetadata') })
  rollback(@OpContext() ctx: OperationContext, @Id() id: string, @Body() dto: ManualRollbackDto) {
    return this.rotation.rollback(ctx, id, dto.version, { reason: dto.reason, expectedVersion: dto.expectedVersion });
  }

  @Get('credentials/:id/history')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: 'Rotations, rollbacks, revokes and un-revokes of a credential: who, when, why, from which version' })
  @ApiOkResponse({ description: 'newest first', schema: bodyOf('RotationHistory') })
  async history(@OpContext() ctx: OperationContext, @Id() id: string, @Query() q: HistoryQueryDto) {
    return { items: await this.rotation.historyOf(ctx, id, q.limit ?? 100) };
  }

  @Get('credentials/:id/pending')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({ summary: "The credential's pending rotation value, if any: a value its handler minted whose vault write failed or whose process died before the commit, written by the next rotation (references only, never the value)" })
  @ApiOkResponse({ description: 'pendingRotation: null when there is none', schema: bodyOf('PendingRotationState') })
  async pendingRotation(@OpContext() ctx: OperationContext, @Id() id: string) {
    return { credentialId: id, pendingRotation: await this.rotation.pendingRotation(ctx, id) };
  }

  @Post('revoke')
  @HttpCode(200)
  @RequireScopes(Scope.CREDENTIALS_REVOKE)
  @ApiOperation({
    summary: 'Emergency revoke of a credential, a connection, an integration or the whole tenant',
    description: 'Reads are refused from the moment this answers (409 REVOKED), Key Vault versions are disabled; audited as critical.',
  })
  @ApiOkResponse({ description: 'what was revoked, and what to revoke again', schema: bodyOf('RevokeResult') })
  revoke(@OpContext() ctx: OperationContext, @Body() dto: RevokeDto) {
    return this.revocation.revoke(ctx, revokeTarget(dto), { reason: dto.reason, severity: dto.severity });
  }

  @Post('credentials/:id/unrevoke')
  @HttpCode(200)
  @RequireScopes(Scope.CREDENTIALS_REVOKE)
  @ApiOperation({ summary: 'Undo a revoke (explicit, audited): Key Vault versions enabled again, then the credential is active' })
  @ApiOkResponse({ description: 'the metadata, active again', schema: bodyOf('CredentialMetadata') })
  unrevoke(@OpContext() ctx: OperationContext, @Id() id: string, @Body() dto: UnrevokeDto) {
    return this.revocation.unrevoke(ctx, id, { reason: dto.reason });
  }

  @Get('expiries')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({
    summary: 'Credentials expiring within `days` (default 30), expired ones included, soonest first',
    description: 'Not paged: the first 1000; `truncated` is true when more matched. All of them: GET /v1/credentials?expiringBefore= (paged).',
  })
  @ApiOkResponse({ description: 'soonest first; truncated: more matched than the 1000 answered', schema: bodyOf('UpcomingExpiryList') })
  expiries(@OpContext() ctx: OperationContext, @Query() q: DaysQueryDto) {
    return this.queries.upcomingExpiriesBounded(ctx, q.days ?? 30);
  }

  @Get('due')
  @RequireScopes(Scope.ROTATION_READ)
  @ApiOperation({
    summary: 'Rotations due now or within `days` (default 0), soonest first',
    description: 'Not paged: the 1000 due soonest; `truncated` is true when more are due.',
  })
  @ApiOkResponse({ description: 'soonest first; truncated: more are due than the 1000 answered', schema: bodyOf('DueRotationList') })
  due(@OpContext() ctx: OperationContext, @Query() q: DaysQueryDto) {
    return this.queries.dueRotationsBounded(ctx, q.days ?? 0);
  }
}

/** Exactly one target; never echoes the request. */
function revokeTarget(dto: RevokeDto): RevokeTarget {
  const given = [dto.credentialId !== undefined, dto.integrationId !== undefined, dto.tenant === true].filter(Boolean).length;
  if (given !== 1 || (dto.connectionId !== undefined && dto.integrationId === undefined) || dto.tenant === false) {
    throw new BadRequestException('give exactly one target: credentialId, integrationId (with an optional connectionId), or tenant: true');
  }
  if (dto.credentialId !== undefined) return { credentialId: dto.credentialId };
  if (dto.integrationId !== undefined) return { integrationId: dto.integrationId, connectionId: dto.connectionId };
  return { tenant: true };
}
