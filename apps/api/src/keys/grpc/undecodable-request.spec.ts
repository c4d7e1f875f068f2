import type { ExecutionContext } from '@nestjs/common';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { firstValueFrom, of } from 'rxjs';
import { isKeysError, KeysErrorCode } from '@app/keys';
import { keysPackageDefinition } from './grpc-server';
import { RejectUndecodableRequests, UndecodableRequest } from './undecodable-request';

describe('undecodable gRPC requests', () => {
  const service = keysPackageDefinition()['credential_vault.keys.v1.KeysService'] as ServiceDefinition;
  const rpcContext = (data: unknown) => ({ switchToRpc: () => ({ getData: () => data }) }) as unknown as ExecutionContext;

  it('hands each handler an UndecodableRequest naming the expected message where protobuf refuses the bytes, and decodes the others as before', () => {
    const sign = service.Sign;
    // Field 15 with wire type 7, which does not exist; a varint cut short.
    expect(sign.requestDeserialize(Buffer.from([0x7f, 0x41]))).toStrictEqual(new UndecodableRequest('SignRequest'));
    expect(service.ListKeys.requestDeserialize(Buffer.from([0xff, 0xff]))).toStrictEqual(new UndecodableRequest('ListKeysRequest'));
    const bytes = sign.requestSerialize({ name: 'k', algorithm: 'ES256', digest: Buffer.alloc(32, 1) });
    expect(sign.requestDeserialize(bytes)).toEqual({ name: 'k', version: '', algorithm: 'ES256', digest: Buffer.alloc(32, 1) });
  });

  it('refuses an UndecodableRequest with KEYS_VALIDATION before the handler runs, and lets any other request through', async () => {
    const handler = { handle: jest.fn(() => of('answer')) };
    const refused = new RejectUndecodableRequests().intercept(rpcContext(new UndecodableRequest('SignRequest')), handler);
    const error: unknown = await firstValueFrom(refused).catch((e: unknown) => e);
    expect(isKeysError(error, KeysErrorCode.KEYS_VALIDATION)).toBe(true);
    expect((error as Error).message).toBe('the request is not a valid SignRequest message (keys.proto)');
    expect(handler.handle).not.toHaveBeenCalled();
    await expect(firstValueFrom(new RejectUndecodableRequests().intercept(rpcContext({ name: 'k' }), handler))).resolves.toBe('answer');
  });
});
