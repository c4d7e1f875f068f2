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

# Runtime: no compiler, no sources, not root.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=development HOST=0.0.0.0 PORT=3000
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Writable by the runtime user (named volumes mounted here start with this ownership): the SQLite
# file, the embedded vault and the dev API key under /app/data; the emulator's exported CA in /vault-ca.
RUN mkdir -p /app/data/vault /vault-ca && chown -R node:node /app/data /vault-ca
USER node
EXPOSE 3000
CMD ["node", "dist/apps/api/src/main.js"]
