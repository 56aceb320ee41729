package dev.poolgoaway.testkit;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.poolgoaway.testkit.LoadGenerator.Outcome;

/** The load generator on a real HikariCP pool over a real PostgreSQL 18. */
class LoadGeneratorTest {

    private static final Duration WAIT = Duration.ofSeconds(30);
    private static HikariDataSource pool;

    @BeforeAll
    static void startPool() {
        EmbeddedUpstream server = EmbeddedUpstream.shared("blue");
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(server.jdbcUrl());
        config.setUsername(server.user());
        config.setMaximumPoolSize(4);
        config.setPoolName("load-test");
        pool = new HikariDataSource(config);
    }

    @AfterAll
    static void closePool() {
        pool.close();
    }

    @Test
    void itCountsTheConnectionsItHoldsAndTheRequestsWaitingForOne() throws Exception {
        // 6 workers of 200 ms transactions on a pool of 4: 4 hold a connection, 2 wait for one.
        LoadGenerator load = new LoadGenerator(pool, 6, Duration.ofMillis(200));
        try (load) {
            await().atMost(WAIT).until(() -> load.inUse() == 4 && load.waiting() == 2);
        }
        assertEquals(0, load.inUse(), "closed: every connection returned");
        assertEquals(0, load.waiting());
    }

    @Test
    void anOpenLoopLoadStartsItsRequestsOnScheduleAtTheTargetRate() throws Exception {
        int rate = 200;
        int workers = 4;
        Queue<Outcome> seen = new ConcurrentLinkedQueue<>();
        LoadGenerator load = LoadGenerator.builder().workers(workers).requestsPerSecond(rate)
                .observer(seen::add).start(pool);
        try (load) {
            await().atMost(WAIT).until(() -> seen.size() >= 2 * rate);
        }

        List<Outcome> outcomes = List.copyOf(seen);
        int n = outcomes.size();
        assertEquals(load.issued(), n, "the observer heard of every request");
        assertEquals(n, load.succeeded(), load::failureSummary);
        long lateness = 0;
        for (Outcome o : outcomes) {
            assertTrue(o.ok() && o.scheduledNanos() <= o.startNanos() && o.startNanos() <= o.borrowedNanos()
                    && o.borrowedNanos() <= o.endNanos(), o::toString);
            lateness = Math.max(lateness, o.startNanos() - o.scheduledNanos());
        }
        // The schedule is one request every 1/rate s, taken in turn by the workers; each worker stops after its own
        // last one, so the n requests issued held n to n + workers - 1 places of it. Started at most `lateness`
        // after their places, their first and last starts are that far apart, give or take `lateness`.
        long first = outcomes.stream().mapToLong(Outcome::startNanos).min().orElseThrow();
        long last = outcomes.stream().mapToLong(Outcome::startNanos).max().orElseThrow();
        double span = (last - first) / 1e9;
        double slack = lateness / 1e9;
        double shortest = (n - 1.0) / rate - slack;
        double longest = (n + workers - 2.0) / rate + slack;
        assertTrue(span >= shortest && span <= longest, () -> String.format(
                "%d requests started over %.3f s, not %.3f to %.3f s (at most %.1f ms late): %.0f/s, not %d/s", n,
                span, shortest, longest, slack * 1e3, (n - 1) / span, rate));
    }

    @Test
    void aClosedLoopCountsEveryFailureAndKeepsTheFirstThousand() throws Exception {
        Queue<Outcome> seen = new ConcurrentLinkedQueue<>();
        LoadGenerator load = LoadGenerator.builder().workers(2)
                .request(c -> {
                    throw new SQLException("refused by the test");
                })
                .observer(seen::add).start(pool);
        try (load) {
            await().atMost(WAIT).until(() -> load.failed() > 1000);
        }

        assertEquals(0, load.succeeded());
        assertEquals(load.issued(), load.failed());
        assertEquals(load.issued(), seen.size());
        assertEquals(1000, load.failures().size());
        for (Outcome o : seen) {
            assertTrue(!o.ok() && o.failure().getMessage().equals("refused by the test"), o::toString);
            assertEquals(o.startNanos(), o.scheduledNanos(), "a closed loop has no schedule to be late for");
        }
    }
}
