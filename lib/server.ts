/**
 * Server mode: wires the upstream channel, the coalescing checker, the HTTP handler, the
 * listeners and the metrics together, and runs until SIGINT/SIGTERM.
 *
 * @module
 */

import { BackgroundChecker } from "./background.ts";
import { coalescingChecker, coalescingLister, isRefusal } from "./checker.ts";
import { type Config, validateServiceName } from "./flags.ts";
import { healthHandler } from "./handler.ts";
import { selfSignedCertificate, watchCertificateFiles } from "./certificates.ts";
import { type PemPair, readPemFile } from "./tls_material.ts";
import { parseListenAddr } from "./address.ts";
import { type Listener, serveHealth } from "./listen.ts";
import { awaitTermination, ignoreHangup } from "./signals.ts";
import { denoVersionWarning } from "./deno_versions.ts";
import { createLogger, fileWriter, type Logger } from "./log.ts";
import { LineLimiter } from "./log_limit.ts";
import { releaseHeapAfterBursts } from "./heap_release.ts";
import type { HealthMetrics } from "./metrics.ts";
import { type CheckResult, type HealthChecker, SERVER_START_FAILED } from "./status.ts";
import { UpstreamConfigError, UpstreamHealth } from "./upstream.ts";
import { RecentAnswers, StateHistory } from "./status_history.ts";
import { statusSnapshots, withStatusPage } from "./status_page.ts";

/** How many service names have their state (and its changes) tracked in on-demand mode. */
const MAX_TRACKED_SERVICES = 1000;

/** The cap on distinct unconfigured services checked upstream at once. */
const MAX_IN_FLIGHT_CHECKS = 32;

/** The most new upstream checks of unconfigured services started per second. */
const UNCONFIGURED_CHECKS_PER_SECOND = 100;

/** A user-fixable start-up problem (unreadable file, port in use). */
class StartError extends Error {}

/** State-change lines per service and minute; beyond, one summary line ends the minute. */
const STATE_CHANGE_LINES_PER_MINUTE = 10;

/**
 * Reports state changes: `report` logs, counts and records one (for the status page), `close`
 * cancels pending summaries.
 */
interface StateChanges {
  report(service: string, from: string | undefined, to: CheckResult): void;
  close(): void;
}

/**
 * Logs each state change of a service (warn when it is not SERVING), counts it in the metrics
 * and records it for the status page. A flapping service logs at most
 * {@link STATE_CHANGE_LINES_PER_MINUTE} lines a minute, then one line with how many were left
 * out and where it stands; the metrics and the page's history see every change.
 */
function stateChanges(
  logger: Logger,
  metrics: HealthMetrics | undefined,
  history: StateHistory,
): StateChanges {
  const limiter = new LineLimiter({
    perWindow: STATE_CHANGE_LINES_PER_MINUTE,
    windowMs: 60_000,
    onSuppressed: (service, suppressed) =>
      logger.warn("upstream state changes not logged (flapping)", {
        service,
        suppressed,
        now: history.outcome(service) ?? "unknown",
      }),
  });
  return {
    report(service, from, to) {
      metrics?.stateChange(service, to.outcome);
      history.record(service, from, to);
      if (!limiter.allow(service)) return;
      const fields = {
        service,
        from: from ?? "none",
        to: to.outcome,
        ...(to.detail ? { detail: to.detail } : {}),
      };
      if (to.outcome === "SERVING") logger.info("upstream state changed", fields);
      else logger.warn("upstream state changed", fields);
    },
    close: () => limiter.close(),
  };
}

/**
 * Wraps a checker so that each change of a service's outcome is logged once and counted;
 * steady states produce no log lines (debug aside).
 */
export function stateTracking(
  check: HealthChecker,
  logger: Logger,
  changes: StateChanges,
): HealthChecker {
  const last = new Map<string, string>();
  return async (service, signal) => {
    const result: CheckResult = await check(service, signal);
    // A refused check says nothing about the service: a flood must not flap its state or the log.
    if (isRefusal(result)) return result;
    const previous = last.get(service);
    // State is kept (and changes reported) for a bounded set of names: a client sending new
    // ?serviceName= values must not control the log volume.
    const tracked = last.has(service) || last.size < MAX_TRACKED_SERVICES;
    if (tracked && previous !== result.outcome) {
      last.set(service, result.outcome);
      changes.report(service, previous, result);
    } else if (logger.debugEnabled) {
      logger.debug("checked", { service, outcome: result.outcome });
    }
    return result;
  };
}

