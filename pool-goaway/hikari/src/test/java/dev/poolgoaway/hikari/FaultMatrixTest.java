package dev.poolgoaway.hikari;

import static dev.poolgoaway.hikari.PoolFixture.WAIT;
import static dev.poolgoaway.hikari.PoolFixture.awaitMoreSucceeded;
import static dev.poolgoaway.hikari.PoolFixture.openPidsOn;
import static dev.poolgoaway.hikari.PoolFixture.serverPort;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.postgresql.PGConnection;
import org.postgresql.copy.PGCopyInputStream;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.ProxyEvent;
import dev.poolgoaway.wire.PgGoAway;

/**
 * The fault matrix: a switchover gone wrong in each way a real one can, with real HikariCP, pgjdbc, two real
 * PostgreSQL servers and the test kit's proxy. Every test asserts that the pool recovers (serves from the healthy
 * server afterwards), that every request the load issued either succeeded or failed visibly (no request lost; no
 * failure at all where the server only asked to leave), and that closing the pool and the proxy leaves no socket and
 * no thread behind.
 */
class FaultMatrixTest {

    private static final String POOL = "fault-matrix";
    private static final String PROXY = "fault-proxy";
    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");
    private GoAwayProxy proxy;
    private HikariDataSource pool;
    private GoAwayEvictor evictor;

    @BeforeEach
    void startProxy() throws Exception {
        proxy = proxyTo(blue);
    }

    private static GoAwayProxy proxyTo(PostgresUpstream server) throws IOException {
        return GoAwayProxy.builder().upstream(server).name(PROXY).start();
    }

    /** Closes the pool, then checks that nothing is left of it, and that the proxy leaves no thread either. */
    @AfterEach
    void closeAndCheckForLeaks() {
        try {
            if (pool != null) {
                pool.close();
                PoolFixture.awaitNothingLeftOf(POOL, proxy);
            }
        } finally {
            proxy.close();
        }
        await().atMost(WAIT).until(() -> PoolFixture.liveThreads(PROXY + "-").isEmpty());
    }

    private HikariDataSource pool(int size, EvictorSettings settings) {
        HikariConfig config = PoolFixture.config(proxy.jdbcUrl("postgres"), POOL, size);
        evictor = PoolGoAway.install(config, settings);
        pool = new HikariDataSource(config);
        await().atMost(WAIT).until(() -> pool.getHikariPoolMXBean().getTotalConnections() == size);
        return pool;
    }

    /** The pool serves from {@code server} alone: every connection, borrowed at once, is on it. */
    private void assertServesFrom(PostgresUpstream server, int size) throws SQLException {
        await().atMost(WAIT).until(() -> openPidsOn(proxy, server).size() == size
                && proxy.openConnections().size() == size);
        List<Connection> all = new ArrayList<>();
        try {
            for (int i = 0; i < size; i++) {
                all.add(pool.getConnection());
                assertEquals(server.port(), serverPort(all.get(i)));
            }
        } finally {
            for (Connection c : all) {
                c.close();
            }
        }
    }

    /** Every failure is one the application saw as an SQLException of a connection ended by the server. */
    private static void assertOnlyServerEndedFailures(LoadGenerator load) {
        for (Throwable t : load.failures()) {
            assertTrue(t instanceof SQLException e && e.getSQLState() != null
                    && (e.getSQLState().equals("57P01") || e.getSQLState().startsWith("08")),
                    () -> "not a server-ended connection: " + t);
        }
    }

    @Test
    void goAwayInsideAnOpenTransaction() throws Exception {
        pool(6, EvictorSettings.defaults());
        try (LoadGenerator load = new LoadGenerator(pool, 4, Duration.ofMillis(2))) {
            await().atMost(WAIT).until(() -> load.succeeded() > 50);
            try (Connection held = pool.getConnection()) {
                held.setAutoCommit(false);
                try (Statement s = held.createStatement()) {
                    s.execute("create temp table held (v int)");
                    s.execute("insert into held values (1), (2)");
                    proxy.retarget(green);
                    proxy.smartShutdown(blue);
                    await().atMost(WAIT).until(() -> PgGoAway.goAwayReceived(held) || pollsGoAway(held));
                    s.execute("insert into held values (3)");
                    try (var rs = s.executeQuery("select sum(v) from held")) {
                        rs.next();
                        assertEquals(6, rs.getInt(1), "the transaction saw all its work");
                    }
                }
                held.commit();
                assertEquals(blue.port(), serverPort(held), "never moved while in use");
            }
            awaitMoreSucceeded(load, 50);
        }
        assertServesFrom(green, 6);
        assertTrue(openPidsOn(proxy, blue).isEmpty());
    }

