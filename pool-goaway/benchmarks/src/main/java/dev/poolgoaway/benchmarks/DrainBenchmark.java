package dev.poolgoaway.benchmarks;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import javax.net.ssl.SSLContext;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.HikariPoolMXBean;

import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.PoolGoAway;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.ProxyEvent;
import dev.poolgoaway.testkit.TestCertificates;
import dev.poolgoaway.testkit.drill.DrillOptions;
import dev.poolgoaway.testkit.drill.DrillResult;
import dev.poolgoaway.testkit.drill.Phase;
import dev.poolgoaway.testkit.drill.SwitchoverDrill;
import dev.poolgoaway.testkit.drill.Switchover;

/**
 * The drain benchmark: the same switchover drill, under the same steady load, for HikariCP with pool-goaway and
 * for plain HikariCP, with a smart shutdown (GoAway) and with a fast one ({@code pg_ctl stop -m fast}), in one run
 * on one machine. Two embedded PostgreSQL 18 servers (blue, green) behind the test kit's proxy.
 *
 * <pre>
 * ./mvnw -B -DskipTests -Pbench-drain verify -pl pool-goaway/benchmarks -am -Ddrain.args="--pool-size=20"
 * </pre>
 *
 * Plain HikariCP does not drain under a smart shutdown: it is watched for {@code --window} and the report projects
 * when its {@code maxLifetime} rotation would free the old server.
 *
 * <p>Beside the drain time it prints the bound a drain paced by replacements has, from the connection setup
 * measured in the same run: {@code drainWindow + pool size × (setup + HikariCP's 30 ms pause)}. {@code --tls} has
 * the proxy offer TLS, which pgjdbc ({@code sslmode=prefer}) takes; {@code --multi-host} lists green after the
 * proxy in the URL, as applications list their nodes; {@code --query} sets each request's
 * server time, and {@code --spike} adds bursts of borrowers each second whose acquire times are reported per drill,
 * as a ratio to plain HikariCP's in the same run.
 */
public final class DrainBenchmark {

    /**
     * {@code pool-goaway-previous}: the pacing before the evictor became event-driven, as far as settings give it
     * back (a 250 ms window and at most a quarter of the pool being replaced at once), for the same-run comparison.
     */
    private static final List<String> MODES = List.of("pool-goaway", "pool-goaway-previous", "hikari",
            "pool-goaway-fast", "hikari-fast");

    private DrainBenchmark() {
    }

    /**
     * Runs the benchmark.
     *
     * @param args {@code --name=value} options; {@code --help} lists them
     * @throws Exception if a server or the proxy cannot start
     */
    public static void main(String[] args) throws Exception {
        int status = DrillOptions.forDrills("drain-benchmark")
                .option("modes", String.join(",", MODES), "which drills, of " + MODES)
                .option("out", "target/drain-benchmark.md", "where the comparison table is written")
                .option("repeat", "5", "how many times each smart-shutdown drill runs, rounds interleaved, for the "
                        + "median drain time")
                .option("query", "2ms", "server time of each request (pg_sleep)")
                .option("tls", "false", "offer TLS, which pgjdbc's sslmode=prefer then takes (the proxy terminates it)")
                .option("multi-host", "false", "a multi-host URL: the proxy, then green directly (pgjdbc takes the "
                        + "first that answers)")
                .option("spike", "0", "borrowers added for --spike-length each second (0: none), acquire p99 "
                        + "reported")
                .option("spike-length", "150ms", "how long each burst of --spike borrowers lasts")
                .run(args, DrainBenchmark::run);
        if (status != 0) {
            System.exit(status);
        }
    }

