package dev.poolgoaway.hikari;

import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.metrics.MetricsTrackerFactory;

import dev.poolgoaway.wire.PgGoAway;

/**
 * Drains one HikariCP pool of the connections the server asked to leave.
 *
 * <p>One loop ({@link DrainLoop}), in the shape of OkHttp's connection-pool cleanup: each run looks at every pooled
 * connection and returns the delay to the next run. A connection in use whose server said GoAway (or reported
 * {@code disconnect_requested}, or ended it) is marked, so that Hikari closes it when it is returned: never aborted,
 * never interrupted. An idle connection is reserved exactly as Hikari's keepalive task reserves it (no borrower can
 * race), polled through the wire layer, and then either evicted or given back. A dead one (an admin termination, the
 * server gone) is evicted at once; one that was only asked to leave is evicted at a random moment within the drain
 * window, with a bound on replacements in flight, so the pool keeps serving and the new server sees no connection
 * storm. Evictions go through Hikari's own soft-eviction path: closing off-thread, refilling to minimumIdle and
 * Hikari's metrics are those of max-lifetime rotation.
 *
 * <p>A pool whose server never sends GoAway sees nothing from this: no eviction, no query, nothing logged above DEBUG.
 * The evictor stops by itself within one tick of the pool shutting down. Where it cannot drain the pool it was
 * installed into, it says so: one ERROR naming the pool, the cause and the fix, and {@link #problem()}.
 */