/**
 * Starts background checking when `-check-interval` or `-watch` asks for it, and waits (at most
 * one check's timeouts) for the first results so the first answers are real.
 */
async function startBackground(
  config: Config,
  upstream: UpstreamHealth,
  logger: Logger,
  changes: StateChanges,
): Promise<BackgroundChecker | undefined> {
  if (config.checkIntervalMs <= 0 && !config.watch) return undefined;
  const checkTimeoutMs = config.connectTimeoutMs + config.rpcTimeoutMs;
  const background = new BackgroundChecker(upstream, {
    services: config.services,
    intervalMs: config.checkIntervalMs,
    healthyThreshold: config.healthyThreshold,
    unhealthyThreshold: config.unhealthyThreshold,
    watch: config.watch,
    checkTimeoutMs,
    onStateChange: (service, from, to) => changes.report(service, from, to),
    onWatchFallback: (service) =>
      logger.warn("Health/Watch is not implemented upstream; polling instead", { service }),
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    background.start(),
    new Promise((resolve) => (timer = setTimeout(resolve, checkTimeoutMs))),
  ]);
  clearTimeout(timer);
  logger.info("background checking", {
    services: config.services,
    ...(config.watch ? { watch: true } : { intervalMs: config.checkIntervalMs }),
    stalenessBoundMs: background.stalenessBoundMs,
  });
  return background;
}

/** What {@link startServer} started; `stop()` drains and closes everything. */
export interface RunningServer {
  readonly health: Listener;
  readonly metrics?: Listener;
  stop(): Promise<void>;
}

/** What tests may change in server mode; production runs with the defaults. */
export interface ServerOptions {
  /** Deno's version (default `Deno.version.deno`). */
  denoVersion?: string;
  /**
   * New upstream checks per second for services nobody configured (default 100, see the
   * README): tests that measure the cost of many real checks lift it.
   */
  unconfiguredChecksPerSecond?: number;
}

