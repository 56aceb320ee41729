package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.wire.PgGoAway;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A pool's first connection to a GoAway server that asks for a password goes out with pgjdbc's own request (the
 * wire layer's precaution, so that a raised startup failing after the challenge can never be the pool's first
 * connection) and cannot hear GoAway. Once a later connection to the server hears it, the evictor replaces that
 * first one ({@code goaway_deferred}): the whole pool then hears the switchover. The test kit's proxy stands in for
 * a PostgreSQL with the GoAway patch; the password (SCRAM) is the real PostgreSQL's behind it.
 */
class FirstConnectionTest {

    private static final Logger log = LoggerFactory.getLogger(FirstConnectionTest.class);
    private static final int POOL_SIZE = 4;

    @Test
    void theFirstConnectionToAPasswordServerIsReplacedOnceTheServerGrantsGoAway(@TempDir Path dir) throws Exception {
        Path hba = dir.resolve("pg_hba.conf");
        Files.writeString(hba, "local all all trust\nhost all app 127.0.0.1/32 scram-sha-256\n"
                + "host all app ::1/128 scram-sha-256\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n");
        try (EmbeddedUpstream server = EmbeddedUpstream.start(Map.of("hba_file", hba.toString()))) {
            try (Connection admin = DriverManager.getConnection(server.jdbcUrl(), server.user(), "");
                    Statement s = admin.createStatement()) {
                s.execute("create role app login password 'app-secret'");
            }
            try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(server).start()) {
                HikariConfig config = PoolFixture.config(proxy.jdbcUrl(server.database()), "first-connection",
                        POOL_SIZE);
                config.setUsername("app");
                config.setPassword("app-secret");
                SimpleMeterRegistry meters = new SimpleMeterRegistry();
                GoAwayMetrics.bind(PoolGoAway.install(config), meters);
                long started = System.nanoTime();
                try (HikariDataSource pool = new HikariDataSource(config)) {
                    await().atMost(PoolFixture.WAIT).until(() -> capable(pool) == POOL_SIZE);
                    long allCapableMillis = (System.nanoTime() - started) / 1_000_000;
                    assertEquals(1.0, meters.get(GoAwayMetrics.SIGNALS).tag("kind", "goaway_deferred").counter()
                            .count(), "the first connection, replaced once");
                    assertEquals(0.0, meters.get(GoAwayMetrics.SIGNALS).tag("kind", "goaway").counter().count());
                    assertFalse(PgGoAway.grantsGoAway("nowhere:1"));
                    assertEquals(POOL_SIZE, proxy.goAway(), "GoAway reaches every pooled connection");
                    log.info("all {} connections GoAway-capable {} ms after the pool started", POOL_SIZE,
                            allCapableMillis);
                    await().atMost(PoolFixture.WAIT).until(() -> meters.get(GoAwayMetrics.SIGNALS)
                            .tag("kind", "goaway").counter().count() == POOL_SIZE);
                }
            }
        }
    }

    /** @return how many of the pool's connections can hear GoAway, borrowing them all at once */
    private static int capable(HikariDataSource pool) throws SQLException {
        List<Connection> all = new ArrayList<>();
        try {
            int n = 0;
            for (int i = 0; i < POOL_SIZE; i++) {
                Connection c = pool.getConnection();
                all.add(c);
                n += PgGoAway.signals(c).orElseThrow().goAwayCapable() ? 1 : 0;
            }
            return n;
        } finally {
            for (Connection c : all) {
                c.close();
            }
        }
    }
}
