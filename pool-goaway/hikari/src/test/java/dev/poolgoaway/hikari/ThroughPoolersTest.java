package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.Pooler;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.wire.PgGoAway;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Spring Boot service behind PgBouncer that adds pool-goaway must still start: a HikariCP pool with pool-goaway
 * installed, through a real PgBouncer or pgpool-II, starts (HikariCP fails its start on a first connection that
 * fails), fills, serves concurrent work, and its evictor finds nothing to drain.
 */
class ThroughPoolersTest {

    private static final int POOL_SIZE = 4;

    @ParameterizedTest
    @EnumSource(Pooler.Kind.class)
    void aPoolThroughAPoolerStartsFillsAndWorks(Pooler.Kind kind) throws Exception {
        Optional<String> missing = Pooler.missing(kind);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
        try (Pooler pooler = Pooler.start(kind, EmbeddedUpstream.shared("blue"), false)) {
            HikariConfig config = PoolFixture.config(pooler.jdbcUrl(), "through-" + kind, POOL_SIZE);
            GoAwayEvictor evictor = PoolGoAway.install(config);
            try (HikariDataSource ds = new HikariDataSource(config)) {
                workAndFill(ds, pooler);
                try (Connection c = ds.getConnection()) {
                    assertEquals(0, PgGoAway.signals(c).orElseThrow().protocolMinor(),
                            "pgjdbc's own 3.0 through " + pooler.version());
                }
                assertTrue(evictor.running(), "the evictor runs: GoAway is simply not heard here");
                assertEquals(0, evictor.flaggedConnections());
            }
        }
    }

    /**
     * pgpool-II asking for a password, in front of a server that grants 3.3 without NegotiateProtocolVersion (the
     * test kit's proxy stands in for a PostgreSQL with the GoAway patch): a raised startup fails there after pgjdbc
     * answered the challenge, which no replay repeats. With HikariCP's default {@code initializationFailTimeout} a
     * failing first connection would be an application that does not start; the pool starts, fills and serves as
     * the same pool without pool-goaway does, and the one attempt that failed (a later one, retried by HikariCP)
     * left the peer remembered.
     */
    @ParameterizedTest
    @ValueSource(strings = {"password", "md5"})
    void aPoolThroughPgpoolAskingForAPasswordStartsAsPlainHikariCpDoes(String method) throws Exception {
        Optional<String> missing = Pooler.missing(Pooler.Kind.PGPOOL);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
        EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
        try (GoAwayProxy server = GoAwayProxy.builder().upstream(blue).start();
                Pooler pooler = Pooler.start(Pooler.Kind.PGPOOL,
                        PostgresUpstream.at(server.host(), server.port(), blue.user(), "", blue.database()), false,
                        new Pooler.ClientAuth(method, "pool-" + method))) {
            for (boolean withPoolGoAway : new boolean[] {false, true}) {
                HikariConfig config = PoolFixture.config(pooler.jdbcUrl(), "pgpool-" + method + "-" + withPoolGoAway,
                        POOL_SIZE);
                config.setPassword(pooler.password());
                // Asks for 3.3 alone: the proxy grants it without NegotiateProtocolVersion, as the patch would.
                config.addDataSourceProperty(PgGoAway.GOAWAY_REQUEST, "protocol");
                int refusing = PgGoAway.serversRefusingGoAway();
                SimpleMeterRegistry meters = new SimpleMeterRegistry();
                if (withPoolGoAway) {
                    GoAwayMetrics.bind(PoolGoAway.install(config), meters);
                }
                try (HikariDataSource ds = new HikariDataSource(config)) {
                    workAndFill(ds, pooler);
                    assertEquals(withPoolGoAway ? refusing + 1 : refusing, PgGoAway.serversRefusingGoAway(),
                            "the one raised attempt that failed left the peer remembered");
                    if (withPoolGoAway) {
                        assertEquals(refusing + 1, meters.get(GoAwayMetrics.PEERS_REFUSING)
                                .tag("pool", config.getPoolName()).gauge().value(), "and the gauge says so");
                    }
                } catch (RuntimeException | AssertionError e) {
                    throw new AssertionError((withPoolGoAway ? "with" : "without") + " pool-goaway: " + e
                            + "\n--- pgpool log:\n" + pooler.logText(), e);
                }
            }
        }
    }

    /** Concurrent work, every request answered; then the pool fills (HikariCP does it in the background). */
    private static void workAndFill(HikariDataSource ds, Pooler pooler) throws Exception {
        List<CompletableFuture<Integer>> work = new ArrayList<>();
        for (int i = 0; i < 4 * POOL_SIZE; i++) {
            int n = i;
            work.add(CompletableFuture.supplyAsync(() -> query(ds, n)));
        }
        for (int i = 0; i < work.size(); i++) {
            assertEquals(i, work.get(i).get(), pooler.logText());
        }
        await().atMost(PoolFixture.WAIT).until(() -> ds.getHikariPoolMXBean().getTotalConnections(),
                total -> total == POOL_SIZE);
    }

    private static int query(HikariDataSource ds, int n) {
        try (Connection c = ds.getConnection(); Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("select " + n)) {
            rs.next();
            return rs.getInt(1);
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
    }
}
