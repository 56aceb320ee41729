package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.testkit.ProxyEvent;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * A switchover gone wrong, on real PostgreSQL 18 through the test kit's proxy, run with and without pool-goaway in
 * the same test: the stale load balancer (the leaving server's smart shutdown refuses every new connection with
 * 57P03, and new connections still go to it). The run with pool-goaway must fail no more requests than plain
 * HikariCP, never have fewer connections than plain (each connection goes only after its replacement exists, in a
 * place beyond {@code maximumPoolSize}: a pool of 1 keeps its one connection), say that the drain is stalled
 * (evictor, meter), and drain once the balancer is fixed, with {@code maximumPoolSize} as it was. The proxy sends
 * GoAway only to sessions that asked for it, so the plain run is plain HikariCP and pgjdbc.
 */
class StalledDrainTest {

    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");

    /** What one run saw. */
    private record Run(long failed, int fewestConnections) {
    }

    @ParameterizedTest(name = "maximumPoolSize {0}")
    @ValueSource(ints = {8, 1})
    void aStaleBalancerStallsTheDrainWithoutCostingARequestThenItDrainsWhenFixed(int size) throws Exception {
        Run plain = run(false, size);
        Run withPoolGoAway = run(true, size);
        assertTrue(withPoolGoAway.failed() <= plain.failed(), withPoolGoAway + " against plain " + plain);
        assertTrue(withPoolGoAway.fewestConnections() >= plain.fewestConnections(),
                withPoolGoAway + " against plain " + plain);
        assertTrue(withPoolGoAway.fewestConnections() >= size, withPoolGoAway + ": fell below the pool's size");
    }

    /**
     * A GoAway while the pool is suspended ({@code suspendPool()}), run with and without pool-goaway: a suspended
     * pool opens no connection, so pool-goaway lets none go (not even the first one), says the drain is stalled and
     * why, and drains when the pool is resumed.
     */
    @Test
    void aSuspendedPoolKeepsItsConnectionsWhileTheDrainStallsAndDrainsOnResume() throws Exception {
        int plain = suspended(false);
        int withPoolGoAway = suspended(true);
        assertTrue(withPoolGoAway >= plain, withPoolGoAway + " connections against plain " + plain);
    }

