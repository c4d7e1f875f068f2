# Reference host image; the same image runs the local Key Vault emulator (docker-compose.yml).
# With no KEY_VAULT_URL the host starts its embedded local vault: development and demos only.

# Build: full dependencies (swc, the native better-sqlite3 build), compile, then drop dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Runtime: no compiler, no sources, no dev dependencies, not root. Production by default: the host then
# refuses to start without KEY_VAULT_URL and an authentication method (docker-compose.yml sets
# NODE_ENV=development for its local cluster).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The gRPC transport (GRPC_ENABLED) loads its service definition from proto/ at start.
COPY --from=build /app/proto ./proto
# Writable by the runtime user (named volumes mounted here start with this ownership): the SQLite
# file, the embedded vault and the dev API key under /app/data; the emulator's exported CA in /vault-ca.
RUN mkdir -p /app/data/vault /vault-ca && chown -R node:node /app/data /vault-ca
USER node
EXPOSE 3000
# Liveness only (the process answers); readiness — database, vault, audit — is /health/ready for the balancer.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/apps/api/src/main.js"]
