package dev.poolgoaway.testkit;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;

import javax.sql.DataSource;

/**
 * Steady load on a pool, with accounting, for tests and drills that must show a drain costs no request: each of a
 * few workers (threads) borrows a connection, runs a {@link Request} on it, gives it back, and goes again. Every
 * request issued either succeeds or fails with the exception the application saw ({@link #failures()}); nothing is retried,
 * so {@code issued == succeeded + failed} once it is closed.
 *
 * <p>Closed-loop by default: each worker starts its next request when the last one returned, so a slow server
 * slows the load. With {@link Builder#requestsPerSecond(int)} it is open-loop: requests start on a fixed schedule
 * whatever the server does, as users keep arriving at a service that slowed down; a worker that fell behind starts
 * its late requests at once, so the rate holds as long as the workers suffice.
 *
 * <pre>{@code
 * try (LoadGenerator load = LoadGenerator.builder()
 *         .workers(8).requestsPerSecond(400)
 *         .observer(outcome -> latencies.add(outcome.borrow()))
 *         .start(pool)) {
 *     // switch over, wait for the drain
 * }
 * }</pre>
 */
public final class LoadGenerator implements AutoCloseable {

    /** Threads of every load generator are named so, for leak checks. */
    public static final String THREAD_PREFIX = "test-load-";
    /** Enough to tell what went wrong; a hard switchover under open-loop load fails thousands of requests. */
    private static final int FAILURES_KEPT = 1000;
    private static final long STOP_CHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(10);
    private static final AtomicInteger generators = new AtomicInteger();

    /** What one request does with its borrowed connection. */
    @FunctionalInterface
    public interface Request {

        /**
         * Runs the request.
         *
         * @param connection a connection borrowed from the pool, given back by the load generator
         * @throws SQLException if it fails: counted as a failed request
         */
        void execute(Connection connection) throws SQLException;
    }

    /**
     * One finished request, as the {@linkplain Builder#observer(Consumer) observer} sees it. Times are
     * {@link System#nanoTime()} readings.
     *
     * @param scheduledNanos when it was due: its place on the open-loop schedule, or {@code startNanos} in a closed
     *                       loop; {@code startNanos - scheduledNanos} is how late the load was
     * @param startNanos     when it asked the pool for a connection
     * @param borrowedNanos  when it had the connection ({@code startNanos} if it got none)
     * @param endNanos       when the request ended, before the connection went back
     * @param failure        the exception the application saw, or {@code null} if it succeeded
     */
    public record Outcome(long scheduledNanos, long startNanos, long borrowedNanos, long endNanos, Throwable failure) {

        /** @return whether the request succeeded */
        public boolean ok() {
            return failure == null;
        }

        /** @return how long {@code getConnection()} took */
        public Duration borrow() {
            return Duration.ofNanos(borrowedNanos - startNanos);
        }

        /** @return how long the request took on its connection */
        public Duration query() {
            return Duration.ofNanos(endNanos - borrowedNanos);
        }
    }

    private final AtomicLong issued = new AtomicLong();
    private final AtomicInteger inUse = new AtomicInteger();
    private final AtomicInteger waiting = new AtomicInteger();
    private final AtomicLong succeeded = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong longestNanos = new AtomicLong();
    private final List<Throwable> failures = new ArrayList<>();
    private final AtomicBoolean stop = new AtomicBoolean();
    private final DataSource pool;
    private final Request request;
    private final Consumer<Outcome> observer;
    private final ExecutorService threads;
    private final List<Future<?>> running = new ArrayList<>();

