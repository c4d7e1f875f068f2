import { ApiProperty } from '@nestjs/swagger';
import { Matches } from 'class-validator';
import { IDENTIFIER_PATTERN } from '@app/common';

/** The 400 message of an id that does not match IDENTIFIER_PATTERN (class-validator puts in the field's name). */
export const ID_MESSAGE = '$property must be 1–128 characters of letters, digits and . _ : @ -';

/**
 * The connection a route acts on (path: credentials, webhook secrets, OAuth): refused here, with one message on
 * every route that names one, before a lib sees it; declared in the OpenAPI document, so a generated client can fill them in.
 */
export class ConnectionParamsDto {
  @ApiProperty({ example: 'github', pattern: IDENTIFIER_PATTERN.source, description: 'The integration (e.g. github, stripe; on the OAuth routes a provider registered in OAUTH_PROVIDERS)' })
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  integrationId: string;

  @ApiProperty({ example: 'org_acme.main', pattern: IDENTIFIER_PATTERN.source, description: 'The connection of that integration (e.g. the account that authorized)' })
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  connectionId: string;
}
