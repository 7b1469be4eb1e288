/** The defaults of SPEC §1.0, for every key a routes.yaml may leave out. */
export const DEFAULTS = {
  connectMs: 5_000,
  responseMs: 30_000,
  idleMs: 60_000,
  headerTimeoutMs: 10_000,
  // nginx's client_body_timeout.
  bodyTimeoutMs: 60_000,
  // nginx's send_timeout.
  sendTimeoutMs: 60_000,
  // Envoy's idle_timeout for a connection with no stream: one hour.
  tunnelIdleTimeoutMs: 3_600_000,
  maxHeaderBytes: 16_384,
  maxHeaderCount: 100,
  drainTimeoutMs: 30_000,
  consecutiveFailures: 5,
  analysisIntervalMs: 10_000,
  analysisWindowMs: 60_000,
  minRequests: 20,
  healthIntervalMs: 10_000,
  healthTimeoutMs: 2_000,
  shadowMaxBodyBytes: 1_048_576,
  shadowTimeoutMs: 5_000,
  shadowMaxConcurrent: 32,
} as const;
