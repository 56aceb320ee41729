package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.DnsName;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.LoadGenerator;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * A DNS switchover on stock PostgreSQL: two real servers (18.6, embedded) on one port at two loopback addresses,
 * {@code 127.0.0.2} (blue) and {@code 127.0.0.3} (green), a pool's URL naming them by a host name, and the JVM's own
 * resolver reading that name from a hosts file the test rewrites ({@code jdk.net.hosts.file}, DNS cache TTL 1 s:
 * the build's {@code dns-switchover} execution starts this test's JVM so; without it the test is skipped). Each
 * scenario runs under load and, where plain HikariCP could do differently, runs a plain pool beside pool-goaway's on
 * the same name: the same requests, the same servers, compared. Which pool is on which server comes from the
 * servers themselves ({@code pg_stat_activity} by {@code application_name}), asked over a session of the test's own.
 *
 * <p>The scenarios: the name re-pointed (blue empties, nothing fails, green serves; plain HikariCP stays on blue);
 * the same with the old server in smart shutdown; the new address unreachable (one connection at most goes, the drain
 * stalls with a WARN, nothing fails); the name gone from the hosts file (nothing drained, a WARN); a round-robin
 * name answering subsets of its addresses (nothing drained); a URL naming the server by address (no lookup at all).
 */
class DnsSwitchoverTest {

    private static final String NAME = "db.dns-switchover.test";
    private static final String BLUE = "127.0.0.2";
    private static final String GREEN = "127.0.0.3";
    /** The server of the smart-shutdown scenario, started and stopped by it. */
    private static final String LEAVING = "127.0.0.4";
    /** Nothing listens there: connections are refused. */
    private static final String NOWHERE = "127.0.0.5";
    private static final int SIZE = 6;
    /** Fewer than {@code SIZE - 1}: a pool one connection short still serves every request at once. */
    private static final int WORKERS = 3;
    /**
     * The longest a re-pointed name takes to drain the old server: the cached answer expires (TTL), a lookup sees
     * the new one (an interval), the old address is missing from lookups over the window (and one more interval
     * for the lookup that ends it), the connections go within the drain window; then one connection setup at a
     * time, a few milliseconds each, which a machine busy with other builds can stretch to seconds (the slack).
     */
    private static final Duration DETECTION = Duration.ofSeconds(DnsLeaveSource.cacheTtlSeconds())
            .plus(EvictorSettings.DEFAULT_DNS_LEAVE_INTERVAL.multipliedBy(2)).plus(DnsLeaveSource.defaultWindow())
            .plus(EvictorSettings.DEFAULT_DRAIN_WINDOW);
    private static final Duration SLACK = Duration.ofSeconds(5);

    private static DnsName name;
    private static int port;
    private static EmbeddedUpstream blue;
    private static EmbeddedUpstream green;
    private static Observer onBlue;
    private static Observer onGreen;
    private static LogTap log;

    @BeforeAll
    static void servers() throws Exception {
        assumeTrue(DnsName.available(), "needs a JVM started with -Djdk.net.hosts.file (the build's dns-switchover run)");
        assumeTrue(DnsLeaveSource.cacheTtlSeconds() == 1, "needs a JVM DNS cache TTL of 1 s");
        for (String address : List.of(BLUE, GREEN, LEAVING)) {
            assumeTrue(EmbeddedUpstream.canListenOn(address), "this system does not answer on " + address);
        }
        name = DnsName.of(NAME);
        name.pointTo(BLUE);
        port = EmbeddedUpstream.freePort(BLUE, GREEN, LEAVING, NOWHERE);
        blue = EmbeddedUpstream.startOn(BLUE, port, Map.of());
        green = EmbeddedUpstream.startOn(GREEN, port, Map.of());
        onBlue = new Observer(blue);
        onGreen = new Observer(green);
        log = new LogTap();
    }

    @AfterAll
    static void stop() throws Exception {
        if (log != null) {
            log.close();
        }
        for (AutoCloseable c : new AutoCloseable[] {onBlue, onGreen, blue, green}) {
            if (c != null) {
                c.close();
            }
        }
    }

    @BeforeEach
    void nameOnBlue() throws IOException {
        name.pointTo(BLUE);
        awaitResolves(BLUE);
    }

