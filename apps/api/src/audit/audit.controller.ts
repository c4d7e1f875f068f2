import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiPropertyOptional, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsEnum, IsNotEmpty, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { foldUuid, type OperationContext } from '@app/common';
import { AuditResult, AuditService } from '@app/audit';
import { RequireScopes } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { bodyOf } from '../http/openapi';
import { IsDateTime, QueryInt } from '../http/strict-input';
import { Query } from '../http/validated-params';

const toList = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.split(',').filter(Boolean) : value);

/**
 * Resources named in any case, as their routes take them: key names are case-insensitive and their rows are under
 * `key:<name in lower case>`; a credential id is a UUID (case-insensitive), its rows under the id in lower case, as
 * stored — an upper-case id found none. Folded as the libs fold the ids they audit (`foldUuid`: a UUID of any version,
 * not only the v4 the routes take — an in-process caller's refusal of another one is kept under it in lower case).
 */
const resourceInAnyCase = ({ value }: { value: unknown }) => (typeof value === 'string' && /^key:/i.test(value) ? value.toLowerCase() : foldUuid(value));

export class AuditQueryDto {
  @ApiPropertyOptional({ description: 'Credential id (in any case; a refusal an in-process caller left under an upper-case id before 2026-12-07 keeps that case: find it by time range or actor) or secret name; a key is `key:<name>` (its name in any case: rows are under the name in lower case, except rows written before 2026-12, which keep the case their caller typed)' })
  @IsOptional()
  @Transform(resourceInAnyCase)
  @IsString()
  @IsNotEmpty({ message: 'resource must not be empty' })
  @MaxLength(256)
  resource?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @IsNotEmpty({ message: 'actorId must not be empty' })
  @MaxLength(256)
  actorId?: string;

  // Checked here as the lib checks it (1..50 names), so an empty `action=` is the host's 400 naming the field, as any
  // other bad field, not the lib's AUDIT_INVALID_QUERY quoting its pattern.
  @ApiPropertyOptional({ description: 'Comma-separated actions (1 to 50), e.g. read,rotate' })
  @IsOptional()
  @Transform(toList)
  @IsArray()
  @ArrayMinSize(1, { message: 'action must name at least one action, like read or rotate' })
  @ArrayMaxSize(50, { message: 'action must name at most 50 actions' })
  @Matches(/^[a-z][a-z0-9_.:-]{0,63}$/, { each: true, message: 'action must be lowercase names like read or rotate' })
  action?: string[];

  @ApiPropertyOptional({ enum: AuditResult })
  @IsOptional()
  @IsEnum(AuditResult)
  result?: AuditResult;

  @ApiPropertyOptional({ type: String, format: 'date-time', description: 'Rows at or after this instant' })
  @IsOptional()
  @IsDateTime()
  from?: Date;

  @ApiPropertyOptional({ type: String, format: 'date-time', description: 'Rows before this instant (exclusive); before `from` is 400 AUDIT_INVALID_QUERY' })
  @IsOptional()
  @IsDateTime()
  to?: Date;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 500, default: 100 })
  @IsOptional()
  @QueryInt(1, 500)
  limit?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(512)
  cursor?: string;
}

/** The tenant's own audit trail: queries, and a verification of its hash chain. */
@ApiTags('audit')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireScopes(Scope.AUDIT_READ)
  @ApiOperation({ summary: "Query the caller tenant's audit rows (newest first, cursor-paged)" })
  @ApiOkResponse({ description: 'one page of rows', schema: bodyOf('AuditPage') })
  query(@OpContext() ctx: OperationContext, @Query() q: AuditQueryDto) {
    return this.audit.query({ ...q, tenantId: ctx.tenantId });
  }

  @Post('verify')
  @HttpCode(200)
  @RequireScopes(Scope.ADMIN)
  @ApiOperation({ summary: "Verify the caller tenant's hash chain; names the first bad row" })
  @ApiOkResponse({ description: 'the verdict (valid false names the first bad row)', schema: bodyOf('AuditVerification') })
  verify(@OpContext() ctx: OperationContext) {
    return this.audit.verify({ tenantId: ctx.tenantId });
  }
}
