package dev.poolgoaway.testkit;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
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
 * Steady closed-loop load on a pool, with accounting, for tests that must show a drain costs no request: each of a
 * few threads borrows, runs a short transaction ({@code pg_sleep}, then {@code inet_server_port()}), returns, and
 * goes again. Every request issued either succeeds or fails with the exception the application saw
 * ({@link #failures()}); nothing is retried, so {@code issued == succeeded + failed} once it is closed.
 * ({@link dev.poolgoaway.testkit.drill.SwitchoverDrill} has the open-loop load of the drills, with latencies.)
 */
public final class LoadGenerator implements AutoCloseable {

    /** Threads of every load generator are named so, for leak checks. */
    public static final String THREAD_PREFIX = "test-load-";
    private static final AtomicInteger generators = new AtomicInteger();

    private final AtomicLong issued = new AtomicLong();
    private final AtomicLong succeeded = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong longestNanos = new AtomicLong();
    private final List<Throwable> failures = Collections.synchronizedList(new ArrayList<>());
    private final AtomicBoolean stop = new AtomicBoolean();
    private final ExecutorService threads;
    private final List<Future<?>> running = new ArrayList<>();

    /**
     * Starts the load.
     *
     * @param pool    the pool
     * @param threads how many requests run at once
     * @param sleep   how long each transaction sleeps on the server, to keep connections busy
     */
    public LoadGenerator(DataSource pool, int threads, Duration sleep) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads " + threads + ": at least one");
        }
        String pause = String.format(Locale.ROOT, "select pg_sleep(%.6f)", sleep.toNanos() / 1e9);
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
                    request(pool, pause);
                }
            }));
        }
    }

    /**
     * The load of the drain tests: 8 threads, 2 ms transactions.
     *
     * @param pool the pool
     */
    public LoadGenerator(DataSource pool) {
        this(pool, 8, Duration.ofMillis(2));
    }

    private void request(DataSource pool, String pause) {
        long start = System.nanoTime();
        issued.incrementAndGet();
        try (Connection c = pool.getConnection()) {
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.execute(pause);
                s.execute("select inet_server_port()");
            }
            c.commit();
            succeeded.incrementAndGet();
        } catch (SQLException | RuntimeException e) {
            failed.incrementAndGet();
            failures.add(e);
        }
        longestNanos.accumulateAndGet(System.nanoTime() - start, Math::max);
    }

    /** @return requests issued so far */
    public long issued() {
        return issued.get();
    }

    /** @return requests that succeeded so far */
    public long succeeded() {
        return succeeded.get();
    }

    /** @return requests that failed so far */
    public long failed() {
        return failed.get();
    }

    /** @return the longest request so far, borrow to return */
    public Duration longest() {
        return Duration.ofNanos(longestNanos.get());
    }

    /** @return the exceptions of the failed requests so far, oldest first */
    public List<Throwable> failures() {
        synchronized (failures) {
            return List.copyOf(failures);
        }
    }

    /** @return a summary of the failures, for assertion messages */
    public String failureSummary() {
        return failed.get() + " failed: " + failures();
    }

    /**
     * Stops issuing requests and waits for those in flight; then {@code issued == succeeded + failed}.
     *
     * @throws ExecutionException if a load thread died of something other than a request's failure
     * @throws TimeoutException   if requests in flight do not end within 30 s
     * @throws AssertionError     if a request went unaccounted for
     */
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
        if (issued.get() != succeeded.get() + failed.get()) {
            throw new AssertionError("requests lost: " + issued + " issued, " + succeeded + " succeeded, " + failed
                    + " failed");
        }
    }
}
