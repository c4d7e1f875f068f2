import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsEnum, IsOptional, IsUUID } from 'class-validator';
import { ValueStoreKind } from '@app/credentials';
import { LowerCaseUuid } from '../http/strict-input';

export class CreateWebhookSecretDto {
  @ApiPropertyOptional({ enum: ValueStoreKind, description: "Where the value is kept (default: the integration's or the host's default)" })
  @IsOptional()
  @IsEnum(ValueStoreKind, { message: `valueStore must be one of: ${Object.values(ValueStoreKind).join(', ')}` })
  valueStore?: ValueStoreKind;
}

/** Which staged secret an activate or discard means (optional: the one staged). */
export class StagedWebhookSecretDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'The `rotationId` answered by …/secret/stage; given, the call fails (409) if another secret is staged now' })
  @IsOptional()
  @LowerCaseUuid()
  @IsUUID('all', { message: 'rotationId must be a UUID' })
  rotationId?: string;
}
