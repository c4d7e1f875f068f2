import { Module } from '@nestjs/common';
import { KeysModule } from '@app/keys';
import { AuthModule } from '../auth/auth.module';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { KeysGrpcController } from './grpc/keys-grpc.controller';
import { KeyChangeFanOutModule } from './key-change-fan-out.provider';
import { GrpcAuthGuard } from './grpc/grpc-auth.guard';
import { DeletedKeysController, KeysController } from './keys.controller';

/**
 * The keys lib configured from the host's config, and its surfaces: HTTP under /v1/keys and the
 * gRPC service (its handlers only serve when bootstrap connects the gRPC server, GRPC_ENABLED).
 */
@Module({
  imports: [
    AuthModule,
    KeysModule.forRootAsync({
      // Key changes reach the other replicas' key caches through the credentials cache's fan-out.
      imports: [KeyChangeFanOutModule],
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({
        // Vault key names share the secrets' prefix: `<prefix>-key-<tenant hash>-<name>`.
        namePrefix: c.credentials.vaultSecretPrefix,
        verify: c.keys.verify,
        allowRsa1_5: c.keys.allowRsa1_5,
        keyCacheTtlMs: c.keys.cacheTtlMs,
      }),
    }),
  ],
  controllers: [KeysController, DeletedKeysController, KeysGrpcController],
  providers: [GrpcAuthGuard],
})
export class KeysHttpModule {}
