package dev.poolgoaway.hikari;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import javax.sql.DataSource;

/**
 * Steady load on a pool, with accounting: each request borrows, runs a short transaction, returns. Every request
 * issued either succeeds or fails with an exception the application saw (kept in {@link #failures}); nothing is
 * retried, so {@code issued == ok + failed} once it is closed.
 */
final class LoadGenerator implements AutoCloseable {

    /** Threads of every load generator are named so, for the leak checks. */
    static final String THREAD_PREFIX = "test-load-";
    private static final AtomicInteger generators = new AtomicInteger();

    final AtomicLong issued = new AtomicLong();
    final AtomicLong ok = new AtomicLong();
    final AtomicLong failed = new AtomicLong();
    final AtomicLong longestNanos = new AtomicLong();
    final List<Throwable> failures = Collections.synchronizedList(new ArrayList<>());
    private final AtomicBoolean stop = new AtomicBoolean();
    private final ExecutorService threads;
    private final List<Future<?>> running = new ArrayList<>();

    /**
     * @param pool    the pool
     * @param threads how many requests run at once
     * @param sleep   seconds each transaction sleeps on the server ({@code pg_sleep}), to keep connections busy
     */
    LoadGenerator(DataSource pool, int threads, double sleep) {
        int id = generators.incrementAndGet();
        AtomicInteger n = new AtomicInteger();
        this.threads = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, THREAD_PREFIX + id + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        for (int i = 0; i < threads; i++) {
            running.add(this.threads.submit(() -> {
                while (!stop.get()) {
                    long start = System.nanoTime();
                    issued.incrementAndGet();
                    try (Connection c = pool.getConnection()) {
                        c.setAutoCommit(false);
                        try (Statement s = c.createStatement()) {
                            s.execute("select pg_sleep(" + sleep + ")");
                            s.execute("select inet_server_port()");
                        }
                        c.commit();
                        ok.incrementAndGet();
                    } catch (SQLException | RuntimeException e) {
                        failed.incrementAndGet();
                        failures.add(e);
                    }
                    longestNanos.accumulateAndGet(System.nanoTime() - start, Math::max);
                }
            }));
        }
    }

    /** The load of the drain tests: 8 threads, 2 ms transactions. */
    LoadGenerator(DataSource pool) {
        this(pool, 8, 0.002);
    }

    /** @return a summary of the failures, for assertion messages */
    String failureSummary() {
        synchronized (failures) {
            return failed.get() + " failed: " + failures;
        }
    }

    /** Stops issuing requests and waits for those in flight; then {@code issued == ok + failed}. */
    @Override
    public void close() throws ExecutionException, TimeoutException {
        stop.set(true);
        try {
            for (Future<?> f : running) {
                f.get(30, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while stopping the load", e);
        } finally {
            threads.shutdown();
        }
        if (issued.get() != ok.get() + failed.get()) {
            throw new AssertionError("requests lost: " + issued + " issued, " + ok + " succeeded, " + failed
                    + " failed");
        }
    }
}