    private LoadGenerator(Builder b, DataSource pool) {
        this.pool = Objects.requireNonNull(pool, "pool");
        this.request = b.request;
        this.observer = b.observer;
        int id = generators.incrementAndGet();
        AtomicInteger n = new AtomicInteger();
        this.threads = Executors.newFixedThreadPool(b.workers, r -> {
            Thread t = new Thread(r, THREAD_PREFIX + id + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        long interval = b.requestsPerSecond == 0 ? 0 : TimeUnit.SECONDS.toNanos(b.workers) / b.requestsPerSecond;
        long start = System.nanoTime();
        for (int i = 0; i < b.workers; i++) {
            // Each worker keeps its own schedule; spread over one interval, they do not fire together.
            long first = start + interval * i / b.workers;
            running.add(threads.submit(() -> run(first, interval)));
        }
    }

    /**
     * Starts the load of the drain tests: 8 workers, closed-loop {@linkplain #transaction(Duration) transactions} of
     * 2 ms.
     *
     * @param pool the pool
     */
    public LoadGenerator(DataSource pool) {
        this(pool, 8, Duration.ofMillis(2));
    }

    /**
     * Starts closed-loop {@linkplain #transaction(Duration) transactions}.
     *
     * @param pool    the pool
     * @param workers how many requests run at once
     * @param sleep   how long each transaction sleeps on the server, to keep connections busy
     */
    public LoadGenerator(DataSource pool, int workers, Duration sleep) {
        this(builder().workers(workers).request(transaction(sleep)), pool);
    }

    /**
     * A load to configure and {@linkplain Builder#start(DataSource) start}.
     *
     * @return a builder with defaults: 8 workers, closed loop, {@linkplain #transaction(Duration) transactions} of
     *         2 ms, no observer
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * The request of the drain tests: a transaction that sleeps on the server ({@code pg_sleep}), then asks which
     * server it is on ({@code inet_server_port()}), and commits.
     *
     * @param sleep how long it keeps its connection busy on the server
     * @return the request
     */
    public static Request transaction(Duration sleep) {
        String pause = String.format(Locale.ROOT, "select pg_sleep(%.6f)", sleep.toNanos() / 1e9);
        return c -> {
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.execute(pause);
                s.execute("select inet_server_port()");
            }
            c.commit();
        };
    }

    private void run(long first, long interval) {
        long due = first;
        while (!stop.get()) {
            if (interval > 0) {
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    // In slices, re-checking stop: close() does not wait out a long interval.
                    LockSupport.parkNanos(Math.min(wait, STOP_CHECK_NANOS));
                    continue;
                }
                request(true, due);
                due += interval;
            } else {
                request(false, 0);
            }
        }
    }

    private void request(boolean onSchedule, long due) {
        long start = System.nanoTime();
        long borrowed = start;
        long end;
        Throwable failure = null;
        issued.incrementAndGet();
        waiting.incrementAndGet();
        boolean holding = false;
        try (Connection c = pool.getConnection()) {
            borrowed = System.nanoTime();
            waiting.decrementAndGet();
            inUse.incrementAndGet();
            holding = true;
            request.execute(c);
            end = System.nanoTime();
        } catch (SQLException | RuntimeException e) {
            end = System.nanoTime();
            failure = e;
        } finally {
            (holding ? inUse : waiting).decrementAndGet();
        }
        longestNanos.accumulateAndGet(System.nanoTime() - start, Math::max);
        if (failure == null) {
            succeeded.incrementAndGet();
        } else {
            failed.incrementAndGet();
            synchronized (failures) {
                if (failures.size() < FAILURES_KEPT) {
                    failures.add(failure);
                }
            }
        }
        observer.accept(new Outcome(onSchedule ? due : start, start, borrowed, end, failure));
    }

    /**
     * @return requests holding a connection now (borrowed, not yet returned): the connections the load uses, which
     *         a drain must never take away
     */
    public int inUse() {
        return inUse.get();
    }

    /** @return requests waiting in {@code getConnection()} now: demand the pool does not meet at this moment */
    public int waiting() {
        return waiting.get();
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

    /** @return the exceptions of the failed requests so far (the first 1,000), oldest first */
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
     * @throws ExecutionException if a worker died of something other than a request's failure (an observer that
     *                            threw)
     * @throws TimeoutException   if requests in flight do not end within 30 s; their workers are interrupted
     * @throws AssertionError     if a request went unaccounted for
     */
    @Override
    public void close() throws ExecutionException, TimeoutException {
        stop.set(true);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        try {
            for (Future<?> f : running) {
                f.get(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while stopping the load", e);
        } finally {
            threads.shutdownNow();   // interrupts only a worker still in a request after the deadline
        }
        if (issued.get() != succeeded.get() + failed.get()) {
            throw new AssertionError("requests lost: " + issued + " issued, " + succeeded + " succeeded, " + failed
                    + " failed");
        }
    }

    /**
     * Settings of a load; every one has a default. A builder may start several loads, one after the other or side
     * by side: each takes the settings as they are when it starts.
     */
    public static final class Builder {

        private int workers = 8;
        private int requestsPerSecond;
        private Request request = transaction(Duration.ofMillis(2));
        private Consumer<Outcome> observer = outcome -> {
        };

        private Builder() {
        }

        /**
         * Sets how many threads issue requests: in a closed loop, how many requests run at once; open-loop, how
         * many may be in flight before the schedule slips.
         *
         * @param workers at least 1 (default 8)
         * @return this
         */
        public Builder workers(int workers) {
            if (workers < 1) {
                throw new IllegalArgumentException("workers must be at least 1, got " + workers);
            }
            this.workers = workers;
            return this;
        }

        /**
         * Makes the load open-loop: requests start on a fixed schedule, all workers together at this rate.
         *
         * @param requestsPerSecond the rate; 0 for closed-loop, each worker back to back (default 0)
         * @return this
         */
        public Builder requestsPerSecond(int requestsPerSecond) {
            if (requestsPerSecond < 0) {
                throw new IllegalArgumentException("requestsPerSecond must be 0 (closed loop) or more, got "
                        + requestsPerSecond);
            }
            this.requestsPerSecond = requestsPerSecond;
            return this;
        }

        /**
         * Sets what each request does.
         *
         * @param request the request (default {@link #transaction(Duration) transaction} of 2 ms)
         * @return this
         */
        public Builder request(Request request) {
            this.request = Objects.requireNonNull(request, "request");
            return this;
        }

        /**
         * Sets who hears of every finished request, on the worker that ran it, after the counters count it. It
         * should be quick and must not throw: an exception ends that worker ({@link LoadGenerator#close()} reports
         * it).
         *
         * @param observer receives each request's {@link Outcome} (default: none)
         * @return this
         */
        public Builder observer(Consumer<Outcome> observer) {
            this.observer = Objects.requireNonNull(observer, "observer");
            return this;
        }

        /**
         * Starts a load with these settings.
         *
         * @param pool the pool the load borrows from
         * @return the running load; close it to stop
         */
        public LoadGenerator start(DataSource pool) {
            return new LoadGenerator(this, pool);
        }
    }
}