public final class GoAwayEvictor implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(GoAwayEvictor.class);
    private static final long FAILURE_LOG_INTERVAL_NANOS = TimeUnit.MINUTES.toNanos(1);
    static final long RETURN_WAKE_NANOS = TimeUnit.MILLISECONDS.toNanos(5);
    /** How long after a pool's first connection its evictor must be attached (HikariCP does it within moments). */
    static final long UNCLAIMED_CHECK_SECONDS = 2;

    private final EvictorSettings settings;
    private final HikariConfig installedInto;
    private final List<Consumer<String>> onAttach = new ArrayList<>();
    private volatile EvictorEvents events = EvictorEvents.NONE;
    private volatile String poolName = "";
    private volatile DrainLoop loop;
    /** The DNS leave-signal's source, if on: its lookups are counted for the meters. */
    private volatile DnsLeaveSource dns;
    private volatile boolean publicApi;
    private volatile ScheduledExecutorService executor;
    /** The loop's next run (guarded by this); one chain of runs at a time. */
    private ScheduledFuture<?> next;
    /** When {@link #next} runs, in {@link System#nanoTime()}. */
    private long nextAt;
    /** A run is under way (guarded by this); a wake meanwhile asks for another right after it. */
    private boolean running;
    private boolean wakeAgain;
    /** When a return last woke the loop; racy on purpose (a wake more or less is harmless). */
    private volatile long lastReturnWake;
    private boolean ownsExecutor;
    private volatile boolean closed;
    private volatile boolean stopped;
    private volatile String problem;
    /** The problem is {@link #startedBeforeInstall}'s, which an attach proves wrong. */
    private boolean startedBeforeInstall;
    /** The start hook install put into the configuration. */
    private PoolStartHook hook;
    /** Runs failed in a row (evictor thread): the first is logged with its stack trace, the rest counted. */
    private int failures;
    private long lastFailureLog;

    GoAwayEvictor(EvictorSettings settings, HikariConfig installedInto) {
        this.settings = settings;
        this.installedInto = installedInto;
    }

    // ---- life ---------------------------------------------------------------------------------------------

    /**
     * Called when the pool exists (from inside its constructor): starts the loop, last, so that nothing that fails
     * before leaves a thread behind. A second pool started from the same configuration is refused loudly: this
     * evictor drains one pool.
     *
     * @param view   the pool, through Hikari's internals or its public API alone
     * @param name   its name
     * @param config the pool's own configuration (its executor and thread factory are honoured)
     * @return true if this evictor now drains the pool
     */
    synchronized boolean attach(PoolView view, String name, HikariConfig config) {
        if (closed) {
            return false;
        }
        if (loop != null) {
            fail(name, "its configuration was used for a second pool, '" + poolName + "' has this evictor already",
                    "call PoolGoAway.install on a configuration of its own for each pool");
            return false;
        }
        if (startedBeforeInstall) {
            // A pool of the same name was running at install, but this configuration did start one now.
            startedBeforeInstall = false;
            problem = null;
            log.info("{} - pool-goaway is installed after all: this configuration started a pool of its own", name);
        }
        DrainLoop l = new DrainLoop(view, settings, name, Clock.systemUTC(), ThreadLocalRandom.current(), this::wake,
                sources(name, config));
        l.events(events);
        this.poolName = name;
        this.publicApi = !view.canReserve();
        this.loop = l;
        for (Consumer<String> c : onAttach) {
            c.accept(name);
        }
        onAttach.clear();
        executor = executorFor(config, name);
        // The pool's constructor is still running: the loop waits for it, then lists its connections.
        schedule(DrainLoop.START_CHECK_NANOS);
        log.debug("{} - pool-goaway evictor attached ({}, HikariCP {})", name, settings,
                HikariAccess.hikariVersion());
        return true;
    }

    /**
     * What the server says on each connection, a connection that cannot hear GoAway where a new one would (when
     * GoAway is honoured), then what the deployment says: the DNS name moved (unless turned off), the server
     * refused a new connection of the pool as shutting down (a {@code jdbcUrl} pool: the wire layer knows its
     * group).
     */
    private List<LeaveSource> sources(String name, HikariConfig config) {
        List<LeaveSource> sources = new ArrayList<>();
        sources.add(LeaveSource.wire(settings.signals()));
        if (settings.signals().contains(LeaveSignal.GOAWAY)) {
            sources.add(LeaveSource.deferredGoAway());
        }
        if (settings.dnsLeave()) {
            dns = new DnsLeaveSource(name, DnsLeaveSource.JVM, settings.dnsLeaveInterval(),
                    settings.dnsLeaveWindow().orElse(null), Clock.systemUTC());
            sources.add(dns);
        }
        String group = config == null ? null : config.getDataSourceProperties().getProperty(PgGoAway.GROUP);
        if (group != null) {
            sources.add(new ShutdownRefusals(name, group, this::wake));
        }
        return sources;
    }

    /**
     * The loop runs where HikariCP runs its housekeeping: on the pool's {@code scheduledExecutor} if the user set
     * one (HikariCP does not shut that down, neither does this), else on a thread of its own from the pool's
     * {@code threadFactory} if set (as HikariCP's own threads are), else a daemon thread named after the pool.
     */
    private ScheduledExecutorService executorFor(HikariConfig config, String name) {
        if (config != null && config.getScheduledExecutor() != null) {
            return config.getScheduledExecutor();
        }
        ThreadFactory factory = config != null ? config.getThreadFactory() : null;
        if (factory == null) {
            String threadName = "poolgoaway-evictor-" + name;
            factory = r -> {
                Thread t = new Thread(r, threadName);
                t.setDaemon(true);
                return t;
            };
        }
        ScheduledThreadPoolExecutor own = new ScheduledThreadPoolExecutor(1, factory);
        own.setRemoveOnCancelPolicy(true);
        ownsExecutor = true;
        return own;
    }

    synchronized void hooked(MetricsTrackerFactory startHook) {
        this.hook = (PoolStartHook) startHook;
    }

    /**
     * Puts pool-goaway's start hook back in front of a {@code metricsTrackerFactory} that was set on the
     * configuration after {@link PoolGoAway#install} (which replaced the hook), as long as the pool has not
     * started: the pool then starts with this evictor, and hands Hikari's metrics on to that factory. An
     * integration that sees the configuration after the application has set it up (Spring's installer does, once
     * every bean is initialized) calls this.
     *
     * @return true if the pool starts (or started) with this evictor; false if it started without it (see
     *         {@link #problem()}) or pool-goaway was not installed
     */
    public synchronized boolean ensureHooked() {
        if (loop != null) {
            return true;
        }
        if (hook == null || installedInto == null || closed) {
            return false;
        }
        MetricsTrackerFactory current = installedInto.getMetricsTrackerFactory();
        if (current instanceof PoolStartHook) {
            return true;
        }
        boolean started = installedInto instanceof HikariDataSource ds
                && (ds.getHikariPoolMXBean() != null || ds.isClosed());
        if (started) {
            checkStartedWithoutHook();
            return false;
        }
        hook = hook.inFrontOf(current);
        installedInto.setMetricsTrackerFactory(hook);
        log.info("{} - pool-goaway's start hook put back in front of the metricsTrackerFactory set after install",
                installedInto.getPoolName());
        return true;
    }

    /** Marks this evictor as not draining a pool it was installed into: one ERROR, then {@link #problem()}. */
    synchronized void fail(String pool, String cause, String fix) {
        String text = pool + " - pool-goaway does not drain this pool: " + cause + ". Fix: " + fix;
        if (text.equals(problem)) {
            return;
        }
        problem = text;
        log.error(text);
    }

    void events(EvictorEvents e) {
        this.events = e;
        DrainLoop l = loop;
        if (l != null) {
            l.events(e);
        }
    }

    /** Runs {@code action} with the pool's name once the pool has started (now, if it has). */
    synchronized void onAttach(Consumer<String> action) {
        if (loop != null) {
            action.accept(poolName);
        } else {
            onAttach.add(action);
        }
    }

    /** Stops the loop; the pool itself is left alone. Called by itself when the pool shuts down. */
    @Override
    public synchronized void close() {
        closed = true;
        ScheduledFuture<?> f = next;
        if (f != null) {
            f.cancel(false);
        }
        if (ownsExecutor && executor != null) {
            executor.shutdownNow();
        }
        if (loop != null && !stopped) {
            stopped = true;
            // A run under way finishes on its own; what it reports from now on goes nowhere.
            loop.events(EvictorEvents.NONE);
            loop.close();
            try {
                events.stopped();
            } catch (RuntimeException e) {
                log.warn("{} - a pool-goaway metrics listener failed", poolName, e);
            }
        }
    }

    /** Schedules the next run; the caller holds this. */
    private void schedule(long delayNanos) {
        try {
            nextAt = System.nanoTime() + delayNanos;
            next = executor.schedule(this::run, delayNanos, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            // The executor was shut down: by close(), or the user's own executor by the user.
            close();
        }
    }

    /**
     * Runs the loop as soon as it can, instead of at its next scheduled run: something changed (a signal, a socket
     * closed, a connection made or returned). Wakes coalesce; runs never overlap, even on a user's executor with
     * several threads. Called on borrowers' and HikariCP's threads: quick, no I/O.
     */
    void wake() {
        if (closed || loop == null) {
            return;
        }
        synchronized (this) {
            if (closed || executor == null) {
                return;
            }
            if (running) {
                wakeAgain = true;
                return;
            }
            if (next != null && nextAt - System.nanoTime() <= 0) {
                return;
            }
            // If the cancel comes too late the run is starting already, and sees the change.
            if (next == null || next.cancel(false)) {
                schedule(0);
            }
        }
    }

    /**
     * HikariCP made a connection (its metrics tracker's report): the loop gives it its listener now rather than at
     * the next tick, and while draining it may let the next connection asked to leave go.
     */
    void connectionCreated() {
        DrainLoop l = loop;
        if (l != null) {
            l.connectionCreated(System.nanoTime());
            wake();
        }
    }

    /**
     * A borrower returned a connection: it may be one asked to close on return (HikariCP 5.1 gives such a one back
     * to the pool, and the loop closes it). Only while such connections are out, and at most once per
     * {@link #RETURN_WAKE_NANOS}: a busy pool returns thousands a second, and a transaction that never ends (no
     * straggler deadline) must not turn every return into a run. HikariCP 6 and later close such a connection on
     * return, and its socket's close wakes the loop anyway.
     */
    void connectionReturned() {
        DrainLoop l = loop;
        if (l == null || l.awaitingReturn() == 0) {
            return;
        }
        long now = System.nanoTime();
        if (now - lastReturnWake >= RETURN_WAKE_NANOS) {
            lastReturnWake = now;
            wake();
        }
    }

    private void run() {
        synchronized (this) {
            if (closed || running) {
                return;
            }
            running = true;
            wakeAgain = false;
        }
        long delay;
        long now = System.nanoTime();
        try {
            delay = loop.cleanup(now);
            if (failures > 0) {
                log.info("{} - pool-goaway evictor runs again, after {} failed run{}", poolName, failures,
                        failures == 1 ? "" : "s");
                failures = 0;
            }
        } catch (Throwable e) {
            // Whatever it was, the loop must go on: a silent death would leave the pool undrained. The stack trace
            // once; while it keeps failing, one line a minute, not one a tick.
            if (failures++ == 0) {
                log.warn("{} - pool-goaway evictor run failed; trying again every tick", poolName, e);
                lastFailureLog = now;
            } else if (now - lastFailureLog >= FAILURE_LOG_INTERVAL_NANOS) {
                log.warn("{} - pool-goaway evictor still failing ({} runs in a row): {}", poolName, failures,
                        e.toString());
                lastFailureLog = now;
            }
            delay = settings.tick().toNanos();
        }
        synchronized (this) {
            running = false;
            if (delay < 0 || closed) {
                close();
                return;
            }
            schedule(wakeAgain && failures == 0 ? 0 : delay);
        }
    }

    // ---- status -------------------------------------------------------------------------------------------

    /** @return the pool's name, once the pool has started */
    public String poolName() {
        return poolName;
    }

    /** @return connections asked to leave that are still open (as of the last run) */
    public int flaggedConnections() {
        DrainLoop l = loop;
        return l == null ? 0 : l.flaggedConnections();
    }

    /** @return true while a drain is under way */
    public boolean draining() {
        DrainLoop l = loop;
        return l != null && l.draining();
    }

    /**
     * @return true while a drain is stalled: replacements failed or did not come within the pool's
     *         {@code connectionTimeout} (nothing more goes until one is made), the pool is suspended, or the
     *         public-API fallback cannot drain the pool; {@link #stallReason()} says which
     */
    public boolean stalled() {
        DrainLoop l = loop;
        return l != null && l.stalled();
    }

    /**
     * @return why the drain is stalled, while it is: replacements fail (with the last failure), none came within
     *         {@code connectionTimeout}, the pool is suspended, or the public-API fallback cannot evict
     */
    public Optional<String> stallReason() {
        DrainLoop l = loop;
        return l == null ? Optional.empty() : l.stallReason();
    }

    /**
     * @return replacements that failed since the pool started: HikariCP could not open one (refused, unreachable,
     *         full, timed out), or the new connection was asked to leave too
     */
    public int replacementFailures() {
        DrainLoop l = loop;
        return l == null ? 0 : l.replacementFailures();
    }

    /** @return the last replacement failure, as "SQLSTATE: message" where the server gave one (sanitized) */
    public Optional<String> lastReplacementFailure() {
        DrainLoop l = loop;
        return l == null ? Optional.empty() : l.lastReplacementFailure();
    }

    /**
     * @return lookups of the pool's host names by the DNS leave-signal so far, failed ones included; 0 if it is off
     *         ({@code dnsLeave}), or the URL names its hosts by address only
     */
    public long dnsLookups() {
        DnsLeaveSource d = dns;
        return d == null ? 0 : d.lookups();
    }

    /**
     * @return of {@link #dnsLookups()}, those that failed or answered no address: while a host's lookups fail,
     *         nothing is asked to leave for it, and a switchover by DNS goes unseen (a WARN says so)
     */
    public long dnsLookupFailures() {
        DnsLeaveSource d = dns;
        return d == null ? 0 : d.failedLookups();
    }

    /** @return of {@link #dnsLookups()}, those that answered at least one address (the meter's {@code ok}) */
    long dnsLookupsAnswered() {
        DnsLeaveSource d = dns;
        return d == null ? 0 : d.answeredLookups();
    }

    /** @return the last completed drain, if any */
    public Optional<DrainEpisode> lastDrain() {
        DrainLoop l = loop;
        return l == null ? Optional.empty() : l.lastDrain();
    }

    /** @return true if the evictor runs on HikariCP's public API alone (see {@code docs/how-it-works.md}) */
    public boolean publicApiFallback() {
        return loop != null && publicApi;
    }

    /** @return true while the loop runs: the pool has started and neither it nor this evictor was closed */
    public boolean running() {
        return loop != null && !closed;
    }

    /**
     * Why this evictor does not drain the pool it was installed into, if it does not: the pool started without it
     * (its {@code metricsTrackerFactory} was replaced after {@code install}), its configuration started a second
     * pool, or HikariCP's pool could not be reached (the module path without {@code --add-opens}). Each is also
     * logged once as an ERROR naming the pool, the cause and the fix.
     *
     * @return the problem, naming the pool, the cause and the fix; empty while all is well (or the pool has not
     *         started yet)
     */
    public Optional<String> problem() {
        if (problem == null && loop == null && installedInto != null && !closed) {
            checkStartedWithoutHook();
        }
        return Optional.ofNullable(problem);
    }

    /**
     * The wire layer saw the first connection of the pool this was installed into. HikariCP makes it (fail-fast
     * check) just before it creates the metrics tracker, which attaches the evictor: if the evictor is still not
     * attached {@link #UNCLAIMED_CHECK_SECONDS} later, the pool started without the hook. One ERROR naming the
     * pool, the cause and the fix. Checked on the JVM's common pool: no thread of its own.
     *
     * @param configuredName the pool's name in the configuration at install time (HikariCP may name it later)
     */
    void connectedWithoutEvictor(String configuredName) {
        CompletableFuture.delayedExecutor(UNCLAIMED_CHECK_SECONDS, TimeUnit.SECONDS)
                .execute(() -> unclaimed(configuredName));
    }

    private void unclaimed(String configuredName) {
        if (loop != null || closed) {
            return;
        }
        String name = installedInto != null && installedInto.getPoolName() != null ? installedInto.getPoolName()
                : configuredName;
        failStartedWithoutHook(name);
    }

    private void failStartedWithoutHook(String pool) {
        fail(pool, "the pool started without pool-goaway's start hook (its metricsTrackerFactory was replaced after "
                + "PoolGoAway.install)", "set the metricsTrackerFactory before PoolGoAway.install (pool-goaway hands "
                + "Hikari's metrics on to it), or call GoAwayEvictor.ensureHooked() after setting it");
    }

    /**
     * {@link PoolGoAway#install} found a pool of the configuration's name running already: most likely
     * {@code new HikariDataSource(config)} ran before the install, which the running pool never sees.
     */
    synchronized void startedBeforeInstall(String pool) {
        fail(pool, "a pool of this name was already running when PoolGoAway.install was called (new "
                + "HikariDataSource(config) copies the configuration: an install afterwards changes nothing the "
                + "running pool sees)", "call PoolGoAway.install(config) before new HikariDataSource(config), or "
                + "install into the HikariDataSource before its first getConnection()");
        startedBeforeInstall = true;
    }

    /** A {@link HikariDataSource} installed into that is running without ever having attached this evictor. */
    private void checkStartedWithoutHook() {
        if (installedInto instanceof HikariDataSource ds && (ds.getHikariPoolMXBean() != null || ds.isClosed())
                && !(ds.getMetricsTrackerFactory() instanceof PoolStartHook)) {
            failStartedWithoutHook(ds.getPoolName());
        }
    }

    /** @return the settings in force */
    public EvictorSettings settings() {
        return settings;
    }
}
