package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.HikariPoolMXBean;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.testkit.ProxiedConnection;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * The fault drill: a switchover that goes wrong, on real PostgreSQL 18 through the test kit's proxy (which plays the
 * load balancer and the leaving server), run once with pool-goaway and once with plain HikariCP, so that the test can
 * hold the first run to the second. The proxy sends GoAway only to sessions that asked for it, so the plain run is
 * plain HikariCP and pgjdbc.
 *
 * <p>A run: the pool fills and serves a load; the fault begins and the leaving server (blue) asks its clients to
 * leave; the load goes on through the fault, while the pool's connections are sampled every 10 ms; the fault is
 * fixed, the drain must complete, and the load goes on a little longer. Each fault is the real thing where it can be: a
 * closed port (connection refused), a real server with every slot taken (53300), a real smart shutdown's refusal
 * (57P03); the proxy adds only the delay of a slow server and the GoAway a leaving server sends to new connections.
 */
final class FaultDrill {

    static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");
    /**
     * Every drill pool's: short, so that a stall is declared, and retried after its backoff (connectionTimeout, at
     * least 1 s), within a short run.
     */
    static final int CONNECTION_TIMEOUT_MILLIS = 1000;
    /** The lull before a burst: longer than any demand estimate would remember. */
    private static final Duration LULL = Duration.ofSeconds(2);
    /**
     * A burst's threads per connection the pool may have. As many for every shape: 40 threads on a pool of 1, with
     * a 1 s {@code connectionTimeout}, time out in plain HikariCP alone (2+2 failed in one run), and a run with
     * pool-goaway, whose window after the fix lasts until its drain completes (seconds of backoff longer than
     * plain's), then fails more only for serving longer at that edge, not for anything pool-goaway does.
     */
    static final int BURST_PER_CONNECTION = 5;
    /** Requests the load must complete through the fault: the fault lasts at least this long. */
    private static final int REQUESTS_THROUGH_THE_FAULT = 300;

    private FaultDrill() {
    }

    /** What goes wrong at the switchover; {@link #failure} is how the evictor names a failed replacement. */
    enum Fault {
        /** Nothing: new connections go to green, which accepts them. */
        HEALTHY(null),
        /** A stale DNS name or balancer: new connections still go to blue, whose smart shutdown refuses them. */
        STALE("57P03: "),
        /** The new destination is down: nothing listens, every connect is refused. */
        UNREACHABLE("08001: "),
        /** The new server has no slot left: a real PostgreSQL whose max_connections are all taken. */
        FULL("53300: "),
        /**
         * The new server takes twice connectionTimeout to accept a connection: replacements come, but late (none
         * fails; the drain stalls for want of one within connectionTimeout).
         */
        SLOW(null),
        /** The leaving server accepts new connections and asks each of them to leave too. */
        GOAWAY_AGAIN("the new connection to ");

        final String failure;

        Fault(String failure) {
            this.failure = failure;
        }
    }

    /** How the pool is configured. */
    enum Shape {
        FIXED(8, 8), MINIMUM_IDLE_5(8, 5), MINIMUM_IDLE_0(8, 0), ONE(1, 1), SUSPENDED(8, 8), PUBLIC_API(8, 8);

        final int size;
        final int minimumIdle;

        Shape(int size, int minimumIdle) {
            this.size = size;
            this.minimumIdle = minimumIdle;
        }
    }

    /** What the application does through the fault. */
    enum Load {
        /** 3 threads of short transactions. */
        STEADY,
        /**
         * 3 threads, then nothing for {@link #LULL}, then {@link #BURST_PER_CONNECTION} threads per connection of the
         * pool's {@code maximumPoolSize} at once (40 for a pool of 8).
         */
        BURST_AFTER_LULL
    }

    record Scenario(Fault fault, Shape shape, Load load) {
        @Override
        public String toString() {
            return (fault + "-" + shape + "-" + load).toLowerCase(Locale.ROOT);
        }
    }

    /**
     * What one run saw: requests failed during the fault and after it was fixed; the pool's connections when the fault
     * began, the fewest and the most from then until the load had served on after the fix, and the most during the
     * fault (what the drain's raised sizes let the pool grow to, on the leaving server where new connections go
     * there); connections opened through the
     * proxy during the fault (refused and failed ones included; a refused TCP connect never reaches it); and how long
     * the fault lasted.
     */
    record Run(long failedDuringFault, long failedAfterFix, int atStart, int fewest, int most, int mostInFault,
            int opened, long faultMillis) {
        long failed() {
            return failedDuringFault + failedAfterFix;
        }

        /**
         * @return connections lost at the worst moment: a pool that grows with its load starts where it got to (and
         *         one that grew before the first sample lost none: not a negative count that the other run must
         *         beat)
         */
        int lost() {
            return Math.max(0, atStart - fewest);
        }

        @Override
        public String toString() {
            return failedDuringFault + "+" + failedAfterFix + " failed (fault+fixed), " + atStart
                    + " connections then fewest " + fewest + " most " + most + " (" + mostInFault + " in the fault), "
                    + opened + " opened in " + faultMillis + " ms";
        }
    }

