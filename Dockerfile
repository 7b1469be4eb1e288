# syntax=docker/dockerfile:1
#
#   docker build -t ficus .                    the image (build → prune → runtime)
#   docker build --target test .               also runs the test suite, as CI does
#   docker run -p 8080:8080 -v "$PWD/routes.yaml:/etc/ficus/routes.yaml:ro" ficus
#
# Mount a directory rather than a single file (-v "$PWD/conf:/etc/ficus:ro") if you want
# edits on the host to hot-reload: a file bind mount pins the inode that editors replace.

ARG NODE_IMAGE=node:24-slim

# ---- build: the same install as a fresh clone; `npm ci` runs `prepare`, which compiles src → dist
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin/ bin/
COPY src/ src/
RUN npm ci --no-audit --no-fund

# ---- test (optional target): exactly what .ci/run does after `npm ci`
FROM build AS test
COPY vitest.config.ts eslint.config.js routes.yaml README.md Dockerfile .dockerignore ./
COPY .ci/ .ci/
COPY test/ test/
RUN npm test

# ---- prune: runtime dependencies only
FROM build AS prune
RUN npm prune --omit=dev --no-audit --no-fund

# ---- runtime
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    FICUS_CONFIG=/etc/ficus/routes.yaml \
    FICUS_HEALTH_URL=http://127.0.0.1:9901/healthz
WORKDIR /app
COPY --from=prune /app/package.json ./
COPY --from=prune /app/node_modules/ node_modules/
COPY --from=prune /app/dist/ dist/
COPY --from=prune /app/bin/ bin/
# The example config, so the image starts as is; replace it with your own (see above). The
# package's own copy is what `ficus demo` runs.
COPY routes.yaml /etc/ficus/routes.yaml
COPY routes.yaml ./routes.yaml

# The image's own user (uid 1000): ficus needs no privileges, and 8080/9901 are not privileged ports.
USER node
EXPOSE 8080 9901

# The health check runs inside the container, so the admin listener's default 127.0.0.1:9901
# is reachable. Binding admin to 0.0.0.0 (for scraping /metrics from outside) requires
# admin.token: ficus refuses to start otherwise. Set FICUS_HEALTH_URL if you move the port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.FICUS_HEALTH_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# SIGTERM (docker stop) drains: /readyz turns 503, in-flight requests finish, exit 0.
# Keep `docker stop -t` above the config's drainTimeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/ficus.js"]
CMD ["start", "-c", "/etc/ficus/routes.yaml"]
