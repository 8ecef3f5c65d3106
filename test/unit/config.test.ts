import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { azureConfigured, loadConfig, parseDuration } from "../../src/config.ts";

describe("configuration", () => {
  it("reads flags before environment variables, with documented defaults", () => {
    const c = loadConfig(["--workers", "4", "--namespace", "images"], { WORKERS: "8", LOG_LEVEL: "debug", RESYNC_PERIOD: "2m" });
    assert.equal(c.workers, 4);
    assert.equal(c.namespace, "images");
    assert.equal(c.logLevel, "debug");
    assert.equal(c.resyncPeriodMs, 120_000);
    assert.equal(c.leaderElect, false);
    assert.equal(c.metricsAddress, ":8080");
    assert.equal(c.healthProbeAddress, ":8081");
  });

  it("refuses unknown flags, bad levels and bad durations with a clear message", () => {
    assert.throws(() => loadConfig(["--wrokers", "2"], {}), /Unknown option '--wrokers'/);
    assert.throws(() => loadConfig([], { LOG_LEVEL: "loud" }), /invalid log level 'loud'/);
    assert.throws(() => parseDuration("ten minutes"), /invalid duration/);
    assert.throws(() => loadConfig(["--workers", "0"], {}), /invalid worker count/);
  });

  it("parses durations", () => {
    assert.equal(parseDuration("90s"), 90_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.equal(parseDuration("250"), 250);
  });

  it("treats Azure as configured only with a client id and a secret or a token file", () => {
    const azure = loadConfig([], { AZURE_CLIENT_ID: "c", AZURE_TENANT_ID: "t" }).azure;
    assert.equal(azureConfigured(azure), false);
    assert.equal(azureConfigured({ ...azure, federatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token" }), true);
  });
});
