import { Controller, Get, Param, Req, Res } from '@nestjs/common';
import { withCallerSignal, type CallerResponse } from '@credential-vault/nest/common';
import { CredentialsService } from '@credential-vault/nest/credentials';

/** What your authentication (a guard of yours) leaves on the request. */
export interface SignedInRequest {
  user: { tenantId: string; id: string };
  ip?: string;
}

@Controller('connections')
export class ConnectionsController {
  constructor(private readonly credentials: CredentialsService) {}

  @Get(':credentialId/check')
  async check(@Param('credentialId') credentialId: string, @Req() req: SignedInRequest, @Res({ passthrough: true }) res: CallerResponse) {
    // Express's res or Fastify's reply: the vault read is dropped if the client has left by then.
    const ctx = withCallerSignal({ tenantId: req.user.tenantId, actor: { id: req.user.id, ip: req.ip } }, res);
    const { metadata } = await this.credentials.get(ctx, credentialId); // call the provider's API with its `value`
    return { integrationId: metadata.integrationId, connectionId: metadata.connectionId, maskedValue: metadata.maskedValue };
  }
}
