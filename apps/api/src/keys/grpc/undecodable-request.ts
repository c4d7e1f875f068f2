import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { PackageDefinition, ServiceDefinition } from '@grpc/proto-loader';
import { Observable, throwError } from 'rxjs';
import { KeysError, KeysErrorCode } from '@app/keys';

/**
 * What a handler gets instead of a request whose bytes are not a message of the method's request type. grpc-js
 * answers a throwing `requestDeserialize` with INTERNAL by itself — the server's fault on every dashboard and in
 * CredentialVaultGrpcErrors, for any client that sends garbage —, so the deserializer hands this on instead and
 * RejectUndecodableRequests refuses it once the caller is authenticated. It holds no byte of the message.
 */
export class UndecodableRequest {
  constructor(
    /** The request message's name in keys.proto (`SignRequest`): all the answer says about what was expected. */
    readonly messageType: string,
  ) {}
}

/**
 * The package definition with each method's `requestDeserialize` handing on an UndecodableRequest where protobuf
 * refuses the bytes (the decoder's error is dropped: its text may quote offsets into the message, never needed).
 */
export function markUndecodableRequests(definition: PackageDefinition): PackageDefinition {
  for (const entry of Object.values(definition)) {
    // Message and enum definitions have a `format`; a service is a record of its methods.
    if ('format' in entry) continue;
    for (const method of Object.values(entry as ServiceDefinition)) {
      const decode = method.requestDeserialize;
      const undecodable = new UndecodableRequest(messageTypeName(method.requestType.type));
      method.requestDeserialize = (bytes) => {
        try {
          return decode(bytes);
        } catch {
          return undecodable;
        }
      };
    }
  }
  return definition;
}

function messageTypeName(descriptor: object): string {
  const name = (descriptor as { name?: unknown }).name;
  return typeof name === 'string' && name !== '' ? name : 'request message';
}

/**
 * Refuses an UndecodableRequest before the handler reads it: INVALID_ARGUMENT with KEYS_VALIDATION (10005), a
 * 400 over HTTP, as a body that is not JSON is. Nest runs interceptors after guards, so the caller is authenticated,
 * authorised and rate-limited first, as with any request: a stranger's garbage is UNAUTHENTICATED, like its other calls.
 */
@Injectable()
export class RejectUndecodableRequests implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request: unknown = context.switchToRpc().getData();
    if (request instanceof UndecodableRequest) {
      return throwError(() => new KeysError(KeysErrorCode.KEYS_VALIDATION, `the request is not a valid ${request.messageType} message (keys.proto)`));
    }
    return next.handle();
  }
}