/**
 * Starts server mode: the health listener (and the metrics listener when configured). Throws
 * an Error with a one-line message when it cannot start.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  options: ServerOptions = {},
): Promise<RunningServer> {
  // Keep serving on a Deno known to break: the operator learns why from the one line.
  const versionWarning = denoVersionWarning(options.denoVersion ?? Deno.version.deno);
  if (versionWarning) logger.warn(versionWarning);
  let upstream: UpstreamHealth;
  try {
    upstream = new UpstreamHealth({ ...config, fastReconnect: true });
  } catch (err) {
    if (err instanceof UpstreamConfigError) throw new StartError(err.message);
    throw err;
  }
  let background: BackgroundChecker | undefined;
  let certWatcher: { close(): void } | undefined;
  let changes: StateChanges | undefined;
  try {
    let tls: PemPair | undefined;
    if (config.httpsListenCert) {
      tls = {
        cert: readPemFile("-https-listen-cert", config.httpsListenCert),
        key: readPemFile("-https-listen-key", config.httpsListenKey),
      };
    } else if (config.httpsSelfSigned) {
      // In memory, for probers that do not verify certificates (GKE, ALB).
      const { hostname } = parseListenAddr(config.httpListenAddr);
      const named = !["::", "0.0.0.0", ""].includes(hostname) && !hostname.includes("%");
      tls = await selfSignedCertificate({ hostnames: named ? [hostname] : [] });
    }
    const clientCa = config.httpsListenVerify
      ? readPemFile("-https-listen-ca", config.httpsListenCa)
      : undefined;
    // prom-client (and the Node compatibility it loads) only when someone can scrape it.
    const metricsCode = config.metricsHttpListenAddr ? await import("./metrics.ts") : undefined;
    const metrics = metricsCode?.createHealthMetrics({ knownServices: config.services });
    let answered = 0; // health requests, for telling a burst from quiet
    const history = new StateHistory();
    const recentAnswers = new RecentAnswers();
    changes = stateChanges(logger, metrics, history);
    const onDemand = stateTracking(
      coalescingChecker((s) => upstream.check(s), {
        maxInFlight: MAX_IN_FLIGHT_CHECKS,
        perSecond: options.unconfiguredChecksPerSecond ?? UNCONFIGURED_CHECKS_PER_SECOND,
        // What `/` checks: the configured services, else the overall health.
        reserved: new Set(config.services.length > 0 ? config.services : [""]),
      }),
      logger,
      changes,
    );
    background = await startBackground(config, upstream, logger, changes);
    const bg = background;
    // Configured services are answered from memory; any other ?serviceName= is checked on demand.
    const check: HealthChecker = bg
      ? (s) => bg.has(s) ? Promise.resolve(bg.current(s)) : onDemand(s)
      : onDemand;
    const handler = healthHandler({
      path: config.httpListenPath,
      livenessPath: config.httpLivenessPath,
      services: config.services,
      servicesFixed: config.servicesFixed,
      check: (services) => Promise.all(services.map((s) => check(s))),
      resultsInMemory: bg
        ? (services) =>
          services.every((s) => bg.has(s)) ? services.map((s) => bg.current(s)) : undefined
        : undefined,
      validateServiceName,
      // Health/List is called live (one call at a time) even with background checking: see
      // docs/list.md for why it is not polled.
      listPath: config.httpListPath,
      list: config.httpListPath ? coalescingLister((s) => upstream.list(s)) : undefined,
      observe: (path, results, seconds) => {
        answered++;
        metrics?.observe(path, results, seconds);
        recentAnswers.observe(seconds);
      },
    });
    const health = await serveHealth({
      addr: config.httpListenAddr,
      handler,
      tls,
      clientCa,
      logger,
    });
    if (config.httpsListenCert) {
      // cert-manager rotates the files: new handshakes get the new pair, nothing is dropped.
      certWatcher = watchCertificateFiles(
        config.httpsListenCert,
        config.httpsListenKey,
        (pem) => health.updateCertificate(pem),
        { logger, initial: tls },
      );
    }
    logger.info("checking upstream", { upstream: upstream.target, path: config.httpListenPath });
    let metricsListener: Listener | undefined;
    if (metricsCode && metrics) {
      try {
        metricsListener = await serveHealth({
          addr: config.metricsHttpListenAddr,
          handler: withStatusPage(
            statusSnapshots({ config, target: upstream.target, history, answers: recentAnswers }),
            { status: config.statusHttpPath, metrics: config.metricsHttpPath },
            metricsCode.metricsHandler(metrics, config.metricsHttpPath),
          ),
          logger,
        });
      } catch (err) {
        // As the README says: a metrics listener that cannot bind is logged; health serving goes on.
        logger.error("metrics listener not started", { error: (err as Error).message });
      }
    }
    // Started last, so the heap's size at start is the idle figure.
    const stopHeapRelease = releaseHeapAfterBursts({ activity: () => answered });
    return {
      health,
      metrics: metricsListener,
      stop: async () => {
        stopHeapRelease();
        certWatcher?.close();
        await Promise.all([health.shutdown(), metricsListener?.shutdown()]);
        bg?.stop();
        changes?.close();
        upstream.close();
      },
    };
  } catch (err) {
    certWatcher?.close();
    background?.stop();
    changes?.close();
    upstream.close();
    throw err;
  }
}

/** Runs server mode until SIGINT/SIGTERM and returns the exit code. */
export async function runServer(config: Config): Promise<number> {
  let logger: Logger;
  try {
    logger = createLogger({
      json: config.jsonLog,
      debug: config.debug || config.verbosity > 0,
      write: config.logTarget ? fileWriter(config.logTarget) : undefined,
    });
  } catch (err) {
    createLogger().error(`cannot open -logTarget file "${config.logTarget}"`, {
      error: (err as Error).message,
    });
    return SERVER_START_FAILED;
  }
  // Signals are handled before the first listener binds: a SIGTERM or SIGHUP sent as soon as
  // the "listening" line appears must never meet the default action (exit with no line).
  const hangups = ignoreHangup(() =>
    logger.warn("SIGHUP ignored: send SIGTERM or SIGINT to stop", { signal: "SIGHUP" })
  );
  const termination = awaitTermination();
  try {
    let server: RunningServer;
    try {
      server = await startServer(config, logger);
    } catch (err) {
      logger.error((err as Error).message);
      return SERVER_START_FAILED;
    }
    const signal = await termination.next;
    logger.info("shutting down", { signal });
    await server.stop();
  } finally {
    termination.dispose();
    hangups();
  }
  logger.info("stopped");
  return 0;
}