    private static void run(DrillOptions options) throws Exception {
        int poolSize = options.poolSize();
        List<String> modes = options.list("modes", MODES);
        Path out = Path.of(options.value("out"));
        Map<String, String> serverConfig = options.serverConfig();
        CompletableFuture<EmbeddedUpstream> greenStarting = EmbeddedUpstream.startInBackground(serverConfig);
        EmbeddedUpstream blue = EmbeddedUpstream.start(serverConfig);
        EmbeddedUpstream green = greenStarting.join();
        int repeat = options.intValue("repeat", 1, 100);
        Duration setup = setup(blue, green, options);
        List<DrillResult> results = new ArrayList<>();
        Map<String, List<Measured>> repeated = new LinkedHashMap<>();
        try {
            // The repeated drills first, in interleaved rounds (A, B, A, B...): a build that starts or stops on the
            // machine meanwhile shifts both alike. Then the others, once each; fast shutdowns last (they stop blue).
            List<String> order = new ArrayList<>();
            for (int round = 0; round < repeat; round++) {
                modes.stream().filter(DrainBenchmark::repeated).forEach(order::add);
            }
            modes.stream().filter(m -> !repeated(m)).forEach(order::add);
            for (String mode : order) {
                if (blue == null) {
                    System.out.println("[drain-benchmark] restarting blue after the fast shutdown");
                    blue = EmbeddedUpstream.start(serverConfig);
                }
                Switchover switchover = mode.endsWith("-fast") ? Switchover.FAST : Switchover.SMART;
                Measured m = drill(mode, switchover, blue, green, poolSize, options);
                if (repeated(mode)) {
                    repeated.computeIfAbsent(mode, k -> new ArrayList<>()).add(m);
                }
                if (!results.stream().anyMatch(r -> r.label().equals(mode))) {
                    results.add(m.result());
                }
                if (switchover == Switchover.FAST) {
                    blue = null; // stopped by the drill
                }
            }
        } finally {
            if (blue != null) {
                blue.close();
            }
            green.close();
        }
        Duration bound = EvictorSettings.DEFAULT_DRAIN_WINDOW.plus(setup.plus(HIKARI_PAUSE).multipliedBy(poolSize));
        String table = "Pool " + poolSize + ", " + options.value("workers") + " workers, " + options.value("rate")
                + " requests/s of " + options.value("query") + " each" + (spike(options) > 0 ? ", plus "
                        + spike(options) + " borrowers for " + options.value("spike-length") + " each second" : "")
                + ", TLS " + (tls(options) ? "on" : "off") + (Boolean.parseBoolean(options.value("multi-host"))
                        ? ", multi-host URL" : "") + ", " + options.value("before") + " before, "
                + options.value("after") + " after, observed at most " + options.value("window") + ".\n\n"
                + DrillResult.comparison(results)
                + "\nThe first run of each drill above; every run of the repeated ones:\n\n" + summary(repeated)
                + String.format(Locale.ROOT, "%nConnection setup, measured in this run: median %s; the bound "
                        + "drainWindow + %d × (setup + %d ms) = %s%n", ms(setup), poolSize, HIKARI_PAUSE.toMillis(),
                        ms(bound))
                + spikes(repeated);
        Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(out, table);
        System.out.println();
        System.out.println(table);
        System.out.println("[drain-benchmark] table written to " + out.toAbsolutePath());
    }

    /** Every smart-shutdown drill, plain HikariCP's too: A/B rounds, not one pass of each. */
    private static boolean repeated(String mode) {
        return !mode.endsWith("-fast");
    }

    /** HikariCP's adder pauses this long after each connection it adds (its {@code PoolEntryCreator}). */
    private static final Duration HIKARI_PAUSE = Duration.ofMillis(30);

    private static boolean tls(DrillOptions options) {
        return Boolean.parseBoolean(options.value("tls"));
    }

    private static int spike(DrillOptions options) {
        return options.intValue("spike", 0, 1000);
    }