    /** Runs the scenario with pool-goaway ({@code install}) or with plain HikariCP, and checks the run's own claims. */
    static Run run(Scenario s, boolean install) throws Exception {
        String poolName = "drill-" + s + (install ? "-pool-goaway" : "-plain");
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("drill-proxy").start();
                LogTap log = new LogTap();
                FullServer.Slots slots = s.fault() == Fault.FULL ? FullServer.takeAllSlots() : null) {
            HikariConfig config = PoolFixture.config(proxy.jdbcUrl("postgres"), poolName, s.shape().size);
            config.setMinimumIdle(s.shape().minimumIdle);
            config.setConnectionTimeout(CONNECTION_TIMEOUT_MILLIS);
            config.setAllowPoolSuspension(s.shape() == Shape.SUSPENDED);
            SimpleMeterRegistry meters = new SimpleMeterRegistry();
            GoAwayEvictor evictor = null;
            if (install) {
                evictor = PoolGoAway.install(config);
                GoAwayMetrics.bind(evictor, meters);
            }
            try (HikariDataSource pool = start(config, s.shape() == Shape.PUBLIC_API);
                    Sampler sampler = new Sampler(pool.getHikariPoolMXBean())) {
                HikariPoolMXBean mx = pool.getHikariPoolMXBean();
                Loads loads = new Loads(pool);
                try {
                    // At minimumIdle at least, or with minimumIdle 0 as large as the load made it. HikariCP tops a
                    // pool up to minimumIdle idle connections only now and then (its housekeeper), so two runs may
                    // start apart: they are compared by what each lost from where it started.
                    int settled = s.shape().minimumIdle == 0 ? Loads.THREADS : s.shape().minimumIdle;
                    await().atMost(PoolFixture.WAIT).until(() -> mx.getTotalConnections() >= settled
                            && loads.current.succeeded() > 50);
                    int atStart = mx.getTotalConnections();
                    long faultStart = System.nanoTime();
                    long lastIdBefore = lastConnectionId(proxy);
                    sampler.start();
                    if (s.shape() == Shape.SUSPENDED) {
                        mx.suspendPool();
                    }
                    begin(s.fault(), proxy, slots);
                    if (s.shape() == Shape.SUSPENDED) {
                        int held = mx.getTotalConnections();
                        if (install) {
                            GoAwayEvictor e = evictor;
                            await().atMost(PoolFixture.WAIT).until(() -> e.flaggedConnections() == held);
                            // Not even the first one goes: stalled, and why.
                            await().atMost(PoolFixture.WAIT).until(e::stalled);
                            assertTrue(e.stallReason().orElseThrow().contains("suspended"),
                                    e.stallReason().orElseThrow());
                        }
                        // A suspended pool opens no connection: nothing may go until it resumes.
                        await().during(Duration.ofMillis(500)).atMost(PoolFixture.WAIT)
                                .until(() -> mx.getTotalConnections() == held);
                        mx.resumePool();
                    }
                    if (s.load() == Load.BURST_AFTER_LULL) {
                        loads.lullThenBurst(mx, BURST_PER_CONNECTION * s.shape().size);
                    }
                    long before = loads.current.succeeded();
                    long failedBefore = loads.failed();
                    GoAwayEvictor e = evictor;
                    boolean drains = install && s.shape() != Shape.PUBLIC_API;
                    boolean failing = drains && s.fault().failure != null;
                    boolean slow = drains && s.fault() == Fault.SLOW;
                    // The fault lasts for a number of requests; with pool-goaway, also until a second replacement
                    // failed (one retry after the backoff: a leaving server asking every replacement to leave shows
                    // its pace) or, for a slow server, until the stall was declared. A failed request ends it at
                    // once: the verdict is in.
                    await().atMost(PoolFixture.WAIT).until(() -> loads.failed() > failedBefore
                            || loads.current.succeeded() > before + REQUESTS_THROUGH_THE_FAULT
                            && (!failing || e.replacementFailures() >= 2)
                            && (!slow || log.contains(poolName + " - drain stalled")));
                    long failedDuringFault = loads.failed();
                    int mostInFault = sampler.most();
                    int opened = (int) proxy.connections().stream().filter(c -> c.id() > lastIdBefore).count();
                    long faultMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - faultStart);
                    if (failing) {
                        assertStalled(e, s.fault(), meters, log, poolName);
                    }
                    if (slow) {
                        // Nothing failed, but no replacement came within connectionTimeout: stalled, and said so.
                        await().atMost(PoolFixture.WAIT).until(() -> log.contains(poolName
                                + " - drain stalled: no replacement came within connectionTimeout ("
                                + CONNECTION_TIMEOUT_MILLIS + " ms)"));
                    }
                    if (install && s.shape() == Shape.PUBLIC_API) {
                        assertTrue(e.stalled() && e.publicApiFallback(), "the fallback says it cannot drain");
                        assertTrue(log.contains(poolName + " - pool-goaway cannot drain this pool through HikariCP's"
                                + " public API alone"), "the fallback's WARN");
                    }
                    fix(s.fault(), proxy, slots);
                    if (drains) {
                        await().atMost(PoolFixture.WAIT).until(() -> !e.stalled() && !e.draining()
                                && PoolFixture.openPidsOn(proxy, blue).isEmpty());
                        assertTrue(e.lastDrain().isPresent(), "a drain completed");
                        assertTrue(e.problem().isEmpty(), () -> e.problem().orElseThrow());
                        // The sizes the drain raised at run time are the user's again.
                        assertEquals(s.shape().size, pool.getHikariConfigMXBean().getMaximumPoolSize(), "put back");
                        assertEquals(s.shape().minimumIdle, pool.getHikariConfigMXBean().getMinimumIdle(),
                                "put back");
                    }
                    // Both runs serve on after the fix, and the pool is sampled until then: the drain's completion
                    // must cost nothing either.
                    PoolFixture.awaitMoreSucceeded(loads.current, 50);
                    sampler.stop();
                    return new Run(failedDuringFault, loads.failed() - failedDuringFault, atStart, sampler.fewest(),
                            sampler.most(), mostInFault, opened,
                            faultMillis);
                } finally {
                    if (s.shape() == Shape.SUSPENDED) {
                        mx.resumePool();
                    }
                    loads.close();
                }
            }
        }
    }

    private static HikariDataSource start(HikariConfig config, boolean publicApi) {
        if (!publicApi) {
            return new HikariDataSource(config);
        }
        // As on a HikariCP release whose internals pool-goaway does not know: read once, when the pool starts.
        System.setProperty(PoolGoAway.INTERNALS_PROPERTY, "false");
        try {
            return new HikariDataSource(config);
        } finally {
            System.clearProperty(PoolGoAway.INTERNALS_PROPERTY);
        }
    }

    private static long lastConnectionId(GoAwayProxy proxy) {
        return proxy.connections().stream().mapToLong(ProxiedConnection::id).max().orElse(0);
    }

    /** The fault, then the leaving server's request to leave. */
    private static void begin(Fault fault, GoAwayProxy proxy, FullServer.Slots slots) throws IOException {
        switch (fault) {
            case HEALTHY -> proxy.retarget(green);
            case STALE -> {
                // New connections still go to blue.
            }
            case UNREACHABLE -> {
                proxy.retarget(green);
                proxy.refuseConnections(true);
            }
            case FULL -> proxy.retarget(slots.server());
            case SLOW -> {
                proxy.retarget(green);
                proxy.connectDelay(Duration.ofMillis(2L * CONNECTION_TIMEOUT_MILLIS));
            }
            case GOAWAY_AGAIN -> {
                // Blue goes on accepting connections, and asks every one to leave: no smart shutdown's refusal.
                proxy.goAwayOnConnect(true);
                proxy.goAway();
                return;
            }
        }
        proxy.smartShutdown(blue);
    }

    private static void fix(Fault fault, GoAwayProxy proxy, FullServer.Slots slots) throws Exception {
        switch (fault) {
            case HEALTHY -> {
            }
            case STALE -> proxy.retarget(green);
            case UNREACHABLE -> proxy.refuseConnections(false);
            case FULL -> slots.close();
            case SLOW -> proxy.connectDelay(Duration.ZERO);
            case GOAWAY_AGAIN -> {
                proxy.retarget(green);
                proxy.goAwayOnConnect(false);
            }
        }
    }

    /** While replacements fail: stalled, the failure named, the meter counted, and the WARN logged. */
    private static void assertStalled(GoAwayEvictor e, Fault fault, SimpleMeterRegistry meters, LogTap log,
            String poolName) {
        assertTrue(e.stalled() && e.replacementFailures() > 0, "stalled while replacements fail");
        String last = e.lastReplacementFailure().orElseThrow();
        assertTrue(last.startsWith(fault.failure), last);
        assertTrue(e.stallReason().orElseThrow().startsWith("replacements fail"), e.stallReason().orElseThrow());
        Counter failed = meters.find(GoAwayMetrics.REPLACEMENTS).tag("result", "failed").counter();
        assertTrue(failed != null && failed.count() > 0, meters::getMetersAsString);
        await().atMost(PoolFixture.WAIT).until(() -> log.contains(poolName + " - drain stalled"));
    }

    /** The load, one generator at a time; the failures of those already closed are kept. */
    private static final class Loads {
        static final int THREADS = 3;
        private final HikariDataSource pool;
        LoadGenerator current;
        private long failedBefore;

        Loads(HikariDataSource pool) {
            this.pool = pool;
            this.current = new LoadGenerator(pool, THREADS, Duration.ofMillis(2));
        }

        /**
         * Nothing for {@link #LULL} (no connection in use), then that many threads until they have done 400 requests
         * (or one failed).
         */
        void lullThenBurst(HikariPoolMXBean mx, int threads) throws Exception {
            close();
            await().pollDelay(LULL).atMost(LULL.plus(PoolFixture.WAIT)).until(() -> mx.getActiveConnections() == 0);
            current = new LoadGenerator(pool, threads, Duration.ofMillis(2));
            await().atMost(PoolFixture.WAIT).until(() -> current.succeeded() > 400 || current.failed() > 0);
        }

        long failed() {
            return failedBefore + (current == null ? 0 : current.failed());
        }

        void close() throws Exception {
            if (current != null) {
                LoadGenerator closing = current;
                current = null;
                closing.close();
                failedBefore += closing.failed();
            }
        }
    }

    /** The pool's connections, every 10 ms, from {@link #start()} to {@link #stop()}: the fewest and most seen. */
    private static final class Sampler implements AutoCloseable {
        private final HikariPoolMXBean mx;
        private final AtomicInteger fewest = new AtomicInteger(Integer.MAX_VALUE);
        private final AtomicInteger most = new AtomicInteger();
        private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "drill-sampler");
            t.setDaemon(true);
            return t;
        });

        Sampler(HikariPoolMXBean mx) {
            this.mx = mx;
        }

        void start() {
            timer.scheduleAtFixedRate(this::sample, 0, 10, TimeUnit.MILLISECONDS);
        }

        private void sample() {
            int total = mx.getTotalConnections();
            fewest.accumulateAndGet(total, Math::min);
            most.accumulateAndGet(total, Math::max);
        }

        void stop() throws InterruptedException {
            timer.shutdown();
            assertTrue(timer.awaitTermination(PoolFixture.WAIT.toSeconds(), TimeUnit.SECONDS));
            sample();
        }

        int fewest() {
            return fewest.get();
        }

        int most() {
            return most.get();
        }

        @Override
        public void close() {
            timer.shutdownNow();
        }
    }

    /**
     * A real PostgreSQL with few slots (and none reserved for superusers), all of which the test can take: new
     * connections then get {@code 53300 sorry, too many clients already} from the server itself.
     */
    static final class FullServer {
        private static final int SLOTS = 10;
        private static EmbeddedUpstream server;

        private FullServer() {
        }

        static synchronized Slots takeAllSlots() throws IOException, SQLException {
            if (server == null) {
                server = EmbeddedUpstream.start(Map.of("max_connections", String.valueOf(SLOTS),
                        "superuser_reserved_connections", "0"));
            }
            Slots slots = new Slots(server);
            String url = "jdbc:postgresql://" + server.host() + ":" + server.port() + "/postgres";
            while (true) {
                try {
                    slots.held.add(DriverManager.getConnection(url, server.user(), server.password()));
                } catch (SQLException e) {
                    if ("53300".equals(e.getSQLState())) {
                        return slots;
                    }
                    slots.close();
                    throw e;
                }
            }
        }

        /** Every slot of the server, held until closed. */
        record Slots(EmbeddedUpstream server, List<Connection> held) implements AutoCloseable {
            Slots(EmbeddedUpstream server) {
                this(server, new ArrayList<>());
            }

            @Override
            public void close() throws SQLException {
                for (Connection c : held) {
                    c.close();
                }
                held.clear();
            }
        }
    }
}
