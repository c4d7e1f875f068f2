import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  isKeyVaultError,
  KeyVaultError,
  KeyVaultErrorCode,
} from "@app/key-vault";
import { ConfigValidationError } from "./app.config";
import {
  findKeyVaultReferences,
  KeyVaultReference,
  loadAppConfigResolvingReferences,
  resolveKeyVaultReferences,
} from "./keyvault-references";

const notFound = () => {
  const e = Object.create(KeyVaultError.prototype) as KeyVaultError;
  Object.assign(e, {
    code: KeyVaultErrorCode.KEY_NOT_FOUND,
    message: "not found",
  });
  return e;
};

/** A reader over a fixed map, recording what it was asked. */
function fakeVault(secrets: Record<string, string>) {
  const asked: KeyVaultReference[] = [];
  const read = async (ref: KeyVaultReference) => {
    asked.push(ref);
    const key = ref.version
      ? `${ref.secretName}/${ref.version}`
      : ref.secretName;
    if (!(key in secrets)) throw notFound();
    return secrets[key];
  };
  return { read, asked };
}

async function problemsOf(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigValidationError);
    return (e as ConfigValidationError).problems;
  }
  throw new Error("expected a ConfigValidationError");
}

describe("Key Vault references in the host configuration", () => {
  it("sanity: the fake error is a KeyVaultError", () =>
    expect(isKeyVaultError(notFound())).toBe(true));

  it("resolves latest and pinned references among the host variables only, and leaves other values alone", async () => {
    const version = "a".repeat(32);
    const vault = fakeVault({
      "db-url": "postgres://u:pw@db:5432/cv",
      [`rate/${version}`]: "42",
    });
    const { env, resolved } = await resolveKeyVaultReferences(
      {
        DATABASE_URL: "@keyvault:db-url",
        RATE_LIMIT_PER_MINUTE: `@keyvault:rate/${version}`,
        LOG_LEVEL: "warn",
        SOMETHING_ELSE: "@keyvault:x",
      },
      { read: vault.read },
    );
    expect(env.DATABASE_URL).toBe("postgres://u:pw@db:5432/cv");
    expect(env.RATE_LIMIT_PER_MINUTE).toBe("42");
    expect(env.LOG_LEVEL).toBe("warn");
    expect(env.SOMETHING_ELSE).toBe("@keyvault:x"); // not the host's variable: not its business
    expect(vault.asked).toEqual([
      { variable: "DATABASE_URL", secretName: "db-url" },
      { variable: "RATE_LIMIT_PER_MINUTE", secretName: "rate", version },
    ]);
    expect(resolved.map((r) => r.source)).toEqual(["vault", "vault"]);
    expect(JSON.stringify(resolved)).not.toContain("pw@db");
  });

  it("feeds resolved values through the normal validation", async () => {
    const vault = fakeVault({ "db-url": "postgres://u@db:5432/cv" });
    const config = await loadAppConfigResolvingReferences(
      { DATABASE_TYPE: "postgres", DATABASE_URL: "@keyvault:db-url" },
      { read: vault.read },
    );
    expect(config.database).toMatchObject({
      type: "postgres",
      url: "postgres://u@db:5432/cv",
    });
    // A resolved value that is invalid is named like any other bad variable, without the value.
    const bad = fakeVault({ rate: "not-a-number-s3cret" });
    const problems = await problemsOf(
      loadAppConfigResolvingReferences(
        { RATE_LIMIT_PER_MINUTE: "@keyvault:rate" },
        { read: bad.read },
      ),
    );
    expect(problems.join("\n")).toMatch(/RATE_LIMIT_PER_MINUTE/);
    expect(problems.join("\n")).not.toContain("s3cret");
  });

  it("lists a file it cannot read (a CA, a client certificate) with the other problems, naming the variable and the error's code", async () => {
    const vault = fakeVault({});
    const problems = await problemsOf(
      loadAppConfigResolvingReferences(
        { PORT: "x", SMTP_HOST: "127.0.0.1", SMTP_FROM: "v@example.test", SMTP_CA_CERT_PATH: "/nonexistent/smtp-ca.pem", KEY_VAULT_URL: "https://localhost:1", KEY_VAULT_CA_CERT_PATH: "/" },
        { read: vault.read },
      ),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        "SMTP_CA_CERT_PATH: the file cannot be read (ENOENT)",
        "KEY_VAULT_CA_CERT_PATH: the file cannot be read (EISDIR)",
      ]),
    );
    expect(problems.join("\n")).not.toContain("nonexistent");
  });

  // The vault that resolves the references is opened first, and it read its CA file as it was built: ENOENT, exit 1.
  it("lists a vault CA or client certificate it cannot read when references must be resolved, before it opens the vault", async () => {
    const problems = await problemsOf(
      loadAppConfigResolvingReferences({
        KEY_VAULT_URL: "https://localhost:1",
        KEY_VAULT_CREDENTIAL: "client-certificate",
        AZURE_TENANT_ID: "t",
        AZURE_CLIENT_ID: "c",
        AZURE_CLIENT_CERTIFICATE_PATH: "/nonexistent/client.pem",
        KEY_VAULT_CA_CERT_PATH: "/nonexistent/vault-ca.pem",
        SMTP_HOST: "127.0.0.1",
        SMTP_FROM: "v@example.test",
        SMTP_USER: "u",
        SMTP_PASSWORD: "@keyvault:smtp-password",
      }),
    );
    expect(problems).toEqual([
      "KEY_VAULT_CA_CERT_PATH: the file cannot be read (ENOENT)",
      "AZURE_CLIENT_CERTIFICATE_PATH: the file cannot be read (ENOENT)",
    ]);
  });

  // The SDK read it only at the first token request, after the start: the host ran, and every vault call failed.
  it("lists a workload identity token file it cannot read, but not what a readable one holds (the SDK reads it again as it rotates)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cv-token-file-"));
    try {
      const workload = {
        KEY_VAULT_URL: "https://localhost:1",
        KEY_VAULT_CREDENTIAL: "workload-identity",
        AZURE_TENANT_ID: "t",
        AZURE_CLIENT_ID: "c",
      };
      const missing = join(dir, "no-such-token");
      expect(await problemsOf(loadAppConfigResolvingReferences({ ...workload, AZURE_FEDERATED_TOKEN_FILE: missing, PORT: "x" }))).toEqual([
        expect.stringMatching(/^PORT: /),
        "AZURE_FEDERATED_TOKEN_FILE: the file cannot be read (ENOENT)",
      ]);
      expect(await problemsOf(loadAppConfigResolvingReferences({ ...workload, AZURE_FEDERATED_TOKEN_FILE: dir }))).toEqual([
        "AZURE_FEDERATED_TOKEN_FILE: the file cannot be read (EISDIR)",
      ]);
      // Empty now, the next token may be there by the first request: only that it can be read is checked.
      const token = join(dir, "token");
      writeFileSync(token, "");
      const config = await loadAppConfigResolvingReferences({ ...workload, AZURE_FEDERATED_TOKEN_FILE: token });
      expect(config.keyVault).toMatchObject({ mode: "external", credential: "workload-identity", federatedTokenFile: token });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Only the vault's (or the references') problems were listed: a second start showed the rest, one at a time.
  it("lists the rest of the configuration's problems with the vault's and the references' own, in one start", async () => {
    const rest = { PORT: "eighty", LOG_LEVEL: "loud", DATABASE_TYPE: "postgres", DATABASE_URL: "@keyvault:db-url" };
    const vaultBroken = await problemsOf(
      loadAppConfigResolvingReferences({ KEY_VAULT_URL: "https://localhost:1", KEY_VAULT_CREDENTIAL: "client-secret", AZURE_TENANT_ID: "t", ...rest }),
    );
    expect(vaultBroken).toEqual([
      "AZURE_CLIENT_ID: is required when KEY_VAULT_CREDENTIAL=client-secret",
      "AZURE_CLIENT_SECRET: is required when KEY_VAULT_CREDENTIAL=client-secret",
      expect.stringMatching(/^PORT: /),
      expect.stringMatching(/^LOG_LEVEL: /),
    ]);
    const vault = fakeVault({});
    const unresolved = await problemsOf(loadAppConfigResolvingReferences({ ...rest, SMTP_PASSWORD: "@keyvault:smtp" }, { read: vault.read }));
    expect(unresolved).toEqual([
      "DATABASE_URL: the Key Vault reference to db-url could not be resolved: no such secret (or version) in the vault",
      "SMTP_PASSWORD: the Key Vault reference to smtp could not be resolved: no such secret (or version) in the vault",
      expect.stringMatching(/^PORT: /),
      expect.stringMatching(/^LOG_LEVEL: /),
      // A referenced variable's own rules wait for its value: DATABASE_URL is not "required", SMTP_PASSWORD not judged yet.
    ]);
    const malformed = await problemsOf(loadAppConfigResolvingReferences({ ...rest, DATABASE_URL: "@keyvault:bad_name!" }, { read: vault.read }));
    expect(malformed).toEqual([expect.stringMatching(/^DATABASE_URL: is not a valid Key Vault reference/), expect.stringMatching(/^PORT: /), expect.stringMatching(/^LOG_LEVEL: /)]);
    expect(vault.asked.map((r) => r.secretName)).toEqual(["db-url", "smtp"]);
  });

  it("refuses references in the variables that reach the vault, and malformed references, listing all at once", async () => {
    const { problems } = findKeyVaultReferences({
      KEY_VAULT_URL: "@keyvault:url",
      AZURE_CLIENT_SECRET: "@keyvault:sp-secret",
      DATABASE_URL: "@keyvault:bad_name!",
      SMTP_PASSWORD: "@keyvault:ok",
      AUTH_API_KEYS: "@keyvault:keys/not-a-version",
    });
    expect(problems).toHaveLength(4);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^KEY_VAULT_URL: cannot be a Key Vault reference/,
        ),
        expect.stringMatching(
          /^AZURE_CLIENT_SECRET: cannot be a Key Vault reference/,
        ),
        expect.stringMatching(
          /^DATABASE_URL: is not a valid Key Vault reference/,
        ),
        expect.stringMatching(
          /^AUTH_API_KEYS: is not a valid Key Vault reference/,
        ),
      ]),
    );
    const vault = fakeVault({});
    await problemsOf(
      resolveKeyVaultReferences(
        { KEY_VAULT_URL: "@keyvault:url" },
        { read: vault.read },
      ),
    );
    expect(vault.asked).toEqual([]); // nothing is read when the references themselves are wrong
  });

  it("names every unresolvable reference (variable and secret name, never a value) and starts nothing", async () => {
    const vault = fakeVault({ present: "v" });
    const problems = await problemsOf(
      resolveKeyVaultReferences(
        {
          DATABASE_URL: "@keyvault:missing-db",
          AUTH_API_KEYS: "@keyvault:missing-keys",
          LOG_LEVEL: "@keyvault:present",
        },
        { read: vault.read },
      ),
    );
    expect(problems).toEqual([
      "DATABASE_URL: the Key Vault reference to missing-db could not be resolved: no such secret (or version) in the vault",
      "AUTH_API_KEYS: the Key Vault reference to missing-keys could not be resolved: no such secret (or version) in the vault",
    ]);
  });

  it("falls back to <VAR>_FALLBACK outside production only, with a warning naming the variable", async () => {
    const vault = fakeVault({});
    const env = {
      DATABASE_URL: "@keyvault:db-url",
      DATABASE_URL_FALLBACK: "postgres://dev@127.0.0.1:5432/dev",
    };
    const dev = await resolveKeyVaultReferences(env, { read: vault.read });
    expect(dev.env.DATABASE_URL).toBe("postgres://dev@127.0.0.1:5432/dev");
    expect(dev.resolved[0].source).toBe("fallback");
    expect(dev.warnings).toEqual([
      expect.stringMatching(
        /^DATABASE_URL: Key Vault secret db-url not used .*DATABASE_URL_FALLBACK \(development only\)$/,
      ),
    ]);
    expect(dev.warnings.join()).not.toContain("dev@127");

    const problems = await problemsOf(
      resolveKeyVaultReferences(
        { ...env, NODE_ENV: "production" },
        { read: vault.read },
      ),
    );
    expect(problems).toEqual([
      expect.stringMatching(
        /^DATABASE_URL: the Key Vault reference to db-url could not be resolved/,
      ),
    ]);
  });

  it("does not open any vault when there is no reference", async () => {
    const vault = fakeVault({});
    const out = await resolveKeyVaultReferences(
      { LOG_LEVEL: "info" },
      { read: vault.read },
    );
    expect(out.resolved).toEqual([]);
    expect(vault.asked).toEqual([]);
  });
});
