import { Injectable } from '@nestjs/common';

/**
 * Whether the process is draining before it closes (SIGTERM): readiness answers 503 so the load
 * balancer stops routing here, and every answer carries `Connection: close` so clients leave their
 * keep-alive connections instead of sending on them as the server closes (a reset).
 */
@Injectable()
export class ShutdownState {
  private drainingSince: number | null = null;

  get draining(): boolean {
    return this.drainingSince !== null;
  }

  startDraining(): void {
    this.drainingSince ??= Date.now();
  }
}
