// env.mjs — what the SDK test files share: the endpoint and the two
// tenants' SigV4 keys from the environment tests/sdk/run.sh sets, a run id
// that keeps table names unique across runs, and the options of every
// client (one attempt: a retried request would hide the error under test).
import { randomBytes } from "node:crypto";

export function requireEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run tests/sdk/run.sh, or export it)`);
  return v;
}

export const ENDPOINT = requireEnv("ONCELEDGER_DYNAMODB_URL");

/** The credentials of tenant 1 (n = "") or tenant 2 (n = "_2"). */
export function credentials(n = "") {
  return {
    accessKeyId: requireEnv(`ONCELEDGER_SDK_KEY_ID${n}`),
    secretAccessKey: requireEnv(`ONCELEDGER_SDK_SECRET${n}`),
  };
}

/** The options of a client of the endpoint for tenant n. */
export function clientOptions(n = "", extra = {}) {
  return { endpoint: ENDPOINT, region: "us-east-1", credentials: credentials(n), maxAttempts: 1, ...extra };
}

/** "<prefix>-<time base 36><6 hex digits>": unique per run. */
export function runName(prefix) {
  return `${prefix}-${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}