    @Test
    void aRePointedNameDrainsTheOldServerUnderLoadWhilePlainHikariStaysOnIt() throws Exception {
        try (Pools pools = new Pools("repoint", NAME, true)) {
            pools.awaitAllOn(onBlue);
            long start = System.nanoTime();
            name.pointTo(GREEN);
            await().atMost(DETECTION.plus(SLACK)).pollInterval(Duration.ofMillis(20)).until(() ->
                    onBlue.sessions(pools.goAwayApp()) == 0 && onGreen.sessions(pools.goAwayApp()) == SIZE);
            System.out.printf("re-pointed name: blue empty after %d ms (bound %d ms + slack)%n",
                    Duration.ofNanos(System.nanoTime() - start).toMillis(), DETECTION.toMillis());
            pools.awaitServing();
            pools.assertNothingFailed();
            assertEquals(SIZE, onBlue.sessions(pools.plainApp()), "plain HikariCP stays on the old server");
            assertEquals(0, onGreen.sessions(pools.plainApp()));
            assertEquals(SIZE, pools.signals("dns_moved"), "each connection asked to leave once, as dns_moved");
            DrainEpisode drain = await().atMost(PoolFixture.WAIT).until(pools.evictor::lastDrain,
                    d -> d.isPresent()).orElseThrow();
            assertEquals(Map.of("dns_moved", SIZE), drain.kinds());
            assertTrue(logged("INFO", NAME + " moved: it no longer resolves to " + BLUE + " (now " + GREEN + ")"),
                    "the INFO line names the old and new addresses");
        }
    }

    @Test
    void aRePointedNameDrainsAnOldServerInSmartShutdown() throws Exception {
        try (EmbeddedUpstream leaving = EmbeddedUpstream.startOn(LEAVING, port, Map.of());
                Observer onLeaving = new Observer(leaving)) {
            name.pointTo(LEAVING);
            awaitResolves(LEAVING);
            try (Pools pools = new Pools("smart", NAME, true)) {
                pools.awaitAllOn(onLeaving);
                // The switchover as operators run it: the name moves to green, the old server shuts down smart
                // (it refuses new sessions with 57P03, tells its open ones nothing, and waits for them to end).
                name.pointTo(GREEN);
                leaving.smartShutdown();
                assertEquals("57P03", assertThrows(SQLException.class, () -> DriverManager.getConnection(
                        leaving.jdbcUrl() + "?user=postgres").close()).getSQLState(), "the old server refuses");
                await().atMost(DETECTION.plus(SLACK)).until(() ->
                        onLeaving.sessions(pools.goAwayApp()) == 0 && onGreen.sessions(pools.goAwayApp()) == SIZE);
                pools.awaitServing();
                pools.assertNothingFailed();
                assertEquals(SIZE, onLeaving.sessions(pools.plainApp()),
                        "plain HikariCP stays on the server shutting down");
                // Whichever told first (the name moved, or a new connection was refused with 57P03) asked each.
                assertEquals(SIZE, pools.signals("dns_moved") + pools.signals("server_shutting_down"));
            }
        }
    }

    @Test
    void anUnreachableNewAddressCostsAtMostOneConnectionAndNoRequest() throws Exception {
        try (Pools pools = new Pools("unreachable", NAME, true)) {
            pools.awaitAllOn(onBlue);
            name.pointTo(NOWHERE);
            AtomicInteger fewest = new AtomicInteger(SIZE);
            GoAwayEvictor evictor = pools.evictor;
            await().atMost(DETECTION.plus(SLACK)).until(() -> {
                fewest.accumulateAndGet(onBlue.sessions(pools.goAwayApp()), Math::min);
                return evictor.stalled() && evictor.replacementFailures() > 0;
            });
            long before = pools.goAwayLoad.succeeded();
            await().atMost(PoolFixture.WAIT).until(() -> {
                fewest.accumulateAndGet(onBlue.sessions(pools.goAwayApp()), Math::min);
                return pools.goAwayLoad.succeeded() > before + 300;
            });
            pools.assertNothingFailed();
            assertTrue(fewest.get() >= SIZE - 1, "usable connections never below plain's less one: " + fewest);
            assertEquals(SIZE, onBlue.sessions(pools.plainApp()));
            assertTrue(logged("WARN", pools.goAwayApp() + " - drain stalled"), "a WARN says the drain is stalled");
            assertTrue(evictor.lastReplacementFailure().isPresent());
        }
    }

