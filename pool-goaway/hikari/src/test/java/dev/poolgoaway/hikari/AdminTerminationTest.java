package dev.poolgoaway.hikari;

import static dev.poolgoaway.hikari.PoolFixture.WAIT;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.LoadGenerator;

/**
 * An administrator terminates every backend of a pool ({@code pg_terminate_backend}, real PostgreSQL 18, no proxy)
 * while the application serves 20 requests/s, run with and without pool-goaway, rounds interleaved, for short
 * requests (2 ms: few in flight) and long ones (400 ms: about 8 in flight). A request in flight on a terminated
 * connection fails whatever the pool does. An idle terminated connection fails the request that borrows it before
 * anyone notices: HikariCP hands out a connection used within its last 500 ms ({@code aliveBypassWindowMs})
 * without validating it. pool-goaway's evictor polls idle
 * connections every tick and evicts the dead ones it finds, so it can shorten that window, never close it.
 *
 * <p>Failures are counted apart: in flight (borrowed before the termination) and after (borrowed after it, the
 * ones a pool could spare). The test asserts that pool-goaway fails no more requests after the termination than
 * plain HikariCP, give or take one a round (a borrow racing the termination), that each terminated connection
 * fails at most one request, and that the pool is whole again; it logs the counts (the FAQ quotes them).
 */
class AdminTerminationTest {

    private static final Logger log = LoggerFactory.getLogger(AdminTerminationTest.class);
    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private static final int SIZE = 20;
    private static final int REQUESTS_PER_SECOND = 20;
    /** Rounds of each; -Dpoolgoaway.admin-termination.rounds=5 for the figures. */
    private static final int ROUNDS = Integer.getInteger("poolgoaway.admin-termination.rounds", 1);

    /** What one run saw, from the termination until the pool was whole again plus 2 s. */
    private record Run(boolean poolGoAway, long inFlight, long after, long issued) {
        @Override
        public String toString() {
            return (poolGoAway ? "pool-goaway" : "plain") + ": " + (inFlight + after) + " of " + issued
                    + " failed (" + inFlight + " in flight, " + after + " after)";
        }
    }

    @ParameterizedTest(name = "{0} ms requests, {1} workers")
    @CsvSource({"2, 8", "400, 16"})
    void terminatingEveryBackendFailsNoMoreRequestsThanPlainHikari(int requestMillis, int workers) throws Exception {
        List<Run> runs = new ArrayList<>();
        for (int round = 0; round < ROUNDS; round++) {
            runs.add(run(false, round, requestMillis, workers));
            runs.add(run(true, round, requestMillis, workers));
        }
        long plain = runs.stream().filter(r -> !r.poolGoAway()).mapToLong(Run::after).sum();
        long withPoolGoAway = runs.stream().filter(Run::poolGoAway).mapToLong(Run::after).sum();
        log.info("admin termination of {} backends at {} requests/s of {} ms, {} workers: {}; after the termination, "
                + "in all: plain {}, pool-goaway {}", SIZE, REQUESTS_PER_SECOND, requestMillis, workers, runs, plain, withPoolGoAway);
        assertTrue(withPoolGoAway <= plain + ROUNDS, "pool-goaway failed more: " + runs);
    }

    private Run run(boolean install, int round, int requestMillis, int workers) throws Exception {
        String application = "admin-termination-" + (install ? "pool-goaway-" : "plain-") + requestMillis + "-"
                + round;
        HikariConfig config = PoolFixture.config(blue.jdbcUrl(), application, SIZE);
        config.addDataSourceProperty("ApplicationName", application);
        GoAwayEvictor evictor = install ? PoolGoAway.install(config) : null;
        Queue<LoadGenerator.Outcome> outcomes = new ConcurrentLinkedQueue<>();
        try (HikariDataSource pool = new HikariDataSource(config);
                LoadGenerator load = LoadGenerator.builder().workers(workers).requestsPerSecond(REQUESTS_PER_SECOND)
                        .request(LoadGenerator.transaction(Duration.ofMillis(requestMillis))).observer(outcomes::add)
                        .start(pool)) {
            await().atMost(WAIT).until(() -> backends(application).size() == SIZE
                    && load.succeeded() > REQUESTS_PER_SECOND);
            assertEquals(0, load.failed(), load::failureSummary);
            long terminatedAt = System.nanoTime();
            Set<Integer> terminated = terminateAll(application);
            assertEquals(SIZE, terminated.size());
            // Whole again: SIZE backends, none of them terminated; then 2 s more of load, as the requests go on.
            await().atMost(WAIT).until(() -> {
                Set<Integer> now = backends(application);
                return now.size() == SIZE && now.stream().noneMatch(terminated::contains);
            });
            PoolFixture.awaitMoreSucceeded(load, 2 * REQUESTS_PER_SECOND);
            List<LoadGenerator.Outcome> since = outcomes.stream().filter(o -> o.endNanos() >= terminatedAt).toList();
            long inFlight = since.stream().filter(o -> !o.ok() && o.borrowedNanos() < terminatedAt).count();
            long after = since.stream().filter(o -> !o.ok() && o.borrowedNanos() >= terminatedAt).count();
            Run run = new Run(install, inFlight, after, since.size());
            assertTrue(inFlight + after <= SIZE, () -> run + ", more than one per terminated connection: "
                    + load.failureSummary());
            if (evictor != null) {
                assertTrue(evictor.problem().isEmpty(), () -> evictor.problem().orElseThrow());
            }
            return run;
        }
    }

    private static Connection admin() throws SQLException {
        return DriverManager.getConnection(blue.jdbcUrl(), blue.user(), blue.password());
    }

    private static Set<Integer> backends(String application) throws SQLException {
        return pids("select pid from pg_stat_activity where application_name = ?", application);
    }

    /** What the runbook tells the operator not to do before the drain: terminate the pool's backends. */
    private static Set<Integer> terminateAll(String application) throws SQLException {
        // In the select list, as the runbook has it: a WHERE clause may call it before it filters the rows.
        return pids("select pid, pg_terminate_backend(pid) from pg_stat_activity where application_name = ?",
                application);
    }

    private static Set<Integer> pids(String sql, String application) throws SQLException {
        try (Connection c = admin(); PreparedStatement s = c.prepareStatement(sql)) {
            s.setString(1, application);
            Set<Integer> pids = new HashSet<>();
            try (ResultSet rs = s.executeQuery()) {
                while (rs.next()) {
                    pids.add(rs.getInt(1));
                }
            }
            return pids;
        }
    }
}
