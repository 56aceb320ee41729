package dev.poolgoaway.hikari;

import static dev.poolgoaway.hikari.PoolFixture.WAIT;
import static dev.poolgoaway.hikari.PoolFixture.openPidsOn;
import static dev.poolgoaway.hikari.PoolFixture.serverPort;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.metrics.micrometer.MicrometerMetricsTrackerFactory;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.ProxyEvent;
import dev.poolgoaway.wire.PgGoAway;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * The ways people really wire HikariCP, each once misused against pool-goaway (see the reproduction in each test),
 * on real HikariCP, pgjdbc and PostgreSQL through the test kit's proxy: every way either drains, or says loudly
 * that it does not.
 */
class WiringTest {

    /** The fixture's servers, shared by the JVM's tests; the proxy and the pools are each test's. */
    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");
    private GoAwayProxy proxy;
    private final List<HikariDataSource> pools = new ArrayList<>();

    @BeforeEach
    void startProxy() throws Exception {
        proxy = GoAwayProxy.builder().upstream(blue).name("wiring-proxy").start();
    }

    @AfterEach
    void closePoolsAndProxy() {
        pools.forEach(HikariDataSource::close);
        proxy.close();
    }

    private HikariConfig config(String name, int size) {
        return PoolFixture.config(proxy.jdbcUrl("postgres"), name, size);
    }

    /** A data source that starts at its first getConnection(), as Spring Boot's do. */
    private HikariDataSource lazyPool(String name, int size) {
        HikariDataSource ds = new HikariDataSource();
        pools.add(ds);
        config(name, size).copyStateTo(ds);
        return ds;
    }

    private HikariDataSource start(HikariConfig config) {
        HikariDataSource ds = new HikariDataSource(config);
        pools.add(ds);
        await().atMost(WAIT).until(() -> ds.getHikariPoolMXBean().getTotalConnections() == config.getMinimumIdle());
        return ds;
    }