    @Test
    void aNameThatNoLongerResolvesDrainsNothing() throws Exception {
        try (Pools pools = new Pools("lookup-failure", NAME, false)) {
            pools.awaitAllOn(onBlue);
            name.pointTo();
            // Failed lookups over the window and two more: a failure read as "moved" would have drained by then.
            long enough = 2 + DnsLeaveSource.defaultWindow().toSeconds()
                    / EvictorSettings.DEFAULT_DNS_LEAVE_INTERVAL.toSeconds();
            await().atMost(PoolFixture.WAIT).until(() -> pools.lookups("failed") >= enough);
            assertEquals(0, pools.signals("dns_moved"));
            assertEquals(0, pools.evictor.flaggedConnections());
            assertEquals(SIZE, onBlue.sessions(pools.goAwayApp()));
            pools.awaitServing();
            pools.assertNothingFailed();
            assertTrue(logged("WARN", "DNS lookup of " + NAME + " failed"), "a WARN says the lookup failed");
        }
    }

    @Test
    void aRoundRobinNameAnsweringSubsetsDrainsNothing() throws Exception {
        // Two pools, each on one server: the name answers blue first, then green first (pgjdbc takes the first).
        name.pointTo(BLUE, GREEN);
        awaitResolves(BLUE, GREEN);
        try (Pools onFirst = new Pools("round-robin-blue", NAME, false)) {
            onFirst.awaitAllOn(onBlue);
            name.pointTo(GREEN, BLUE);
            awaitResolves(GREEN, BLUE);
            try (Pools onSecond = new Pools("round-robin-green", NAME, false)) {
                onSecond.awaitAllOn(onGreen);
                // Each server left out of one answer at a time, then both again, twice: a subset is held by the
                // JVM's cache for 1 s, less than the window, and the pools look twice a second, so they see it.
                for (int round = 0; round < 2; round++) {
                    for (String only : List.of(GREEN, BLUE)) {
                        name.pointTo(only);
                        awaitResolves(only);
                        name.pointTo(BLUE, GREEN);
                        awaitResolves(BLUE, GREEN);
                    }
                }
                // Past the window after the last subset: an address judged missing would have been drained.
                long lookups = onFirst.lookups("ok");
                await().atMost(PoolFixture.WAIT).until(() -> onFirst.lookups("ok") >= lookups + 6);
                for (Pools pools : List.of(onFirst, onSecond)) {
                    assertEquals(0, pools.signals("dns_moved"), pools.goAwayApp());
                    assertEquals(0, pools.evictor.flaggedConnections(), pools.goAwayApp());
                    pools.assertNothingFailed();
                }
                assertEquals(SIZE, onBlue.sessions(onFirst.goAwayApp()));
                assertEquals(SIZE, onGreen.sessions(onSecond.goAwayApp()));
            }
        }
    }

    @Test
    void aUrlNamingTheServerByAddressIsNeverLookedUp() throws Exception {
        try (Pools byAddress = new Pools("literal", BLUE, false); Pools byName = new Pools("named", NAME, false)) {
            byAddress.awaitAllOn(onBlue);
            byName.awaitAllOn(onBlue);
            // The pool by name looked its host up a few times meanwhile: the one by address had every chance to.
            await().atMost(PoolFixture.WAIT).until(() -> byName.lookups("ok") >= 3);
            assertEquals(0, byAddress.lookups("ok") + byAddress.lookups("failed"));
        }
    }

    // ---- the name ---------------------------------------------------------------------------------------------

    /** Waits until the JVM's resolver (its cache expired) answers these for the name. */
    private static void awaitResolves(String... addresses) {
        await().atMost(PoolFixture.WAIT).pollInterval(Duration.ofMillis(20))
                .until(name::addresses, List.of(addresses)::equals);
    }

    private static boolean logged(String level, String text) {
        return log.logged(level, text);
    }