    /** A statement on the held connection reads what the server sent: the GoAway comes in with its reply. */
    private static boolean pollsGoAway(Connection held) throws SQLException {
        try (Statement s = held.createStatement()) {
            s.execute("select 1");
        }
        return PgGoAway.goAwayReceived(held);
    }

    @Test
    void goAwayDuringCopyOut() throws Exception {
        pool(4, EvictorSettings.defaults());
        int rows = 400_000;
        long lines = 0;
        long sum = 0;
        try (LoadGenerator load = new LoadGenerator(pool, 2, Duration.ofMillis(2)); Connection c = pool.getConnection()) {
            PGCopyInputStream copy = new PGCopyInputStream(c.unwrap(PGConnection.class),
                    "copy (select g from generate_series(1, " + rows + ") g) to stdout");
            // Far more than the socket buffers hold: the GoAway lands between CopyData messages still to come.
            try (BufferedReader lineReader = new BufferedReader(new InputStreamReader(copy,
                    StandardCharsets.US_ASCII))) {
                for (String line; (line = lineReader.readLine()) != null; ) {
                    lines++;
                    sum += Long.parseLong(line);
                    if (lines == 1000) {
                        proxy.retarget(green);
                        proxy.smartShutdown(blue);
                    }
                }
            }
            assertEquals(rows, lines, "every row of the COPY arrived");
            assertEquals((long) rows * (rows + 1) / 2, sum, "and arrived intact");
            assertTrue(PgGoAway.goAwayReceived(c), "the GoAway came inside the COPY data and was removed from it");
            assertEquals(blue.port(), serverPort(c), "the connection still works after the COPY");
            awaitMoreSucceeded(load, 20);
            assertEquals(0, load.failed(), load::failureSummary);
        }
        assertServesFrom(green, 4);
    }

    @Test
    void goAwayToAConnectionThatLeaked() throws Exception {
        pool(4, EvictorSettings.defaults());
        Connection leaked = pool.getConnection();
        int leakedPid = PgGoAway.signals(leaked).orElseThrow().backendPid().getAsInt();
        try (LoadGenerator load = new LoadGenerator(pool, 2, Duration.ofMillis(2))) {
            await().atMost(WAIT).until(() -> load.succeeded() > 20);
            proxy.retarget(green);
            proxy.smartShutdown(blue);
            // Everything but the leak moves. Nobody reads the leak's socket (the evictor never reads a connection in
            // use), so its GoAway waits there, and the drain of the rest completes without it.
            await().atMost(WAIT).until(() -> openPidsOn(proxy, blue).equals(Set.of(leakedPid))
                    && openPidsOn(proxy, green).size() == 3);
            await().atMost(WAIT).until(() -> evictor.lastDrain().isPresent() && !evictor.draining());
            awaitMoreSucceeded(load, 20);
            assertEquals(0, load.failed(), load::failureSummary);
        }
        // The holder's next statement reads the GoAway: from then on the leak is flagged, never interrupted.
        assertEquals(blue.port(), serverPort(leaked), "the leaked connection still works for its holder");
        assertTrue(PgGoAway.goAwayReceived(leaked));
        await().atMost(WAIT).until(() -> evictor.flaggedConnections() == 1);
        assertFalse(leaked.isClosed());
        assertEquals(Set.of(leakedPid), openPidsOn(proxy, blue));
        // Closing the pool aborts the leak (Hikari's shutdown): the after-each check finds no socket left.
    }

    @Test
    void goAwayWhileThePoolIsExhaustedWithWaiters() throws Exception {
        pool(4, EvictorSettings.defaults());
        try (LoadGenerator load = new LoadGenerator(pool, 12, Duration.ofMillis(20))) {
            await().atMost(WAIT).until(() -> pool.getHikariPoolMXBean().getThreadsAwaitingConnection() > 0);
            proxy.retarget(green);
            proxy.smartShutdown(blue).get(WAIT.toSeconds(), TimeUnit.SECONDS);
            awaitMoreSucceeded(load, 50);
            assertEquals(0, load.failed(), load::failureSummary);
        }
        assertServesFrom(green, 4);
    }

