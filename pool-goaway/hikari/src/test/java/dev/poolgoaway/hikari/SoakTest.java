package dev.poolgoaway.hikari;

import static dev.poolgoaway.hikari.PoolFixture.WAIT;
import static dev.poolgoaway.hikari.PoolFixture.openPidsOn;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.time.Duration;
import java.util.Objects;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.wire.PgGoAway;

/**
 * The soak: switchover drills blue → green → blue … under steady load for a bounded time, off by default. Run it
 * with {@code -Dpoolgoaway.soak=PT2M} (an ISO-8601 duration; see docs/reliability.md). After every drill, and at
 * the end, the process's threads, its open file descriptors and the wire layer's registry of the pool's
 * connections must be back at their baseline (within a small tolerance for threads the JDK and Hikari start and
 * stop on their own), and no request may have failed.
 */
class SoakTest {

    /** The system property that turns the soak on and says for how long. */
    static final String PROPERTY = "poolgoaway.soak";
    private static final Logger log = LoggerFactory.getLogger(SoakTest.class);
    private static final int SIZE = 10;
    /** Threads and descriptors that come and go on their own (Hikari's adder and closer, JDK helpers). */
    private static final int TOLERANCE = 6;

    @Test
    void repeatedDrillsLeaveNothingBehind() throws Exception {
        String soak = System.getProperty(PROPERTY);
        Assumptions.assumeTrue(soak != null && !soak.isBlank(),
                "the soak is off; run it with -D" + PROPERTY + "=PT2M (docs/reliability.md)");
        Duration duration = Duration.parse(soak);
        try (EmbeddedUpstream blue = EmbeddedUpstream.start(); EmbeddedUpstream green = EmbeddedUpstream.start()) {
            int threadsBeforePool = Thread.activeCount();
            long fdsBeforePool = openFileDescriptors();
            GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("soak-proxy").start();
            HikariConfig config = PoolFixture.config(proxy.jdbcUrl("postgres"), "soak", SIZE);
            GoAwayEvictor evictor = PoolGoAway.install(config);
            String group = Objects.requireNonNull(config.getDataSourceProperties().getProperty(PgGoAway.GROUP));
            int drills = 0;
            long longestDrillMillis = 0;
            int peakThreads = 0;
            long peakFds = 0;
            try (HikariDataSource pool = new HikariDataSource(config)) {
                LoadGenerator load = new LoadGenerator(pool, 4, Duration.ofMillis(2));
                await().atMost(WAIT).until(() -> load.succeeded() > 100
                        && pool.getHikariPoolMXBean().getTotalConnections() == SIZE);
                int threadsBaseline = Thread.activeCount();
                long fdsBaseline = openFileDescriptors();
                log.info("soak for {}: baseline {} threads, {} file descriptors", duration, threadsBaseline,
                        fdsBaseline);
                EmbeddedUpstream from = blue;
                EmbeddedUpstream to = green;
                long end = System.nanoTime() + duration.toNanos();
                try {
                    while (System.nanoTime() < end) {
                        long start = System.nanoTime();
                        EmbeddedUpstream leaving = from;
                        proxy.retarget(to);
                        proxy.goAway(c -> c.upstream() != null && c.upstream().getPort() == leaving.port());
                        EmbeddedUpstream arriving = to;
                        await().atMost(WAIT).until(() -> openPidsOn(proxy, leaving).isEmpty()
                                && openPidsOn(proxy, arriving).size() == SIZE);
                        longestDrillMillis = Math.max(longestDrillMillis, (System.nanoTime() - start) / 1_000_000);
                        drills++;
                        // Back to baseline: the registry holds exactly the pool's connections, and nothing piles up.
                        await().atMost(WAIT).untilAsserted(() -> {
                            assertEquals(SIZE, PgGoAway.group(group).size(), "registry entries of the pool");
                            assertEquals(SIZE, proxy.openConnections().size(), "sockets through the proxy");
                            assertTrue(Thread.activeCount() <= threadsBaseline + TOLERANCE,
                                    "threads: " + Thread.activeCount() + ", baseline " + threadsBaseline);
                            assertTrue(openFileDescriptors() <= fdsBaseline + TOLERANCE,
                                    "file descriptors: " + openFileDescriptors() + ", baseline " + fdsBaseline);
                        });
                        peakThreads = Math.max(peakThreads, Thread.activeCount());
                        peakFds = Math.max(peakFds, openFileDescriptors());
                        assertEquals(0, load.failed(), load::failureSummary);
                        from = to;
                        to = leaving;
                    }
                } finally {
                    load.close();
                }
                assertEquals(0, load.failed(), load::failureSummary);
                log.info("soak done: {} drills, {} requests, 0 failed, longest drill {} ms, peak {} threads "
                        + "(baseline {}), peak {} file descriptors (baseline {})", drills, load.succeeded(),
                        longestDrillMillis, peakThreads, threadsBaseline, peakFds, fdsBaseline);
            } finally {
                proxy.close();
            }
            assertTrue(evictor.lastDrain().isPresent());
            await().atMost(WAIT).untilAsserted(() -> {
                assertTrue(PgGoAway.group(group).isEmpty(), "registry entries left: " + PgGoAway.group(group));
                assertTrue(PoolFixture.liveThreads(PoolFixture.EVICTOR_THREAD, "soak ", "soak-proxy-",
                        LoadGenerator.THREAD_PREFIX).isEmpty(), () -> "threads left: " + PoolFixture.liveThreads(
                        PoolFixture.EVICTOR_THREAD, "soak ", "soak-proxy-", LoadGenerator.THREAD_PREFIX));
                assertTrue(Thread.activeCount() <= threadsBeforePool + TOLERANCE,
                        "threads: " + Thread.activeCount() + ", before the pool " + threadsBeforePool);
                assertTrue(openFileDescriptors() <= fdsBeforePool + TOLERANCE,
                        "file descriptors: " + openFileDescriptors() + ", before the pool " + fdsBeforePool);
            });
            log.info("soak end: {} threads (before the pool {}), {} file descriptors (before the pool {})",
                    Thread.activeCount(), threadsBeforePool, openFileDescriptors(), fdsBeforePool);
        }
    }

    /** @return the process's open file descriptors (sockets included); Linux only, as the build machine is */
    private static long openFileDescriptors() {
        String[] fds = new File("/proc/self/fd").list();
        Assumptions.assumeTrue(fds != null, "no /proc/self/fd: descriptor counts need Linux");
        return fds.length;
    }
}
