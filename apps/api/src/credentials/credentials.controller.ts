import { Controller, Delete, Get, Header, HttpCode, Patch, Post } from '@nestjs/common';
import { RouteSchema } from '@nestjs/platform-fastify';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { OperationContext } from '@app/common';
import { CredentialRevokeIncompleteError, CredentialsService, CredentialStatus, CredentialValidationError, type CredentialMetadata } from '@app/credentials';
import { RevocationService } from '@app/rotation';
import { RequireScopes, RequireScopesWhenBody } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { ConnectionParamsDto } from '../http/connection-params.dto';
import { bodyOf } from '../http/openapi';
import { PositiveIntParam } from '../http/strict-input';
import { Body, CredentialIdParam, Param, Query } from '../http/validated-params';
import { CREDENTIAL_METADATA_SCHEMA, CREDENTIAL_WITH_VALUE_SCHEMA } from './credential-response.schemas';
import {
  DeleteManyDto,
  ExpectedVersionQueryDto,
  ReadValueQueryDto,
  ExpiringQueryDto,
  IncludeInternalQueryDto,
  ListCredentialsQueryDto,
  RollbackCredentialDto,
  RotateCredentialDto,
  StoreCredentialDto,
  UpdateCredentialDto,
} from './credentials.dto';

const Id = () => CredentialIdParam();

/** The reason a PATCH to `status: revoked` records when its body gives none (the revoke route requires one). */
export const PATCH_REVOKE_REASON = 'status set to revoked through PATCH /v1/credentials/{id} (no reason given)';

/**
 * Tenant-scoped credentials API. Thin: the tenant comes from the authenticated principal and every
 * rule lives in CredentialsService. Value-returning routes need their own scope and are never cached.
 */
@ApiTags('credentials')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/credentials')
export class CredentialsController {
  constructor(
    private readonly credentials: CredentialsService,
    private readonly revocation: RevocationService,
  ) {}

  @Post()
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  @ApiOperation({ summary: 'Store a new credential (metadata returned, never the value)' })
  @ApiCreatedResponse({ description: 'stored', schema: bodyOf('CredentialMetadata') })
  store(@OpContext() ctx: OperationContext, @Body() dto: StoreCredentialDto) {
    return this.credentials.store(ctx, dto);
  }

  @Get()
  @RequireScopes(Scope.CREDENTIALS_READ)
  @ApiOperation({ summary: 'List credentials (metadata), filtered, cursor-paged' })
  @ApiOkResponse({ description: 'one page', schema: bodyOf('CredentialPage') })
  list(@OpContext() ctx: OperationContext, @Query() q: ListCredentialsQueryDto) {
    return this.credentials.list(ctx, q);
  }

  @Get('expiring')
  @RequireScopes(Scope.CREDENTIALS_READ)
  @ApiOperation({
    summary: 'Credentials expiring within `days` (default 30)',
    description:
      'Not paged: the first 500, soonest first, expired ones included; `truncated` is true when more matched. All of them: GET /v1/credentials?expiringBefore= (paged).',
  })
  @ApiOkResponse({ description: 'soonest first; truncated: more matched than the 500 answered', schema: bodyOf('CredentialList') })
  expiring(@OpContext() ctx: OperationContext, @Query() q: ExpiringQueryDto) {
    return this.credentials.listExpiringBounded(ctx, q.days ?? 30, undefined, { includeInternal: q.includeInternal });
  }

  @Get('statistics')
  @RequireScopes(Scope.CREDENTIALS_READ)
  @ApiOperation({ summary: 'Totals by type and integration, expiring within 7 and 30 days' })
  @ApiOkResponse({ description: 'the totals', schema: bodyOf('CredentialStatistics') })
  statistics(@OpContext() ctx: OperationContext, @Query() q: IncludeInternalQueryDto) {
    return this.credentials.statistics(ctx, { includeInternal: q.includeInternal });
  }