    @Test
    void upstreamCrashMidDrain() throws Exception {
        EmbeddedUpstream red = EmbeddedUpstream.start();
        boolean crashed = false;
        try {
            proxy.close();
            proxy = proxyTo(red);
            // A long window: the drain is still under way when the old server dies.
            pool(6, EvictorSettings.builder().drainWindow(Duration.ofSeconds(30)).build());
            try (LoadGenerator load = new LoadGenerator(pool, 4, Duration.ofMillis(10))) {
                await().atMost(WAIT).until(() -> load.succeeded() > 30);
                proxy.retarget(green);
                proxy.smartShutdown(red);
                await().atMost(WAIT).until(() -> evictor.draining());
                red.close();
                crashed = true;
                awaitMoreSucceeded(load, 100);
                // Only requests in flight on the dying server can fail: at most one per load thread.
                // Each terminated connection can fail one request: the one in flight on it, or the first to borrow it
            // before the evictor's next poll finds the FATAL (Hikari skips validation within aliveBypassWindow).
            assertTrue(load.failed() <= 6, load::failureSummary);
                assertOnlyServerEndedFailures(load);
            }
            assertServesFrom(green, 6);
            assertTrue(openPidsOn(proxy, red).isEmpty());
        } finally {
            if (!crashed) {
                red.close();
            }
        }
    }

    @Test
    void newUpstreamRefusingConnectionsDuringTheDrain() throws Exception {
        pool(8, EvictorSettings.defaults());
        try (LoadGenerator load = new LoadGenerator(pool, 3, Duration.ofMillis(2))) {
            await().atMost(WAIT).until(() -> load.succeeded() > 50);
            // Blue shuts down while the load balancer still sends new connections to it: 57P03 for every one.
            proxy.smartShutdown(blue);
            await().atMost(WAIT).until(() -> proxy.timeline().stream()
                    .anyMatch(e -> e.kind() == ProxyEvent.Kind.REFUSED));
            awaitMoreSucceeded(load, 100);
            assertEquals(0, load.failed(), () -> "the pool kept serving from blue meanwhile: "
                    + load.failureSummary());
            proxy.retarget(green);
            proxy.smartShutdown(blue).get(WAIT.toSeconds(), TimeUnit.SECONDS);
            awaitMoreSucceeded(load, 50);
            assertEquals(0, load.failed(), load::failureSummary);
        }
        assertServesFrom(green, 8);
    }

    @Test
    void goAwayTwice() throws Exception {
        pool(6, EvictorSettings.defaults());
        try (LoadGenerator load = new LoadGenerator(pool, 4, Duration.ofMillis(2))) {
            await().atMost(WAIT).until(() -> load.succeeded() > 50);
            proxy.retarget(green);
            assertEquals(6, proxy.goAway());
            assertEquals(6, proxy.goAway(), "the second GoAway reaches the same connections");
            await().atMost(WAIT).until(() -> openPidsOn(proxy, blue).isEmpty());
            await().atMost(WAIT).until(() -> evictor.lastDrain().isPresent() && !evictor.draining());
            assertEquals(6, evictor.lastDrain().get().connections(), "each connection drained once");
            awaitMoreSucceeded(load, 50);
            assertEquals(0, load.failed(), load::failureSummary);
        }
        assertServesFrom(green, 6);
    }

    @Test
    void goAwayFollowedByTerminate() throws Exception {
        pool(6, EvictorSettings.builder().drainWindow(Duration.ofSeconds(30)).build());
        try (LoadGenerator load = new LoadGenerator(pool, 4, Duration.ofMillis(10))) {
            await().atMost(WAIT).until(() -> load.succeeded() > 30);
            proxy.retarget(green);
            proxy.smartShutdown(blue);
            await().atMost(WAIT).until(() -> evictor.draining());
            // The admin loses patience: fast shutdown of what is left on blue, with a message.
            for (int pid : openPidsOn(proxy, blue)) {
                proxy.terminate(pid, "blue is going away now");
            }
            await().atMost(WAIT).until(() -> openPidsOn(proxy, blue).isEmpty());
            awaitMoreSucceeded(load, 100);
            // Each terminated connection can fail one request: the one in flight on it, or the first to borrow it
            // before the evictor's next poll finds the FATAL (Hikari skips validation within aliveBypassWindow).
            assertTrue(load.failed() <= 6, load::failureSummary);
            assertOnlyServerEndedFailures(load);
        }
        assertServesFrom(green, 6);
    }
}
