import { Controller, Get, Header, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiPropertyOptional, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';
import type { OperationContext } from '@app/common';
import { OAuthRefreshService, OAuthTokenResponse } from '@app/oauth-refresh';
import { RequireScopes } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { ConnectionParamsDto } from '../http/connection-params.dto';
import { bodyOf } from '../http/openapi';
import { QueryInt } from '../http/strict-input';
import { Body, Param, Query } from '../http/validated-params';

/**
 * A token endpoint's response after the code grant (RFC 6749 §5.1), for the OpenAPI document only:
 * providers add their own fields, so the body is not run through the strict global DTO validation;
 * the OAuth lib validates what it uses and stores nothing else. It takes null as absent where a provider
 * may send it for what it does not give (no refresh token, no lifetime): those fields say `nullable`, as
 * the host's rule for explicit nulls has it.
 */
export class TokenResponseDoc {
  @ApiProperty() access_token: string;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'null or absent: the stored refresh token is kept' }) refresh_token?: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true, description: "Seconds; null or absent: the provider's default lifetime" }) expires_in?: number | null;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'Seconds; null or absent: the refresh token is kept without an expiry' }) refresh_token_expires_in?: number | null;
  @ApiPropertyOptional() scope?: string;
  @ApiPropertyOptional() token_type?: string;
}

export class TokenRejectedDto {
  @ApiPropertyOptional({ description: 'The access token the provider refused; if already replaced, nothing is refreshed' })
  @IsOptional()
  @IsString()
  @MaxLength(25_600)
  accessToken?: string;
}

export class AccessTokenQueryDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: 86_400_000, description: "The token must stay valid at least this long (ms). One at or beyond the lifetime of the connection's tokens, which no refresh meets, leaves the refresh-ahead window in force (see expiresAt)" })
  @IsOptional()
  @QueryInt(0, 86_400_000)
  minValidityMs?: number;
}

/** OAuth connections: store what the code grant gave, hand out access tokens refreshed ahead of expiry. */
@ApiTags('oauth')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/oauth/connections/:integrationId/:connectionId')
export class OAuthController {
  constructor(private readonly oauth: OAuthRefreshService) {}

  @Post('tokens')
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  @ApiOperation({ summary: 'Store the tokens of a completed authorization (returns credential ids, never tokens)' })
  @ApiBody({ type: TokenResponseDoc })
  @ApiCreatedResponse({ description: 'the credentials now holding the tokens', schema: bodyOf('OAuthStoredTokens') })
  store(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto, @Body() body: Record<string, unknown>) {
    return this.oauth.storeOAuthCredentials(ctx, p.integrationId, p.connectionId, body as unknown as OAuthTokenResponse);
  }

  @Get('access-token')
  @RequireScopes(Scope.CREDENTIALS_READ_VALUE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'A valid access token, refreshed first when it is about to expire' })
  @ApiOkResponse({ description: 'the access token', schema: bodyOf('OAuthAccessToken') })
  accessToken(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto, @Query() q: AccessTokenQueryDto) {
    return this.oauth.getAccessToken(ctx, p.integrationId, p.connectionId, { minValidityMs: q.minValidityMs });
  }

  @Post('token-rejected')
  @HttpCode(200)
  @RequireScopes(Scope.CREDENTIALS_READ_VALUE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: "Report that the provider answered 401 to the token: forces one refresh, returns the new token" })
  @ApiOkResponse({ description: 'the new access token', schema: bodyOf('OAuthAccessToken') })
  rejected(@OpContext() ctx: OperationContext, @Param() p: ConnectionParamsDto, @Body() body: TokenRejectedDto) {
    return this.oauth.reportTokenRejected(ctx, p.integrationId, p.connectionId, body.accessToken);
  }
}