    /**
     * The median time to open a connection as the pool opens them (through a proxy to blue, TLS as configured),
     * over 20 connections after 3 to warm up: the setup term of the bound.
     */
    private static Duration setup(EmbeddedUpstream blue, EmbeddedUpstream green, DrillOptions options)
            throws Exception {
        try (GoAwayProxy proxy = proxy(blue, "drain-setup", options)) {
            List<Duration> times = new ArrayList<>();
            for (int i = 0; i < 23; i++) {
                long start = System.nanoTime();
                try (Connection c = DriverManager.getConnection(url(proxy, blue, green, options),
                        properties(blue, options))) {
                    query(c, Duration.ZERO);
                    // The setup measured must be the one the pool pays: TLS where --tls offers it.
                    if (proxy.openConnections().stream().anyMatch(p -> p.tls() != tls(options))) {
                        throw new IllegalStateException("pgjdbc did not connect with TLS " + (tls(options)
                                ? "on" : "off") + ": " + proxy.openConnections());
                    }
                }
                if (i >= 3) {
                    times.add(Duration.ofNanos(System.nanoTime() - start));
                }
            }
            return median(times.stream().sorted().toList());
        }
    }

    /** The proxy's URL, or with {@code --multi-host} the proxy's and green's, as an application lists its nodes. */
    private static String url(GoAwayProxy proxy, EmbeddedUpstream blue, EmbeddedUpstream green,
            DrillOptions options) {
        String url = proxy.jdbcUrl(blue.database());
        if (!Boolean.parseBoolean(options.value("multi-host"))) {
            return url;
        }
        String first = proxy.host() + ":" + proxy.port();
        return url.replace(first, first + "," + green.host() + ":" + green.port());
    }

    private static GoAwayProxy proxy(EmbeddedUpstream blue, String name, DrillOptions options) throws Exception {
        GoAwayProxy.Builder b = GoAwayProxy.builder().upstream(blue).name(name);
        if (tls(options)) {
            SSLContext context = TestCertificates.get().serverContext();
            b.tls(context);
        }
        return b.start();
    }

    private static Properties properties(EmbeddedUpstream blue, DrillOptions options) {
        Properties p = new Properties();
        p.setProperty("user", blue.user());
        p.setProperty("sslmode", "prefer");
        return p;
    }

    private static void query(Connection c, Duration sleep) throws SQLException {
        try (Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("select pg_sleep(" + sleep.toNanos() / 1e9 + ")")) {
            rs.next();
        }
    }

    /**
     * One drill, the most borrowers waiting at once meanwhile, sampled every millisecond from HikariCP's MXBean (a
     * pool that shrank below its load makes them wait), and the spikes' acquire times.
     */
    private record Measured(DrillResult result, int mostWaiting, Spikes.Result spikes) {
    }

    private static Measured drill(String mode, Switchover switchover, EmbeddedUpstream blue,
            EmbeddedUpstream green, int poolSize, DrillOptions options) throws Exception {
        try (GoAwayProxy proxy = proxy(blue, "drain-" + mode, options)) {
            HikariConfig config = new HikariConfig();
            config.setPoolName(mode);
            config.setJdbcUrl(url(proxy, blue, green, options));
            config.setUsername(blue.user());
            config.addDataSourceProperty("sslmode", "prefer");
            config.setMaximumPoolSize(poolSize);
            config.setMinimumIdle(poolSize);
            if (mode.equals("pool-goaway-previous")) {
                PoolGoAway.install(config, EvictorSettings.builder().drainWindow(Duration.ofMillis(250))
                        .maxReplacementsInFlight(Math.max(2, poolSize / 4)).build());
            } else if (mode.startsWith("pool-goaway")) {
                PoolGoAway.install(config);
            }
            Duration query = options.duration("query");
            try (HikariDataSource pool = new HikariDataSource(config); PoolSampler sampler = new PoolSampler(pool);
                    Spikes spikes = new Spikes(pool, spike(options), options.duration("spike-length"), query)) {
                DrillResult result = SwitchoverDrill.builder(proxy, blue, green).label(mode).switchover(switchover)
                        .warmUp(poolSize)
                        .load(options).request(c -> query(c, query)).observeAtMost(options.duration("window"))
                        .maxLifetime(Duration.ofMillis(config.getMaxLifetime()))
                        .progress(System.out::println).build().run(pool);
                System.out.println(result.report());
                // The spikes while the pool drained (plain HikariCP: over the same observation from the switchover).
                Instant switched = proxy.timeline().stream().filter(e -> e.kind() == ProxyEvent.Kind.SMART_SHUTDOWN)
                        .map(ProxyEvent::at).findFirst().orElseThrow();
                return new Measured(result, sampler.mostWaiting, spikes.result(switched,
                        switched.plus(result.observed())));
            }
        }
    }

