import { Injectable } from '@nestjs/common';
import type { IdleConnections } from '../http/idle-connections';

/**
 * Whether the process is draining before it closes (SIGTERM, SIGINT): readiness answers 503 so the load
 * balancer stops routing here, and every answer carries `Connection: close` so clients leave their
 * keep-alive connections instead of sending on them as the server closes (a reset); those that send
 * nothing are closed early in the drain.
 */
@Injectable()
export class ShutdownState {
  private drainingSince: number | null = null;
  /** The HTTP server's connections (set by configureApp), whose silent ones the drain closes. */
  connections?: IdleConnections;

  get draining(): boolean {
    return this.drainingSince !== null;
  }

  startDraining(): void {
    this.drainingSince ??= Date.now();
  }
}
