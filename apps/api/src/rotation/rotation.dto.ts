import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsEnum, IsIn, IsInt, IsOptional, IsString, IsUUID, Matches, Max, MaxLength, Min, MinLength, ValidateIf } from 'class-validator';
import { CredentialType, IDENTIFIER_PATTERN } from '@app/credentials';
import { POLICY_LEVELS, REVOKE_SEVERITIES, ROTATION_MODES, type PolicyLevel, type RevokeSeverity, type RotationMode } from '@app/rotation';
import { ExpectedVersionDto } from '../credentials/credentials.dto';
import { ID_MESSAGE } from '../http/connection-params.dto';
import { BodyInt, IsDateTime, LowerCaseUuid, QueryInt } from '../http/strict-input';

const DAYS_MESSAGE = '$property must be an integer number of days from 0 to 3650 (0: never), or null to inherit';
/** Key Vault's limit is 25 KB; the lib checks bytes exactly, this only stops absurd bodies early. */
const MAX_VALUE_CHARS = 25_600;

/** A policy's scope in a query string (`DELETE`, `GET …/policies/scope`). */
export class PolicyScopeQueryDto {
  @ApiProperty({ enum: POLICY_LEVELS })
  @IsIn(POLICY_LEVELS as string[], { message: `level must be one of: ${POLICY_LEVELS.join(', ')}` })
  level: PolicyLevel;

  @ApiPropertyOptional({ description: 'The integration id (level integration) or the credential id (level credential)' })
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  target?: string;

  @ApiPropertyOptional({ enum: CredentialType, description: 'tenant and integration levels: only this type' })
  @IsOptional()
  @IsEnum(CredentialType, { message: `credentialType must be one of: ${Object.values(CredentialType).join(', ')}` })
  credentialType?: CredentialType;
}

export class SetPolicyDto extends PolicyScopeQueryDto {
  @ApiPropertyOptional({ type: 'integer', nullable: true, minimum: 0, maximum: 3650, description: 'Days after the last rotation when one falls due; 0 never; null inherits' })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsInt({ message: DAYS_MESSAGE })
  @Min(0, { message: DAYS_MESSAGE })
  @Max(3650, { message: DAYS_MESSAGE })
  rotateAfterDays?: number | null;

  @ApiPropertyOptional({ type: 'integer', nullable: true, minimum: 0, maximum: 3650, description: 'Days before expiry when warnings start (30/14/7/1 thresholds up to this); 0 none; null inherits' })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsInt({ message: DAYS_MESSAGE })
  @Min(0, { message: DAYS_MESSAGE })
  @Max(3650, { message: DAYS_MESSAGE })
  warnBeforeDays?: number | null;

  @ApiPropertyOptional({ enum: ROTATION_MODES, nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsIn(ROTATION_MODES as string[], { message: `rotation must be one of: ${ROTATION_MODES.join(', ')}, or null` })
  rotation?: RotationMode | null;

  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Compare-and-set: the policy rowVersion you last read (0: must not exist yet)' })
  @IsOptional()
  @BodyInt(0)
  expectedVersion?: number;
}

/** `expectedVersion`: the credential's rowVersion (compare-and-set), as on the credentials routes. */
export class ManualRotateDto extends ExpectedVersionDto {
  @ApiPropertyOptional({ description: "The new value (≤ 25 KB). Omit it to let the integration's RotationHandler or the type's generator make one." })
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_VALUE_CHARS)
  value?: string;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsDateTime({ nullable: true })
  expiresAt?: Date | null;

  @ApiPropertyOptional({ maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  reason?: string;
}

export class ManualRollbackDto extends ExpectedVersionDto {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The version whose value becomes current again (as a new version)' })
  @BodyInt(1)
  version: number;

  @ApiPropertyOptional({ maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  reason?: string;
}

/** Exactly one target: a credential, a connection (integrationId + connectionId), an integration, or the tenant. */
export class RevokeDto {
  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @LowerCaseUuid()
  @IsUUID('4', { message: 'credentialId must be a credential id (a UUID)' })
  credentialId?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  integrationId?: string;

  @ApiPropertyOptional({ description: 'With integrationId: only this connection' })
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  connectionId?: string;

  @ApiPropertyOptional({ description: 'true: every credential of the tenant' })
  @IsOptional()
  @IsBoolean()
  tenant?: boolean;

  @ApiProperty({ maxLength: 500, description: 'Why (audited, in the event and the history)' })
  @IsString()
  @MinLength(1)
  @MaxLength(500)
  reason: string;

  @ApiPropertyOptional({ enum: REVOKE_SEVERITIES, default: 'critical' })
  @IsOptional()
  @IsIn(REVOKE_SEVERITIES as string[], { message: `severity must be one of: ${REVOKE_SEVERITIES.join(', ')}` })
  severity?: RevokeSeverity;
}

export class UnrevokeDto {
  @ApiProperty({ maxLength: 500 })
  @IsString()
  @MinLength(1)
  @MaxLength(500)
  reason: string;
}

export class DaysQueryDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: 3650 })
  @IsOptional()
  @QueryInt(0, 3650)
  days?: number;
}

export class HistoryQueryDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 1000, default: 100 })
  @IsOptional()
  @QueryInt(1, 1000)
  limit?: number;
}