    /** Samples a pool's waiting borrowers every millisecond, on a thread of its own. */
    private static final class PoolSampler implements AutoCloseable {
        private final Thread thread;
        private volatile boolean stop;
        volatile int mostWaiting;

        PoolSampler(HikariDataSource pool) {
            HikariPoolMXBean bean = pool.getHikariPoolMXBean();
            thread = new Thread(() -> {
                while (!stop) {
                    mostWaiting = Math.max(mostWaiting, bean.getThreadsAwaitingConnection());
                    LockSupport.parkNanos(1_000_000);
                }
            }, "drain-benchmark-sampler");
            thread.setDaemon(true);
            thread.start();
        }

        @Override
        public void close() throws InterruptedException {
            stop = true;
            thread.join();
        }
    }

    /**
     * Bursts of borrowers: every second, {@code borrowers} threads borrow, query and return for {@code length},
     * each acquire timed (what a user sees of a pool that shrank during a spike). Off when {@code borrowers} is 0.
     */
    private static final class Spikes implements AutoCloseable {
        private final Thread thread;
        /** When each acquire started (epoch nanos) and how long it took (nanos). */
        private final List<long[]> acquires = new ArrayList<>();
        private final AtomicLong failed = new AtomicLong();
        private volatile boolean stop;

        /** The acquire times of every burst and the borrows that failed. */
        record Result(List<Duration> acquires, long failed) {
            Duration p99() {
                return acquires.isEmpty() ? Duration.ZERO : acquires.get((int) Math.ceil(acquires.size() * .99) - 1);
            }
        }

        Spikes(HikariDataSource pool, int borrowers, Duration length, Duration query) {
            thread = new Thread(() -> {
                // From a full pool on, as plain HikariCP's users see it: not while HikariCP opens the first ones.
                while (!stop && borrowers > 0
                        && pool.getHikariPoolMXBean().getTotalConnections() < pool.getMaximumPoolSize()) {
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
                }
                while (!stop && borrowers > 0) {
                    long burstEnd = System.nanoTime() + length.toNanos();
                    List<Thread> burst = new ArrayList<>();
                    for (int i = 0; i < borrowers; i++) {
                        Thread t = new Thread(() -> borrowUntil(pool, burstEnd, query), "drain-benchmark-spike");
                        t.setDaemon(true);
                        t.start();
                        burst.add(t);
                    }
                    LockSupport.parkNanos(TimeUnit.SECONDS.toNanos(1));
                    burst.forEach(Spikes::join);
                }
            }, "drain-benchmark-spikes");
            thread.setDaemon(true);
            thread.start();
        }

        private void borrowUntil(HikariDataSource pool, long end, Duration query) {
            while (System.nanoTime() - end < 0 && !stop) {
                Instant at = Instant.now();
                long start = System.nanoTime();
                try (Connection c = pool.getConnection()) {
                    long acquired = System.nanoTime() - start;
                    synchronized (acquires) {
                        acquires.add(new long[] {at.getEpochSecond() * 1_000_000_000L + at.getNano(), acquired});
                    }
                    query(c, query);
                } catch (SQLException e) {
                    failed.incrementAndGet();
                }
            }
        }

