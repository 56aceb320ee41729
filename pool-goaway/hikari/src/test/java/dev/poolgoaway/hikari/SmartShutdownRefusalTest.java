package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.Map;

import org.junit.jupiter.api.Test;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * A real PostgreSQL in smart shutdown (its postmaster sent SIGTERM, as {@code pg_ctl stop -m smart} does): it tells
 * its open connections nothing and refuses new ones with 57P03. The pool's next new connection is refused, and
 * pool-goaway asks the pooled connections to that server to leave ({@code server_shutting_down}), while they keep
 * working; a stable DNS name ({@code localhost}) asks nothing meanwhile.
 */
class SmartShutdownRefusalTest {

    @Test
    void aNewConnectionRefusedWith57P03AsksThePooledConnectionsToLeave() throws Exception {
        try (EmbeddedUpstream server = EmbeddedUpstream.start(Map.of())) {
            HikariConfig config = PoolFixture.config("jdbc:postgresql://localhost:" + server.port() + "/postgres",
                    "smart-shutdown", 4);
            config.setMinimumIdle(2);
            config.setConnectionTimeout(2_000);
            GoAwayEvictor evictor = PoolGoAway.install(config);
            SimpleMeterRegistry meters = new SimpleMeterRegistry();
            GoAwayMetrics.bind(evictor, meters);
            try (HikariDataSource pool = new HikariDataSource(config)) {
                await().atMost(PoolFixture.WAIT).until(() -> pool.getHikariPoolMXBean().getTotalConnections() == 2);
                int postmaster;
                try (Connection c = pool.getConnection()) {
                    postmaster = parentOf(PoolFixture.serverPid(c));
                }
                new ProcessBuilder("kill", "-TERM", Integer.toString(postmaster)).inheritIO().start().waitFor();
                // Smart shutdown: new sessions are refused; ours go on.
                await().atMost(PoolFixture.WAIT).untilAsserted(() -> assertEquals("57P03", assertThrows(
                        SQLException.class, () -> java.sql.DriverManager.getConnection(
                                "jdbc:postgresql://localhost:" + server.port() + "/postgres?user=postgres")
                                .close()).getSQLState()));
                // Every kind is registered at 0 when the pool starts: nothing counted on any of them yet.
                assertEquals(0.0, signals(meters, null), "nothing heard yet");
                // The pool opens a connection of its own (more borrowers than connections): refused.
                try (Connection a = pool.getConnection(); Connection b = pool.getConnection()) {
                    assertThrows(SQLException.class, () -> pool.getConnection().close());
                }
                await().atMost(PoolFixture.WAIT).untilAsserted(() -> assertTrue(
                        signals(meters, "server_shutting_down") > 0, "server_shutting_down counted"));
                assertEquals(0.0, signals(meters, "dns_moved"), "a stable name asks nothing");
                assertTrue(evictor.flaggedConnections() > 0 || evictor.lastDrain().isPresent(),
                        "the pooled connections were asked to leave");
            }
        }
    }

    /** @return what {@code poolgoaway.signals} counted, of one kind or (null) of all */
    private static double signals(SimpleMeterRegistry meters, String kind) {
        var search = meters.find(GoAwayMetrics.SIGNALS);
        return (kind == null ? search : search.tag("kind", kind)).counters().stream()
                .mapToDouble(io.micrometer.core.instrument.Counter::count).sum();
    }

    private static int parentOf(int pid) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            if (line.startsWith("PPid:")) {
                return Integer.parseInt(line.substring(5).trim());
            }
        }
        throw new AssertionError("no parent of " + pid);
    }
}