    // ---- the pools --------------------------------------------------------------------------------------------

    /**
     * A pool-goaway pool under load and, if asked, a plain HikariCP pool beside it: same URL, same size, same load.
     * Each pool's sessions carry its name as {@code application_name}.
     */
    private static final class Pools implements AutoCloseable {
        final String scenario;
        final SimpleMeterRegistry meters = new SimpleMeterRegistry();
        final GoAwayEvictor evictor;
        final HikariDataSource goAway;
        final LoadGenerator goAwayLoad;
        final HikariDataSource plain;
        final LoadGenerator plainLoad;

        Pools(String scenario, String host, boolean withPlain) {
            this.scenario = scenario;
            HikariConfig config = config(goAwayApp(), host);
            EvictorSettings.Builder settings = EvictorSettings.builder();
            if (scenario.startsWith("round-robin")) {
                // Twice a second: every subset the JVM's cache holds (1 s) is seen by a lookup.
                settings.dnsLeaveInterval(Duration.ofMillis(500));
            }
            evictor = PoolGoAway.install(config, settings.build());
            GoAwayMetrics.bind(evictor, meters);
            goAway = new HikariDataSource(config);
            goAwayLoad = new LoadGenerator(goAway, WORKERS, Duration.ofMillis(2));
            plain = withPlain ? new HikariDataSource(config(plainApp(), host)) : null;
            plainLoad = withPlain ? new LoadGenerator(plain, WORKERS, Duration.ofMillis(2)) : null;
        }

        private static HikariConfig config(String poolName, String host) {
            HikariConfig config = PoolFixture.config("jdbc:postgresql://" + host + ":" + port + "/postgres",
                    poolName, SIZE);
            config.addDataSourceProperty("ApplicationName", poolName);
            // The stall is declared at the first failed attempt; a short timeout keeps a stalled run short.
            config.setConnectionTimeout(2_000);
            return config;
        }

        String goAwayApp() {
            return "dns-" + scenario;
        }

        String plainApp() {
            return "dns-" + scenario + "-plain";
        }

        /** Every connection of each pool is on that server, and the load is served. */
        void awaitAllOn(Observer server) {
            await().atMost(PoolFixture.WAIT).until(() -> server.sessions(goAwayApp()) == SIZE
                    && (plain == null || server.sessions(plainApp()) == SIZE));
            awaitServing();
        }

        void awaitServing() {
            PoolFixture.awaitMoreSucceeded(goAwayLoad, 100);
            if (plainLoad != null) {
                PoolFixture.awaitMoreSucceeded(plainLoad, 100);
            }
        }

        void assertNothingFailed() {
            assertEquals(0, goAwayLoad.failed(), goAwayLoad::failureSummary);
            if (plainLoad != null) {
                assertEquals(0, plainLoad.failed(), plainLoad::failureSummary);
            }
        }

        long signals(String kind) {
            return (long) meters.get(GoAwayMetrics.SIGNALS).tag("kind", kind).counter().count();
        }

        long lookups(String result) {
            FunctionCounter c = meters.find(GoAwayMetrics.DNS_LOOKUPS).tag("result", result).functionCounter();
            return c == null ? 0 : (long) c.count();
        }

        @Override
        public void close() throws Exception {
            try (goAway; HikariDataSource p = plain) {
                goAwayLoad.close();
                if (plainLoad != null) {
                    plainLoad.close();
                }
            }
        }
    }

    /** A session of the test's own on one server, to ask it which pools' sessions it has. */
    private static final class Observer implements AutoCloseable {
        private final Connection session;

        Observer(EmbeddedUpstream server) throws SQLException {
            session = DriverManager.getConnection(server.jdbcUrl() + "?user=postgres&ApplicationName=observer");
        }

        synchronized int sessions(String applicationName) throws SQLException {
            try (PreparedStatement s = session.prepareStatement(
                    "select count(*) from pg_stat_activity where application_name = ?")) {
                s.setString(1, applicationName);
                try (ResultSet rs = s.executeQuery()) {
                    rs.next();
                    return rs.getInt(1);
                }
            }
        }

        @Override
        public void close() throws SQLException {
            session.close();
        }
    }
}