        private static void join(Thread t) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** @return the acquires that started within [from, to) */
        Result result(Instant from, Instant to) {
            long start = from.getEpochSecond() * 1_000_000_000L + from.getNano();
            long end = to.getEpochSecond() * 1_000_000_000L + to.getNano();
            synchronized (acquires) {
                return new Result(acquires.stream().filter(a -> a[0] >= start && a[0] < end).map(a -> a[1]).sorted()
                        .map(Duration::ofNanos).toList(), failed.get());
            }
        }

        @Override
        public void close() throws InterruptedException {
            stop = true;
            thread.join();
        }
    }

    /** The spikes' acquire p99 of each drill, median over its runs, and as a ratio to plain HikariCP's. */
    private static String spikes(Map<String, List<Measured>> repeated) {
        if (repeated.values().stream().flatMap(List::stream).allMatch(m -> m.spikes().acquires().isEmpty())) {
            return "";
        }
        Map<String, Duration> p99 = new LinkedHashMap<>();
        repeated.forEach((mode, runs) -> p99.put(mode, median(runs.stream().map(m -> m.spikes().p99()).sorted()
                .toList())));
        Duration plain = p99.get("hikari");
        StringBuilder out = new StringBuilder("\nAcquire times of the spikes' borrowers from the switchover until "
                + "drained (plain HikariCP: over its observation window):\n\n| drill | spike acquire p99, median of "
                + "runs | per run | acquires | failed | ratio to plain HikariCP |\n|---|---|---|---|---|---|\n");
        p99.forEach((mode, d) -> out.append(String.format(Locale.ROOT, "| %s | %s | %s | %d | %d | %s |%n", mode,
                ms(d), String.join(", ", repeated.get(mode).stream().map(m -> ms(m.spikes().p99())).toList()),
                repeated.get(mode).stream().mapToLong(m -> m.spikes().acquires().size()).sum(),
                repeated.get(mode).stream().mapToLong(m -> m.spikes().failed()).sum(),
                plain == null || plain.isZero() ? "-" : String.format(Locale.ROOT, "%.2f",
                        d.toNanos() / (double) plain.toNanos()))));
        return out.toString();
    }

    /** Every run of the repeated drills: median, fastest and slowest drain, and the worst the pool went through. */
    private static String summary(Map<String, List<Measured>> repeated) {
        StringBuilder out = new StringBuilder("| drill | runs | drain median | fastest – slowest | not drained "
                + "| failed requests | getConnection p99 during, median | most borrowers waiting "
                + "| fewest open beyond the load's, during the drain |\n|---|---|---|---|---|---|---|---|---|\n");
        repeated.forEach((mode, runs) -> {
            List<Duration> drains = runs.stream().flatMap(m -> m.result().drainTime().stream()).sorted().toList();
            List<Duration> p99 = runs.stream().map(m -> m.result().phases().get(Phase.DURING).getConnection().p99())
                    .sorted().toList();
            out.append(String.format(Locale.ROOT, "| %s | %d | %s | %s – %s | %d | %d of %,d | %s | %d | %d |%n",
                    mode, runs.size(), drains.isEmpty() ? "-" : ms(median(drains)),
                    drains.isEmpty() ? "-" : ms(drains.get(0)),
                    drains.isEmpty() ? "-" : ms(drains.get(drains.size() - 1)),
                    runs.size() - drains.size(), runs.stream().mapToInt(m -> m.result().failedRequests()).sum(),
                    runs.stream().mapToInt(m -> m.result().requests()).sum(), ms(median(p99)),
                    runs.stream().mapToInt(Measured::mostWaiting).max().orElse(0),
                    runs.stream().flatMapToInt(m -> m.result().fewestSpareDuringDrain().stream()).min().orElse(0)));
        });
        return out.toString();
    }

    private static Duration median(List<Duration> sorted) {
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : sorted.get(n / 2 - 1).plus(sorted.get(n / 2)).dividedBy(2);
    }

    private static String ms(Duration d) {
        return String.format(Locale.ROOT, "%.1f ms", d.toNanos() / 1e6);
    }
}