    @Test
    void aMetricsTrackerFactorySetOnTheRunningPoolIsTakenAsPlainHikariTakesIt() throws Exception {
        // Was: IllegalStateException "MetricsTrackerFactory can only be set one time" (pool-goaway's hook counted).
        HikariDataSource ds = lazyPool("late-metrics", 2);
        GoAwayEvictor evictor = PoolGoAway.install(ds);
        try (Connection c = ds.getConnection()) {
            assertEquals(blue.port(), serverPort(c));
        }
        await().atMost(WAIT).until(evictor::running);
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        assertDoesNotThrow(() -> ds.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(meters)));
        try (Connection c = ds.getConnection()) {
            assertEquals(blue.port(), serverPort(c));
        }
        assertNotNull(meters.find("hikaricp.connections").tag("pool", "late-metrics").gauge(),
                "Hikari's own meters, as without pool-goaway");
        assertTrue(evictor.running(), "and the evictor stays");
    }

    @Test
    void aMetricsTrackerFactorySetAfterInstallIsReportedWhenThePoolStartsWithoutTheEvictor() throws Exception {
        // Was: no evictor, not one line. Now an ERROR once and problem(), which Spring's health shows.
        HikariDataSource ds = lazyPool("replaced-hook", 1);
        GoAwayEvictor evictor = PoolGoAway.install(ds);
        assertTrue(evictor.problem().isEmpty(), "not started yet: nothing wrong");
        ds.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(new SimpleMeterRegistry()));
        try (Connection c = ds.getConnection()) {
            assertEquals(blue.port(), serverPort(c));
        }
        String problem = evictor.problem().orElseThrow();
        assertTrue(problem.startsWith("replaced-hook - "), problem);
        assertTrue(problem.contains("metricsTrackerFactory was replaced after PoolGoAway.install"), problem);
        assertTrue(problem.contains("Fix: set the metricsTrackerFactory before PoolGoAway.install"), problem);
        assertFalse(evictor.running());
    }

    @Test
    void aConfigurationWhoseMetricsTrackerFactoryIsSetAfterInstallIsReportedAtThePoolsFirstConnection() {
        // Was: install(config), config.setMetricsTrackerFactory(...), new HikariDataSource(config): not drained,
        // and not one line, since the evictor was installed into the configuration, not the running pool.
        HikariConfig config = config("late-tracker", 2);
        GoAwayEvictor evictor = PoolGoAway.install(config);
        config.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(new SimpleMeterRegistry()));
        start(config);
        // Within seconds of the first connection (HikariCP attaches the evictor right after making it, or never).
        await().atMost(Duration.ofSeconds(5)).until(() -> evictor.problem().isPresent());
        String problem = evictor.problem().orElseThrow();
        assertTrue(problem.startsWith("late-tracker - "), problem);
        assertTrue(problem.contains("metricsTrackerFactory was replaced after PoolGoAway.install"), problem);
        assertTrue(problem.contains("Fix: set the metricsTrackerFactory before PoolGoAway.install"), problem);
        assertFalse(evictor.running());
    }

    @Test
    void aMetricsTrackerFactorySetAfterInstallIsChainedBehindTheHookAgainAndThePoolDrains() throws Exception {
        // What Spring's installer does once every bean is initialized (a @PostConstruct set the factory).
        HikariDataSource ds = lazyPool("rehooked", 3);
        GoAwayEvictor evictor = PoolGoAway.install(ds);
        SimpleMeterRegistry own = new SimpleMeterRegistry();
        ds.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(own));
        assertTrue(evictor.ensureHooked());
        try (Connection c = ds.getConnection()) {
            assertEquals(blue.port(), serverPort(c));
        }
        await().atMost(WAIT).until(evictor::running);
        assertNotNull(own.find("hikaricp.connections").tag("pool", "rehooked").gauge(), "the user's tracker");
        await().atMost(WAIT).until(() -> openPidsOn(proxy, blue).size() == 3);
        proxy.retarget(green);
        proxy.smartShutdown(blue).get(WAIT.toSeconds(), java.util.concurrent.TimeUnit.SECONDS);
        try (Connection c = ds.getConnection()) {
            assertEquals(green.port(), serverPort(c));
        }
        // The drain ends once the pool is whole again on green; it names the server it drained.
        DrainEpisode drained = await().atMost(WAIT).until(evictor::lastDrain, Optional::isPresent).orElseThrow();
        assertEquals(List.of("localhost:" + proxy.port()), drained.servers());
        assertTrue(evictor.problem().isEmpty());
    }

    @Test
    void aConfigurationUsedForASecondPoolIsReportedAndTheFirstStillDrains() throws Exception {
        // Was: attach returned early, the second pool ran undrained without a word.
        HikariConfig config = config("first", 2);
        GoAwayEvictor evictor = PoolGoAway.install(config);
        HikariDataSource first = start(config);
        config.setPoolName("second");
        start(config);
        String problem = evictor.problem().orElseThrow();
        assertTrue(problem.startsWith("second - ") && problem.contains("'first' has this evictor already"), problem);
        assertEquals("first", evictor.poolName());
        int pid;
        try (Connection c = first.getConnection()) {
            pid = PgGoAway.signals(c).orElseThrow().backendPid().getAsInt();
        }
        proxy.retarget(green);
        assertTrue(proxy.goAway(pid));
        await().atMost(WAIT).until(() -> !openPidsOn(proxy, blue).contains(pid));
    }

    @Test
    void inUseConnectionsAskedToCloseOnReturnStayWithinTheBound() throws Exception {
        // Was: pool of 8, all in use, bound 2: all 8 marked in one run; once returned, the pool fell to 0.
        int size = 8;
        int bound = 2;
        HikariConfig config = config("bounded", size);
        GoAwayEvictor evictor = PoolGoAway.install(config, EvictorSettings.builder()
                .maxReplacementsInFlight(bound).build());
        HikariDataSource ds = start(config);
        List<Connection> held = new ArrayList<>();
        for (int i = 0; i < size; i++) {
            held.add(ds.getConnection());
        }
        proxy.retarget(green);
        Instant goAway = Instant.now();
        assertEquals(size, proxy.goAway());
        for (Connection c : held) {
            assertEquals(blue.port(), serverPort(c), "the statement reads the GoAway");
        }
        await().atMost(WAIT).until(() -> evictor.flaggedConnections() == size);
        for (Connection c : held) {
            c.close();
        }
        await().atMost(WAIT).until(() -> openPidsOn(proxy, blue).isEmpty() && proxy.openConnections().size() == size);
        assertTrue(minimumOpenSince(goAway, size) >= size - bound, () -> "the pool fell to "
                + minimumOpenSince(goAway, size) + " connections: " + proxy.timeline());
    }

    /** @return the fewest connections open through the proxy at any moment since {@code from} */
    private int minimumOpenSince(Instant from, int openThen) {
        Set<Long> connected = new HashSet<>();
        int open = 0;
        int min = Integer.MAX_VALUE;
        for (ProxyEvent e : proxy.timeline()) {
            if (e.kind() == ProxyEvent.Kind.CONNECTED) {
                connected.add(e.connectionId());
                open++;
            } else if (e.kind() == ProxyEvent.Kind.CLOSED && connected.remove(e.connectionId())) {
                open--;
            }
            if (!e.at().isBefore(from)) {
                min = Math.min(min, open);
            }
        }
        assertEquals(openThen, Math.max(open, openThen), "timeline consistent");
        return min;
    }

    @Test
    void noMeterOutlivesItsPoolAndAPoolStartedAgainUnderTheSameNameGetsFreshOnes() throws Exception {
        // Was: poolgoaway.* stayed registered; the same name got the dead evictor's gauge back.
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        HikariConfig config = config("meters", 1);
        GoAwayMetrics.bind(PoolGoAway.install(config), meters);
        HikariDataSource ds = start(config);
        Gauge before = meters.find(GoAwayMetrics.FLAGGED).tag("pool", "meters").gauge();
        assertNotNull(before);
        ds.close();
        await().atMost(WAIT).until(() -> poolGoAwayMeters(meters).isEmpty());

        HikariConfig again = config("meters", 1);
        GoAwayEvictor evictor = PoolGoAway.install(again);
        GoAwayMetrics.bind(evictor, meters);
        HikariDataSource second = start(again);
        Gauge after = meters.find(GoAwayMetrics.FLAGGED).tag("pool", "meters").gauge();
        assertNotSame(before, after, "a gauge of the new evictor");
        int pid;
        try (Connection c = second.getConnection()) {
            pid = PgGoAway.signals(c).orElseThrow().backendPid().getAsInt();
            assertTrue(proxy.goAway(pid));
            serverPort(c);
            await().atMost(WAIT).until(() -> after.value() == 1.0);
        }
        second.close();
        await().atMost(WAIT).until(() -> poolGoAwayMeters(meters).isEmpty());
    }

    private static List<Meter> poolGoAwayMeters(SimpleMeterRegistry meters) {
        return meters.getMeters().stream().filter(m -> m.getId().getName().startsWith("poolgoaway.")).toList();
    }

    @Test
    void aRefusedPoolIsLeftAsTheUserMadeIt() {
        // Was: dataSource set, dataSourceClassName nulled, then the refusal.
        HikariConfig notPg = new HikariConfig();
        notPg.setDataSourceClassName(HikariDataSource.class.getName());
        notPg.addDataSourceProperty("poolName", "inner");
        assertThrows(IllegalArgumentException.class, () -> PoolGoAway.install(notPg));
        assertEquals(HikariDataSource.class.getName(), notPg.getDataSourceClassName());
        assertNull(notPg.getDataSource());
        assertNull(notPg.getMetricsTrackerFactory());
        assertEquals("inner", notPg.getDataSourceProperties().get("poolName"));

        HikariConfig badSetting = config("bad-setting", 1);
        String url = badSetting.getJdbcUrl() + "?sslfactory=org.postgresql.ssl.NonValidatingFactory&ApplicationName=a";
        badSetting.setJdbcUrl(url);
        badSetting.addDataSourceProperty(PgGoAway.GOAWAY_REQUEST, "banana");
        assertThrows(IllegalArgumentException.class, () -> PoolGoAway.install(badSetting));
        assertEquals(url, badSetting.getJdbcUrl(), "the URL's parameters stay where they were");
        assertEquals(1, badSetting.getDataSourceProperties().size());
        assertNull(badSetting.getMetricsTrackerFactory());
    }

    @Test
    void theEvictorRunsOnThePoolsThreadFactoryOrScheduledExecutorAsHikarisOwnTasksDo() throws Exception {
        // Was: a thread of its own, whatever the pool was given.
        AtomicInteger made = new AtomicInteger();
        HikariConfig custom = config("custom-threads", 1);
        custom.setThreadFactory(r -> {
            Thread t = new Thread(r, "app-thread-" + made.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        GoAwayEvictor onFactory = PoolGoAway.install(custom);
        start(custom);
        await().atMost(WAIT).until(onFactory::running);
        assertTrue(PoolFixture.liveThreads(PoolFixture.EVICTOR_THREAD).isEmpty());

        ScheduledExecutorService shared = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "app-scheduler");
            t.setDaemon(true);
            return t;
        });
        try {
            HikariConfig scheduled = config("scheduled", 1);
            scheduled.setScheduledExecutor(shared);
            GoAwayEvictor onExecutor = PoolGoAway.install(scheduled);
            HikariDataSource ds = start(scheduled);
            await().atMost(WAIT).until(onExecutor::running);
            assertTrue(PoolFixture.liveThreads(PoolFixture.EVICTOR_THREAD).isEmpty());
            Set<Integer> others = pidsOf(pools.get(0));
            int pid = openPidsOn(proxy, blue).stream().filter(p -> !others.contains(p)).findFirst().orElseThrow();
            proxy.retarget(green);
            proxy.goAway(pid);
            await().atMost(WAIT).until(() -> !openPidsOn(proxy, blue).contains(pid));
            ds.close();
            await().atMost(WAIT).until(() -> !onExecutor.running());
            assertFalse(shared.isShutdown(), "the user's executor is the user's");
        } finally {
            shared.shutdownNow();
        }
        assertTrue(made.get() > 0);
    }

    @Test
    void aPoolWhoseConstructorThrowsAfterTheEvictorStartedDoesNotKeepTheEvictorForever() throws Exception {
        // Was: the evictor ran on for good, for a pool nobody could ever shut down. Here HikariCP's constructor
        // throws when it schedules its housekeeper, after it created the metrics tracker (the evictor's start).
        ScheduledThreadPoolExecutor refusing = new ScheduledThreadPoolExecutor(1) {
            @Override
            public ScheduledFuture<?> scheduleWithFixedDelay(Runnable task, long initialDelay, long delay,
                    TimeUnit unit) {
                throw new RejectedExecutionException("no periodic tasks here");
            }
        };
        try {
            HikariConfig config = config("never-started", 1);
            config.setScheduledExecutor(refusing);
            config.setKeepaliveTime(0);
            GoAwayEvictor evictor = PoolGoAway.install(config, EvictorSettings.builder().tick(Duration.ofMillis(20))
                    .build());
            assertThrows(RejectedExecutionException.class, () -> new HikariDataSource(config));
            assertTrue(evictor.running(), "it had started");
            await().atMost(WAIT).until(() -> !evictor.running());
            // Left on the executor: HikariCP's own max-lifetime task for the connection its constructor made.
            await().atMost(WAIT).until(() -> refusing.getQueue().size() == 1);
        } finally {
            refusing.shutdownNow();
        }
    }

    private static Set<Integer> pidsOf(HikariDataSource ds) throws Exception {
        try (Connection c = ds.getConnection()) {
            return Set.of(PoolFixture.serverPid(c));
        }
    }
}
