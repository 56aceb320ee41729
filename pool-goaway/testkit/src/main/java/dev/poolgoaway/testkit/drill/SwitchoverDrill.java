package dev.poolgoaway.testkit.drill;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

import javax.sql.DataSource;

import dev.poolgoaway.testkit.DnsName;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.testkit.LoadGenerator.Request;
import dev.poolgoaway.testkit.PostgresUpstream;

/**
 * A switchover drill: steady load through an application's pool, then the database moves from one server to
 * another, behind a {@link GoAwayProxy} or by a {@linkplain DnsName DNS name} re-pointed, measured from both sides.
 *
 * <pre>{@code
 * DrillResult result = SwitchoverDrill.builder(proxy, blue, green)
 *         .workers(8).requestsPerSecond(400)
 *         .before(Duration.ofSeconds(5)).after(Duration.ofSeconds(5)).observeAtMost(Duration.ofSeconds(30))
 *         .progress(System.out::println)
 *         .build()
 *         .run(dataSource);
 * System.out.println(result.report());
 * }</pre>
 *
 * <p>By a DNS name instead ({@link #builder(DnsName, EmbeddedUpstream, EmbeddedUpstream)}): the pool's URL names
 * the servers by a name that resolves to the old server's address; at the switchover the name is re-pointed at the
 * new one, and the old one is shut down. No proxy, stock PostgreSQL: what a deployment without GoAway gives a pool.
 * The drill sees the pool's connections from the servers themselves, over a session of its own on each.
 *
 * <p>The load is a {@link LoadGenerator}, open-loop: requests start on a fixed schedule (the rate, shared by the
 * workers), each borrows a connection, runs the {@link Request} on it and gives it back; the drill times the borrow
 * and the request separately from each {@link LoadGenerator.Outcome}. At
 * the switchover the proxy (or the name) sends new connections to the new server and the old one is shut down
 * ({@link Switchover}); the drill then watches until no connection to the old server is open (the drain)
 * or the observation window ends, and keeps the load going for {@code after} once drained. Requests are assigned
 * to a {@link Phase} by when they started.
 */
public final class SwitchoverDrill {

