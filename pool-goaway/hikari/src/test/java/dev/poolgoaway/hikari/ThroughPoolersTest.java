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

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.Pooler;
import dev.poolgoaway.wire.PgGoAway;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

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
                List<CompletableFuture<Integer>> work = new ArrayList<>();
                for (int i = 0; i < 4 * POOL_SIZE; i++) {
                    int n = i;
                    work.add(CompletableFuture.supplyAsync(() -> query(ds, n)));
                }
                for (int i = 0; i < work.size(); i++) {
                    assertEquals(i, work.get(i).get(), pooler.logText());
                }
                // HikariCP fills the pool in the background, one connection at a time.
                await().atMost(PoolFixture.WAIT).until(() -> ds.getHikariPoolMXBean().getTotalConnections(),
                        total -> total == POOL_SIZE);
                try (Connection c = ds.getConnection()) {
                    assertEquals(0, PgGoAway.signals(c).orElseThrow().protocolMinor(),
                            "pgjdbc's own 3.0 through " + pooler.version());
                }
                assertTrue(evictor.running(), "the evictor runs: GoAway is simply not heard here");
                assertEquals(0, evictor.flaggedConnections());
            }
        }
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