  @Post('delete-batch')
  @HttpCode(200)
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  @ApiOperation({ summary: 'Delete several credentials; reports which were not found. A malformed id fails the whole batch (400, nothing deleted)' })
  @ApiOkResponse({ description: 'what was deleted and what was not found', schema: bodyOf('BatchDeleteResult') })
  deleteMany(@OpContext() ctx: OperationContext, @Body() dto: DeleteManyDto) {
    return this.credentials.deleteMany(ctx, dto.ids);
  }

  @Get(':id')
  @RequireScopes(Scope.CREDENTIALS_READ)
  @ApiOperation({ summary: 'Metadata of one credential' })
  @ApiOkResponse({ description: 'the metadata', schema: bodyOf('CredentialMetadata') })
  @RouteSchema({ response: { 200: CREDENTIAL_METADATA_SCHEMA } })
  getMetadata(@OpContext() ctx: OperationContext, @Id() id: string) {
    // From the in-process cache: every change evicts it on every replica, as it evicts cached values.
    return this.credentials.getMetadata(ctx, id, { cached: true });
  }

  @Get(':id/value')
  @RequireScopes(Scope.CREDENTIALS_READ_VALUE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'The current value and its metadata (audited)',
    description: 'A revoked credential answers 409 REVOKED; an expired one 409 EXPIRED unless allowExpired=true.',
  })
  @ApiOkResponse({ description: 'the value and its metadata', schema: bodyOf('CredentialWithValue') })
  @RouteSchema({ response: { 200: CREDENTIAL_WITH_VALUE_SCHEMA } })
  getValue(@OpContext() ctx: OperationContext, @Id() id: string, @Query() q: ReadValueQueryDto) {
    return this.credentials.get(ctx, id, { allowExpired: q.allowExpired === true });
  }

  @Get(':id/versions')
  @RequireScopes(Scope.CREDENTIALS_READ)
  @ApiOperation({ summary: 'Versions of a credential (no values)' })
  @ApiOkResponse({ description: 'every version', schema: bodyOf('CredentialVersionList') })
  async versions(@OpContext() ctx: OperationContext, @Id() id: string) {
    return { items: await this.credentials.listVersions(ctx, id) };
  }

  @Get(':id/versions/:version/value')
  @ApiParam({ name: 'version', schema: { type: 'integer', minimum: 1 } })
  @RequireScopes(Scope.CREDENTIALS_READ_VALUE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'The value of one version (audited)',
    description: "A revoked credential answers 409 REVOKED; a version past its own expiry 409 EXPIRED unless allowExpired=true.",
  })
  @ApiOkResponse({ description: "the version's value, the version and the credential's metadata", schema: bodyOf('CredentialVersionWithValue') })
  getVersion(@OpContext() ctx: OperationContext, @Id() id: string, @PositiveIntParam('version') version: number, @Query() q: ReadValueQueryDto) {
    return this.credentials.getVersion(ctx, id, version, { allowExpired: q.allowExpired === true });
  }

  @Patch(':id')
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  // Revoking is what POST /v1/rotation/revoke does: it needs that route's scope here too.
  @RequireScopesWhenBody('status', CredentialStatus.REVOKED, Scope.CREDENTIALS_REVOKE)
  @ApiOperation({
    summary: 'Update tags, expiry or status (compare-and-set with expectedVersion)',
    description:
      'Setting `status: revoked` is the revoke of `POST /v1/rotation/revoke` for this credential (Key Vault versions disabled, ' +
      'audited as critical with `reason` and `severity`, `credential.revoked` event, history row); it also needs credentials:revoke ' +
      '(403 without it, nothing changed), and goes alone (400 with tags or expiresAt). 409 `REVOKE_INCOMPLETE`: revoked, but ' +
      'some Key Vault versions may still be enabled; send it again to finish (with expectedVersion, the rowVersion it has now: the ' +
      'revoke moved it). On a credential already revoked it finishes what is left: 200, no second revoke row or event. ' +
      'A change of tags, expiresAt or status that changes nothing (each given field equal to the stored one) writes nothing: ' +
      '200 with the unchanged metadata (same rowVersion), no audit row, no event.',
  })
  @ApiOkResponse({ description: 'the metadata after the change', schema: bodyOf('CredentialMetadata') })
  async update(@OpContext() ctx: OperationContext, @Id() id: string, @Body() dto: UpdateCredentialDto): Promise<CredentialMetadata> {
    const { reason, severity, ...change } = dto;
    if (change.status !== CredentialStatus.REVOKED) {
      if (reason !== undefined || severity !== undefined) throw new CredentialValidationError('reason and severity go with status: revoked only; nothing was changed', 'reason');
      return this.credentials.updateMetadata(ctx, id, change);
    }
    // The emergency revoke, exactly as POST /v1/rotation/revoke makes it: not a bare status change, which would leave
    // the Key Vault versions enabled, and write no revoke audit row, event or history row.
    if (change.tags !== undefined || change.expiresAt !== undefined) {
      throw new CredentialValidationError('status: revoked is a revoke: send it without tags or expiresAt (change those in another request); nothing was changed', 'status');
    }
    const result = await this.revocation.revoke(ctx, { credentialId: id }, { reason: reason ?? PATCH_REVOKE_REASON, severity, expectedVersion: change.expectedVersion });
    // Revoked, but some vault versions may still be enabled: the revoke route lists it in vaultFailures; here, a 409 to retry.
    // The list does not say why (a vault failure, or writes that kept committing), so neither does the answer.
    if (result.vaultFailures.includes(id)) throw new CredentialRevokeIncompleteError(id, 'versions-not-all-disabled');
    return this.credentials.getMetadata(ctx, id);
  }

  @Post(':id/rotate')
  @HttpCode(200)
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  @ApiOperation({ summary: 'Write a new value as a new version of the same credential' })
  @ApiOkResponse({ description: 'the metadata of the new version', schema: bodyOf('CredentialMetadata') })
  rotate(@OpContext() ctx: OperationContext, @Id() id: string, @Body() dto: RotateCredentialDto) {
    return this.credentials.rotate(ctx, id, dto.value, { expectedVersion: dto.expectedVersion, expiresAt: dto.expiresAt });
  }

  @Post(':id/rollback')
  @HttpCode(200)
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  @ApiOperation({ summary: 'Make an earlier version current again (as a new version)' })
  @ApiOkResponse({ description: 'the metadata of the new version', schema: bodyOf('CredentialMetadata') })
  rollback(@OpContext() ctx: OperationContext, @Id() id: string, @Body() dto: RollbackCredentialDto) {
    return this.credentials.rollback(ctx, id, dto.version, { expectedVersion: dto.expectedVersion });
  }

  @Delete(':id')
  @HttpCode(204)
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  @ApiOperation({ summary: 'Delete a credential' })
  @ApiNoContentResponse({ description: 'deleted' })
  async remove(@OpContext() ctx: OperationContext, @Id() id: string, @Query() q: ExpectedVersionQueryDto): Promise<void> {
    await this.credentials.delete(ctx, id, { expectedVersion: q.expectedVersion });
  }
}

/** The tenant's "integrations" screen: one row per connection with a status and a masked value. */
@ApiTags('connections')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/connections')
export class ConnectionsController {
  constructor(private readonly credentials: CredentialsService) {}

  @Get()
  @RequireScopes(Scope.CREDENTIALS_READ)
  @ApiOperation({ summary: 'One row per connection: status, earliest expiry, credentials with masked values' })
  @ApiOkResponse({ description: 'the connections', schema: bodyOf('ConnectionList') })
  async list(@OpContext() ctx: OperationContext, @Query() q: IncludeInternalQueryDto) {
    return { items: await this.credentials.listConnections(ctx, { includeInternal: q.includeInternal }) };
  }

  @Delete(':integrationId/:connectionId')
  @HttpCode(200)
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  @ApiOperation({ summary: 'Delete every credential of one connection' })
  @ApiOkResponse({ description: 'what was deleted', schema: bodyOf('BatchDeleteResult') })
  remove(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto) {
    return this.credentials.deleteByConnection(ctx, p.integrationId, p.connectionId);
  }
}