    /** The default request: a 2 ms query, like a short OLTP statement. */
    public static final Request SHORT_QUERY = c -> {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select pg_sleep(0.002)")) {
            rs.next();
        }
    };

    private static final long PROGRESS_EVERY_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final int ERRORS_KEPT = 10;
    private static final Duration WARM_UP_TIMEOUT = Duration.ofSeconds(30);

    private final Route route;
    private final PostgresUpstream from;
    private final PostgresUpstream to;
    private final String label;
    private final Switchover switchover;
    private final LoadGenerator.Builder load;
    private final Duration before;
    private final Duration after;
    private final Duration observeAtMost;
    private final Duration sampleEvery;
    private final Duration maxLifetime;
    private final int warmUp;
    private final Consumer<String> progress;

    private SwitchoverDrill(Builder b) {
        this.route = b.route;
        this.from = b.from;
        this.to = b.to;
        this.label = b.label;
        this.switchover = b.switchover;
        this.load = b.load;
        this.before = b.before;
        this.after = b.after;
        this.observeAtMost = b.observeAtMost;
        this.sampleEvery = b.sampleEvery;
        this.maxLifetime = b.maxLifetime;
        this.warmUp = b.warmUp;
        this.progress = b.progress;
    }

    /**
     * A drill moving the database from {@code from} to {@code to}.
     *
     * @param proxy the proxy the pool connects through, sending new connections to {@code from} now
     * @param from  the old server
     * @param to    the new server
     * @return a builder with defaults: smart switchover, 8 workers, 400 requests/s, 5 s before, 5 s after,
     *         observed for at most 30 s, sampled every 100 ms
     */
    public static Builder builder(GoAwayProxy proxy, PostgresUpstream from, PostgresUpstream to) {
        return new Builder(new ProxyRoute(Objects.requireNonNull(proxy, "proxy")), from, to);
    }

    /**
     * A drill moving the database from {@code from} to {@code to} by re-pointing a DNS name: the pool's URL names
     * the servers by {@code name}, which resolves to {@code from} now. The servers listen on addresses of their own
     * ({@link EmbeddedUpstream#startOn}), so that the name's address is all that tells them apart.
     *
     * @param name the name the pool's URL uses
     * @param from the old server
     * @param to   the new server
     * @return a builder with the same defaults as {@link #builder(GoAwayProxy, PostgresUpstream, PostgresUpstream)}
     */
    public static Builder builder(DnsName name, EmbeddedUpstream from, EmbeddedUpstream to) {
        return new Builder(new DnsRoute(Objects.requireNonNull(name, "name")), from, to);
    }

    /**
     * Runs the drill with the pool the load borrows from. It must connect through the proxy (or by the name). A
     * drill runs once at a time: it moves the proxy (or the name).
     *
     * @param pool the application's pool
     * @return what the drill saw
     * @throws InterruptedException if interrupted; the load is stopped first
     * @throws IllegalStateException if the proxy (or the name) does not send new connections to the old server now
     */
    public synchronized DrillResult run(DataSource pool) throws InterruptedException {
        if (!route.sendsTo(from)) {
            throw new IllegalStateException("new connections go to " + route.currentTarget()
                    + ", not to the drill's old server " + from.host() + ":" + from.port());
        }
        awaitWarm(pool);
        Run run = new Run(pool);
        try {
            return run.execute();
        } finally {
            run.stop();
            route.close();
        }
    }

    /** A drill starts from a warm pool, as a service that has been up for a while. */
    private void awaitWarm(DataSource pool) throws InterruptedException {
        if (warmUp == 0) {
            return;
        }
        try (Connection first = pool.getConnection()) {
            first.isValid(1);   // a lazily started pool starts now
        } catch (SQLException e) {
            throw new IllegalStateException("the pool cannot connect: " + e.getMessage(), e);
        }
        long deadline = System.nanoTime() + WARM_UP_TIMEOUT.toNanos();
        while (route.openOn(from).size() < warmUp) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("the pool did not open " + warmUp + " connections to the old server in "
                        + WARM_UP_TIMEOUT.toSeconds() + " s");
            }
            Thread.sleep(20);
        }
    }

    /** One request's outcome; times in nanoseconds, start relative to the drill's start. */
    private record Sample(long start, long getConnection, long query, boolean ok) {
    }

    /** The state of one run: load, sampler, what they recorded. */
    private final class Run {

        private final DataSource pool;
        private final long startNanos = System.nanoTime();
        private final Queue<Sample> samples = new ConcurrentLinkedQueue<>();
        private final List<TimelinePoint> timeline = new CopyOnWriteArrayList<>();
        private final List<String> errors = new CopyOnWriteArrayList<>();
        private final ScheduledExecutorService sampler = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "drill-sampler");
            t.setDaemon(true);
            return t;
        });
        private LoadGenerator running;
        private volatile Phase phase = Phase.BEFORE;
        private long lastProgress = -PROGRESS_EVERY_NANOS;

        Run(DataSource pool) {
            this.pool = pool;
        }

        DrillResult execute() throws InterruptedException {
            running = load.observer(this::record).start(pool);
            sampler.scheduleAtFixedRate(this::sample, 0, sampleEvery.toNanos(), TimeUnit.NANOSECONDS);
            Thread.sleep(before.toMillis());

            List<Route.Open> oldAtSwitch = route.openOn(from);
            Instant switchedAt = Instant.now();
            long switchNanos = elapsed();
            phase = Phase.DURING;
            route.switchTo(to);
            String switchoverNote = switchOver();

            long deadline = switchNanos + observeAtMost.toNanos();
            while (!route.openOn(from).isEmpty() && elapsed() < deadline) {
                Thread.sleep(10);
            }
            List<Route.Open> stillOld = route.openOn(from);
            boolean drained = stillOld.isEmpty();
            long drainedNanos = elapsed();
            Optional<Duration> drainTime = Optional.empty();
            if (drained) {
                drainTime = Optional.of(route.lastClose(oldAtSwitch).map(at -> Duration.between(switchedAt, at))
                        .orElse(Duration.ZERO));
                phase = Phase.AFTER;
                Thread.sleep(after.toMillis());
            }
            stop();
            sample();
            return new DrillResult(label, switchover, from.host() + ":" + from.port(), to.host() + ":" + to.port(),
                    before, drained ? Duration.ofNanos(drainedNanos - switchNanos) : observeAtMost,
                    oldAtSwitch.size(), drainTime, stillOld.size(), projectedWait(stillOld), peakNewConnections(),
                    phases(switchNanos, drained ? drainedNanos : Long.MAX_VALUE), List.copyOf(timeline),
                    List.copyOf(errors), switchoverNote);
        }

        /** Performs the switchover itself; returns a note for the report if something did not go as planned. */
        private String switchOver() {
            if (switchover == Switchover.SMART) {
                route.smartShutdown(from);
                return "";
            }
            try {
                from.close();
                return "";
            } catch (Exception e) {
                return "stopping the old server failed: " + e;
            }
        }

        /** The load's observer: one sample per request, the first errors with the phase they fell in. */
        private void record(LoadGenerator.Outcome o) {
            long start = o.startNanos() - startNanos;
            samples.add(new Sample(start, o.borrowedNanos() - o.startNanos(), o.endNanos() - o.borrowedNanos(),
                    o.ok()));
            if (!o.ok() && errors.size() < ERRORS_KEPT) {
                errors.add(String.format(Locale.ROOT, "%.1fs %s: %s", start / 1e9, phase, describe(o.failure())));
            }
        }

        private void sample() {
            int onOld = route.openOn(from).size();
            int onNew = route.openOn(to).size();
            long now = elapsed();
            timeline.add(new TimelinePoint(TimeUnit.NANOSECONDS.toMillis(now), onOld, onNew, running.succeeded(),
                    running.failed(), running.inUse(), running.waiting()));
            if (now - lastProgress >= PROGRESS_EVERY_NANOS && !sampler.isShutdown()) {
                lastProgress = now;
                progress.accept(String.format(Locale.ROOT,
                        "[drill %s] %5.1fs %-6s requests ok %,d failed %,d | connections old %d new %d", label,
                        now / 1e9, phase.name().toLowerCase(Locale.ROOT), running.succeeded(), running.failed(), onOld,
                        onNew));
            }
        }

        /** With HikariCP's max-lifetime rotation alone, the old server is free when its youngest connection retires. */
        private Optional<Duration> projectedWait(List<Route.Open> stillOld) {
            if (maxLifetime == null || stillOld.isEmpty()) {
                return Optional.empty();
            }
            Instant now = Instant.now();
            return stillOld.stream().map(c -> Duration.between(now, c.connectedAt().plus(maxLifetime)))
                    .max(Duration::compareTo).map(d -> d.isNegative() ? Duration.ZERO : d);
        }

        /** The most connections the new server received within any one second. */
        private int peakNewConnections() {
            List<Instant> opened = route.openedOn(to).stream().sorted().toList();
            int peak = 0;
            int first = 0;
            for (int last = 0; last < opened.size(); last++) {
                while (Duration.between(opened.get(first), opened.get(last)).compareTo(Duration.ofSeconds(1)) >= 0) {
                    first++;
                }
                peak = Math.max(peak, last - first + 1);
            }
            return peak;
        }

        private Map<Phase, PhaseStats> phases(long switchNanos, long drainedNanos) {
            Map<Phase, List<Sample>> byPhase = new EnumMap<>(Phase.class);
            for (Phase p : Phase.values()) {
                byPhase.put(p, new ArrayList<>());
            }
            for (Sample s : samples) {
                byPhase.get(s.start() < switchNanos ? Phase.BEFORE
                        : s.start() < drainedNanos ? Phase.DURING : Phase.AFTER).add(s);
            }
            Map<Phase, PhaseStats> stats = new EnumMap<>(Phase.class);
            byPhase.forEach((p, in) -> stats.put(p, new PhaseStats(in.size(), (int) in.stream().filter(s -> !s.ok()).count(),
                        Latency.of(in.stream().filter(Sample::ok).mapToLong(Sample::getConnection).toArray()),
                        Latency.of(in.stream().filter(Sample::ok).mapToLong(Sample::query).toArray()))));
            return stats;
        }

        private long elapsed() {
            return System.nanoTime() - startNanos;
        }

        /** Stops the load (waiting for the requests in flight, at most 30 s) and the sampler. */
        void stop() throws InterruptedException {
            if (sampler.isShutdown()) {
                return;
            }
            sampler.shutdown();
            try {
                if (running != null) {
                    running.close();
                }
            } catch (ExecutionException | TimeoutException e) {
                throw new IllegalStateException("the drill's load did not stop: " + e, e);
            } finally {
                sampler.awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    private static String describe(Throwable e) {
        String state = e instanceof SQLException sql && sql.getSQLState() != null ? " [" + sql.getSQLState() + "]" : "";
        String message = Objects.toString(e.getMessage(), e.getClass().getName()).replaceAll("\\s+", " ");
        return e.getClass().getSimpleName() + state + " " + (message.length() > 200 ? message.substring(0, 200) + "…"
                : message);
    }

    /** Settings of a drill; every one has a default. */
    public static final class Builder {

        private final Route route;
        private final PostgresUpstream from;
        private final PostgresUpstream to;
        private String label = "drill";
        private Switchover switchover = Switchover.SMART;
        private final LoadGenerator.Builder load = LoadGenerator.builder().workers(8).requestsPerSecond(400)
                .request(SHORT_QUERY);
        private Duration before = Duration.ofSeconds(5);
        private Duration after = Duration.ofSeconds(5);
        private Duration observeAtMost = Duration.ofSeconds(30);
        private Duration sampleEvery = Duration.ofMillis(25);
        private Duration maxLifetime;
        private int warmUp;
        private Consumer<String> progress = line -> {
        };

        private Builder(Route route, PostgresUpstream from, PostgresUpstream to) {
            this.route = route;
            this.from = Objects.requireNonNull(from, "from");
            this.to = Objects.requireNonNull(to, "to");
            if (from.port() == to.port() && from.host().equals(to.host())) {
                throw new IllegalArgumentException("the old and the new server are the same: " + from);
            }
        }

        /** @param label names the drill in progress lines and the report @return this */
        public Builder label(String label) {
            this.label = Objects.requireNonNull(label, "label");
            return this;
        }

        /** @param switchover how the old server goes away (default {@link Switchover#SMART}) @return this */
        public Builder switchover(Switchover switchover) {
            this.switchover = Objects.requireNonNull(switchover, "switchover");
            return this;
        }

        /**
         * @param workers threads issuing requests, at least 1 (default 8): {@link LoadGenerator.Builder#workers}
         * @return this
         */
        public Builder workers(int workers) {
            load.workers(workers);
            return this;
        }

        /**
         * @param requestsPerSecond the load, all workers together; 0 for closed-loop (each worker back to back)
         *                          (default 400): {@link LoadGenerator.Builder#requestsPerSecond}
         * @return this
         */
        public Builder requestsPerSecond(int requestsPerSecond) {
            load.requestsPerSecond(requestsPerSecond);
            return this;
        }

        /**
         * Takes the load from a drill program's command line ({@link DrillOptions#forDrills}): {@code workers},
         * {@code rate}, {@code before}, {@code after}.
         *
         * @param options the parsed options
         * @return this
         * @throws IllegalArgumentException naming the option that is out of range
         */
        public Builder load(DrillOptions options) {
            return workers(options.intValue("workers", 1, 1000))
                    .requestsPerSecond(options.intValue("rate", 0, 1_000_000))
                    .before(options.duration("before")).after(options.duration("after"));
        }

        /** @param request what each request does (default {@link SwitchoverDrill#SHORT_QUERY}) @return this */
        public Builder request(Request request) {
            load.request(request);
            return this;
        }

        /** @param before steady load before the switchover (default 5 s) @return this */
        public Builder before(Duration before) {
            this.before = positive("before", before);
            return this;
        }

        /** @param after load kept going once drained (default 5 s) @return this */
        public Builder after(Duration after) {
            this.after = positive("after", after);
            return this;
        }

        /** @param observeAtMost how long to wait for the drain before giving up (default 30 s) @return this */
        public Builder observeAtMost(Duration observeAtMost) {
            this.observeAtMost = positive("observeAtMost", observeAtMost);
            return this;
        }

        /** @param sampleEvery how often the timeline is sampled (default 25 ms: a drain lasts a few hundred) @return this */
        public Builder sampleEvery(Duration sampleEvery) {
            this.sampleEvery = positive("sampleEvery", sampleEvery);
            return this;
        }

        /**
         * @param maxLifetime the pool's {@code maxLifetime}: when connections remain on the old server at the end,
         *                    the report projects when rotation alone would free it (default: no projection)
         * @return this
         */
        public Builder maxLifetime(Duration maxLifetime) {
            this.maxLifetime = positive("maxLifetime", maxLifetime);
            return this;
        }

        /**
         * @param connections wait, before the load starts, until the pool has this many connections open to the old
         *                    server (at most 30 s; borrowing one first starts a lazily started pool); 0 to start at
         *                    once (default 0)
         * @return this
         */
        public Builder warmUp(int connections) {
            if (connections < 0) {
                throw new IllegalArgumentException("warmUp must be 0 or more, got " + connections);
            }
            this.warmUp = connections;
            return this;
        }

        /** @param progress receives a progress line about once a second (default: none) @return this */
        public Builder progress(Consumer<String> progress) {
            this.progress = Objects.requireNonNull(progress, "progress");
            return this;
        }

        /** @return the drill; it runs its load with this builder's load settings as they are when it runs */
        public SwitchoverDrill build() {
            return new SwitchoverDrill(this);
        }

        private static Duration positive(String name, Duration value) {
            Objects.requireNonNull(value, name);
            if (value.isNegative() || value.isZero()) {
                throw new IllegalArgumentException(name + " must be positive, got " + value);
            }
            return value;
        }
    }
}