    /** @return the fewest connections on blue while suspended, after the GoAway */
    private int suspended(boolean install) throws Exception {
        int size = 4;
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("suspended-proxy").start()) {
            HikariConfig config = PoolFixture.config(proxy.jdbcUrl("postgres"), "suspended-" + install, size);
            config.setAllowPoolSuspension(true);
            GoAwayEvictor evictor = install ? PoolGoAway.install(config) : null;
            try (HikariDataSource pool = new HikariDataSource(config)) {
                await().atMost(PoolFixture.WAIT).until(() -> pool.getHikariPoolMXBean().getTotalConnections() == size);
                pool.getHikariPoolMXBean().suspendPool();
                proxy.retarget(green);
                proxy.smartShutdown(blue);
                AtomicInteger fewest = new AtomicInteger(size);
                if (install) {
                    await().atMost(PoolFixture.WAIT).until(() -> evictor.stalled());
                    assertTrue(evictor.stallReason().orElseThrow().contains("suspended"),
                            evictor.stallReason().orElseThrow());
                }
                // Held for a second: the evictor polls the idle connections every 50 ms meanwhile.
                await().during(Duration.ofSeconds(1)).atMost(PoolFixture.WAIT).until(() -> {
                    fewest.accumulateAndGet(PoolFixture.openPidsOn(proxy, blue).size(), Math::min);
                    return PoolFixture.openPidsOn(proxy, blue).size() == size;
                });
                pool.getHikariPoolMXBean().resumePool();
                if (install) {
                    await().atMost(PoolFixture.WAIT).until(() -> !evictor.draining()
                            && PoolFixture.openPidsOn(proxy, blue).isEmpty());
                    assertFalse(evictor.stalled());
                    assertEquals(size, evictor.lastDrain().orElseThrow().connections());
                    assertEquals(size, pool.getHikariConfigMXBean().getMaximumPoolSize(), "put back");
                }
                return fewest.get();
            }
        }
    }

    private Run run(boolean install, int size) throws Exception {
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("stalled-proxy").start()) {
            HikariConfig config = PoolFixture.config(proxy.jdbcUrl("postgres"), "stalled-" + install + "-" + size,
                    size);
            // A short connectionTimeout keeps the run short: the stall is declared at the first failed attempt.
            config.setConnectionTimeout(2000);
            SimpleMeterRegistry meters = new SimpleMeterRegistry();
            GoAwayEvictor evictor = null;
            if (install) {
                evictor = PoolGoAway.install(config);
                GoAwayMetrics.bind(evictor, meters);
            }
            try (HikariDataSource pool = new HikariDataSource(config);
                    LoadGenerator load = new LoadGenerator(pool, 3, Duration.ofMillis(2))) {
                await().atMost(PoolFixture.WAIT).until(() -> pool.getHikariPoolMXBean().getTotalConnections() == size);
                await().atMost(PoolFixture.WAIT).until(() -> load.succeeded() > 50);
                AtomicInteger fewest = new AtomicInteger(size);
                // The balancer still sends new connections to blue, which is shutting down: 57P03 for each.
                proxy.smartShutdown(blue);
                if (install) {
                    GoAwayEvictor e = evictor;
                    await().atMost(PoolFixture.WAIT).until(() -> {
                        fewest.accumulateAndGet(pool.getHikariPoolMXBean().getTotalConnections(), Math::min);
                        return e.stalled() && e.replacementFailures() > 0;
                    });
                    assertTrue(e.lastReplacementFailure().orElseThrow().startsWith("57P03: "),
                            e.lastReplacementFailure().orElseThrow());
                    assertTrue(e.stallReason().orElseThrow().startsWith("replacements fail"),
                            e.stallReason().orElseThrow());
                    Counter failed = meters.find(GoAwayMetrics.REPLACEMENTS).tag("result", "failed").counter();
                    assertTrue(failed != null && failed.count() > 0, meters::getMetersAsString);
                } else {
                    // Plain HikariCP replaces nothing: wait for the same number of borrows instead.
                    await().atMost(PoolFixture.WAIT).until(() -> proxy.timeline().stream()
                            .anyMatch(ev -> ev.kind() == ProxyEvent.Kind.SMART_SHUTDOWN));
                }
                long before = load.succeeded();
                await().atMost(PoolFixture.WAIT).until(() -> {
                    fewest.accumulateAndGet(pool.getHikariPoolMXBean().getTotalConnections(), Math::min);
                    return load.succeeded() > before + 300;
                });
                long failedDuringFault = load.failed();
                // The balancer is fixed: new connections go to green; the drain resumes and completes.
                proxy.retarget(green);
                if (install) {
                    proxy.smartShutdown(blue).get(PoolFixture.WAIT.toSeconds(), TimeUnit.SECONDS);
                    GoAwayEvictor e = evictor;
                    await().atMost(PoolFixture.WAIT).pollInterval(Duration.ofMillis(5)).until(() -> {
                        fewest.accumulateAndGet(pool.getHikariPoolMXBean().getTotalConnections(), Math::min);
                        return !e.stalled() && !e.draining();
                    });
                    assertEquals(size, e.lastDrain().orElseThrow().connections());
                    assertTrue(PoolFixture.openPidsOn(proxy, blue).isEmpty());
                    assertEquals(size, pool.getHikariConfigMXBean().getMaximumPoolSize(), "put back");
                    assertEquals(size, pool.getHikariConfigMXBean().getMinimumIdle(), "put back");
                    assertEquals(0, load.failed() - failedDuringFault, load::failureSummary);
                }
                assertFalse(install && evictor.problem().isPresent());
                return new Run(failedDuringFault, fewest.get());
            }
        }
    }
}
