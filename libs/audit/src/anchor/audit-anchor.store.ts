/** A copy of one tenant's chain head, kept outside the audit database. */
export interface AuditAnchor {
  tenantId: string;
  /** Sequence of the anchored row. */
  sequence: number;
  /** That row's hash (it covers, through `previousHash`, every earlier row of the chain). */
  hash: string;
  anchoredAt: Date;
  /**
   * The last sequence retention may have removed (0: none). Rows after it must all be there: a row
   * deleted past it (say, behind a forged retention checkpoint) is `truncated`. Only retention moves it
   * (it anchors its checkpoint before deleting); anchoring carries it forward. Absent in anchors written
   * before it existed, or by a store that does not keep it: then verify cannot tell such a deletion.
   */
  prunedThrough?: number;
}

/**
 * Where chain heads are anchored: somewhere an attacker with write access to the audit database
 * cannot also rewrite (the host uses Azure Key Vault; WORM storage or a signed log also fit).
 * Abstract class = DI token: provide an implementation globally to enable anchoring.
 */
export abstract class AuditAnchorStore {
  /** Records `anchor` as the tenant's latest. */
  abstract write(anchor: AuditAnchor): Promise<void>;
  /** The tenant's latest anchor, or null when it has none. */
  abstract read(tenantId: string): Promise<AuditAnchor | null>;
  /** Every tenant that has an anchor (so a chain deleted outright is still noticed). */
  abstract tenants(): Promise<string[]>;

  /**
   * Whether `error`, from `read` or `tenants`, means the store answered and an anchor it holds cannot be used —
   * deleted (but not gone without a trace), corrupt, disabled — rather than that the store could not be asked now.
   * `verify` answers the first with `AuditAnchorDamagedError` (5008: no retry mends it, and it may be tampering),
   * anything else with `AuditAnchorUnavailableError` (5006, transient). Optional (a store written before it, or
   * one that `implements` this class, still compiles): without it no failure is.
   */
  isUnusable?(error: unknown): boolean;
}
