package dev.poolgoaway.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.benchmarks.FleetSimulation.Fleet;
import dev.poolgoaway.benchmarks.FleetSimulation.SetupTime;
import dev.poolgoaway.benchmarks.FleetSimulation.Summary;
import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.PoolGoAway;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.ProxiedConnection;
import dev.poolgoaway.testkit.ShutdownCompletion;
import dev.poolgoaway.testkit.drill.DrillOptions;

/**
 * The fleet drill: K HikariCP pools with pool-goaway, each under a light load, all through one test-kit proxy (the
 * load balancer) to blue, switched to green by a smart shutdown of blue, once per drain window. It measures what
 * the new server sees, new connections per second over sliding 100 ms and 1 s buckets, each pool's drain (the
 * switchover to its last connection to the old server closed) and the failed requests, and sets them beside what
 * the window predicts and what {@link FleetSimulation} predicts for the same fleet and the measured setup time.
 *
 * <p>First it measures that setup time: opening one pgjdbc connection, one at a time and from K threads at once,
 * straight to the server and through the proxy, since the fork of a backend costs more while others fork. The
 * proxy sees every pool's connections: each pool binds its sockets to its own loopback address (pgjdbc's
 * {@code localSocketAddress}), so the proxy's client address names the pool.
 *
 * <pre>
 * ./mvnw -B -DskipTests -Pbench-fleet verify -pl pool-goaway/benchmarks -am -Dfleet.args="--windows=0.5,2,5"
 * </pre>
 */
public final class FleetDrill {

    /** Pool i binds to 127.0.0.(FIRST_HOST + i): the whole of 127/8 is loopback on Linux. */
    private static final int FIRST_HOST = 10;
    private static final Duration WARM_UP_TIMEOUT = Duration.ofSeconds(60);
    /** Seeds of the simulation set beside each drill row. */
    private static final int SIMULATED_RUNS = 100;

    private FleetDrill() {
    }

    /**
     * @param args {@code --name=value} options; {@code --help} lists them
     * @throws Exception if a server or the proxy cannot start
     */
    public static void main(String[] args) throws Exception {
        DrillOptions options = new DrillOptions("fleet-drill")
                .option("pools", "10", "HikariCP pools (instances)")
                .option("pool-size", "20", "connections per pool (minimumIdle = maximumPoolSize)")
                .option("windows", "0.5,2,5,10", "drain windows in seconds, one switchover each, comma-separated")
                .option("load-threads", "1", "threads of closed-loop load per pool")
                .option("load-sleep", "20ms", "each load transaction's pg_sleep")
                .option("before", "2s", "load before each switchover")
                .option("after", "1s", "load kept going after the drain")
                .option("observe", "30s", "how long to wait for a drain")
                .option("calibrate", "40", "connections each thread opens to measure the setup time")
                .option("out", "target/bench/fleet-drill.md", "where the report is written")
                .option("trace", "false", "true: every connection of each round to <out>-<W>ms.csv as well");
        FleetSimulation.runMain(options, args, FleetDrill::run);
        System.exit(0); // the pools' and servers' daemon threads are done with
    }

    private static void run(DrillOptions options) throws Exception {
        int pools = options.intValue("pools", 1, 200);
        int poolSize = options.intValue("pool-size", 1, 200);
        double[] windows = FleetSimulation.numbers(options, "windows", 0, 600);
        int loadThreads = options.intValue("load-threads", 1, 64);
        Duration loadSleep = options.duration("load-sleep");
        Duration before = options.duration("before");
        Duration after = options.duration("after");
        Duration observe = options.duration("observe");
        int calibrate = options.intValue("calibrate", 5, 10_000);
        Path out = Path.of(options.value("out"));
        // Each server holds every pool's connections (old ones on blue while new ones open on green) plus the
        // calibration's K at once, plus the superuser's reserve and a margin.
        String maxConnections = String.valueOf(pools * poolSize + pools + 20);
        Map<String, String> serverConfig = Map.of("max_connections", maxConnections);
        progress("starting blue and green, embedded PostgreSQL, max_connections " + maxConnections);
        CompletableFuture<EmbeddedUpstream> greenStarting = EmbeddedUpstream.startInBackground(serverConfig);
        String load = String.format(Locale.ROOT, "%.2f", loadAverage());
        StringBuilder report = new StringBuilder();
        try (EmbeddedUpstream blue = EmbeddedUpstream.start(serverConfig);
                EmbeddedUpstream green = greenStarting.join()) {
            List<Setup> setups = calibrate(green, pools, calibrate);
            Setup proxied = setups.get(setups.size() - 1);
            report.append(String.format(Locale.ROOT, "Fleet drill, %s UTC, PostgreSQL %s, load average %s at the "
                    + "start; %d pools × %d, %d load thread(s) per pool of %d ms transactions, evictor tick %d ms."
                    + "%n%n", Instant.now().toString().substring(0, 16).replace('T', ' '), green.serverVersion(),
                    load, pools, poolSize, loadThreads, loadSleep.toMillis(), EvictorSettings.DEFAULT_TICK.toMillis()));
            report.append("Connection setup time s (open and close one pgjdbc connection):\n\n")
                    .append("| how | at once | median | p90 | connections/s |\n|---|---|---|---|---|\n");
            setups.forEach(s -> report.append(s.row()));
            report.append(String.format(Locale.ROOT, "%nEach drill below, beside the simulation (%d seeds) fed the "
                    + "pools' adder cycle s measured while they filled, before the switchover (pgjdbc alone above: "
                    + "median %s, p90 %s through the proxy, %d at once), GoAway spread over one tick, and the evictor's "
                    + "headroom for a load of as many connections as it has threads (P − D − max(1, ⌈D/4⌉)). Rates are new connections/s at the new "
                    + "server, peaks over sliding buckets.%n%n", SIMULATED_RUNS,
                    FleetSimulation.seconds(proxied.median()), FleetSimulation.seconds(proxied.p90()), pools));
            report.append(Round.HEADER);
            PostgresUpstream from = blue;
            PostgresUpstream to = green;
            // Round 0 is not reported: it warms the JVM (the proxy's, the wire layer's and HikariCP's paths of a
            // switchover) and both servers, so that the first window measured is not charged with that.
            for (int r = 0; r <= windows.length; r++) {
                double w = windows[Math.max(0, r - 1)];
                Fleet fleet = new Fleet(pools, poolSize, Fleet.evictorHeadroom(poolSize, loadThreads), w,
                        EvictorSettings.DEFAULT_TICK.toMillis() / 1000.0, proxied.time(), 0);
                Round round = new Round(fleet, from, to, loadThreads, loadSleep,
                        r > 0 && options.value("trace").equals("true") ? out : null);
                if (r == 0) {
                    progress("warm-up round, not reported");
                    round.run(before, after, observe);
                } else {
                    report.append(round.run(before, after, observe));
                }
                PostgresUpstream was = from;
                from = to;
                to = was;
            }
        }
        report.append(String.format(Locale.ROOT, "%nLoad average at the end: %.2f.%n", loadAverage()));
        Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(out, report);
        System.out.println();
        System.out.println(report);
        progress("report written to " + out.toAbsolutePath());
    }

    // ---- the setup time --------------------------------------------------------------------------------------

    /** Setup times measured one way. */
    private record Setup(String how, int threads, double[] seconds, double elapsed) {

        double median() {
            return ConnectionRate.percentile(seconds, 0.5);
        }

        double p90() {
            return ConnectionRate.percentile(seconds, 0.9);
        }

        SetupTime time() {
            return new SetupTime(median(), Math.max(median(), p90()));
        }

        String row() {
            return String.format(Locale.ROOT, "| %s | %d | %.1f ms | %.1f ms | %,.0f |%n", how, threads,
                    median() * 1000, p90() * 1000, seconds.length / elapsed);
        }
    }

    /** One at a time and K at once, straight to the server; K at once through the proxy, as the pools connect. */
    private static List<Setup> calibrate(EmbeddedUpstream server, int threads, int perThread) throws Exception {
        String direct = "jdbc:postgresql://127.0.0.1:" + server.port() + "/" + server.database();
        measure("warm-up", direct, server, 1, 20); // class loading and the JIT, not the server
        List<Setup> setups = new ArrayList<>();
        setups.add(measure("straight to the server", direct, server, 1, perThread));
        setups.add(measure("straight to the server", direct, server, threads, perThread));
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(server).name("fleet-calibration").start()) {
            String viaProxy = "jdbc:postgresql://127.0.0.1:" + proxy.port() + "/" + server.database();
            setups.add(measure("through the proxy", viaProxy, server, threads, perThread));
        }
        return setups;
    }

    private static Setup measure(String how, String url, PostgresUpstream server, int threads, int perThread)
            throws Exception {
        Properties login = new Properties();
        login.setProperty("user", server.user());
        double[] seconds = new double[threads * perThread];
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        long start = System.nanoTime();
        try {
            List<Future<?>> running = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int first = t * perThread;
                running.add(pool.submit(() -> {
                    for (int i = 0; i < perThread; i++) {
                        long opening = System.nanoTime();
                        try (Connection c = DriverManager.getConnection(url, login)) {
                            seconds[first + i] = (System.nanoTime() - opening) / 1e9;
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : running) {
                f.get();
            }
        } finally {
            pool.shutdown();
        }
        Setup setup = new Setup(how, threads, seconds, (System.nanoTime() - start) / 1e9);
        if (!how.equals("warm-up")) {
            progress(String.format(Locale.ROOT, "setup time, %s, %d at once: median %.1f ms, p90 %.1f ms", how,
                    threads, setup.median() * 1000, setup.p90() * 1000));
        }
        return setup;
    }

    // ---- one switchover --------------------------------------------------------------------------------------

    /** One switchover of the whole fleet at one drain window. */
    private static final class Round {

        static final String HEADER = "| W | borrows/s per pool | adder cycle filling p50 / p90 "
                + "| gaps draining p50 / p90 | window predicts "
                + "(idle) | mean measured / simulated | peak 1 s measured / "
                + "simulated | peak 100 ms measured / simulated | pool drain p50 / max measured | simulated p50 / p99 "
                + "| failed requests |\n|---|---|---|---|---|---|---|---|---|---|---|\n";

        private final Fleet fleet;
        private final PostgresUpstream from;
        private final PostgresUpstream to;
        private final int loadThreads;
        private final Duration loadSleep;
        private final String label;
        private final Path trace;

        Round(Fleet fleet, PostgresUpstream from, PostgresUpstream to, int loadThreads, Duration loadSleep,
                Path trace) {
            this.trace = trace;
            this.fleet = fleet;
            this.from = from;
            this.to = to;
            this.loadThreads = loadThreads;
            this.loadSleep = loadSleep;
            this.label = "W " + FleetSimulation.seconds(fleet.window());
        }

        /** @return the round's row of {@link #HEADER} */
        String run(Duration before, Duration after, Duration observe) throws Exception {
            int pools = fleet.instances();
            int total = pools * fleet.poolSize();
            List<HikariDataSource> dataSources = new ArrayList<>();
            List<LoadGenerator> loads = new ArrayList<>();
            long issued = 0;
            long failed = 0;
            List<Throwable> failures = new ArrayList<>();
            Instant switchedAt;
            double borrowRate;
            boolean drained;
            List<ProxiedConnection> facts;
            try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(from).name("fleet").start()) {
                try {
                    for (int i = 0; i < pools; i++) {
                        dataSources.add(new HikariDataSource(config(proxy, i)));
                    }
                    awaitOpen(proxy, total);
                    long loadStart = System.nanoTime();
                    for (HikariDataSource ds : dataSources) {
                        loads.add(new LoadGenerator(ds, loadThreads, loadSleep));
                        // Staggered over one transaction: loads started together return (and so close) their old
                        // connections together, a clump no fleet of independent services shows.
                        Thread.sleep(loadSleep.toMillis() / pools);
                    }
                    Thread.sleep(before.toMillis());
                    // The load's borrow rate per pool, as it ran, for the report.
                    borrowRate = loads.stream().mapToLong(LoadGenerator::issued).sum() / (double) pools
                            / ((System.nanoTime() - loadStart) / 1e9);
                    switchedAt = Instant.now();
                    proxy.retarget(to);
                    CompletableFuture<ShutdownCompletion> done = proxy.smartShutdown(from);
                    long deadline = System.nanoTime() + observe.toNanos();
                    long nextLine = 0;
                    while (!done.isDone() && System.nanoTime() < deadline) {
                        if (System.nanoTime() >= nextLine) {
                            nextLine = System.nanoTime() + 1_000_000_000L;
                            progress(proxy, switchedAt, loads);
                        }
                        Thread.sleep(10);
                    }
                    drained = done.isDone();
                    progress(proxy, switchedAt, loads);
                    Thread.sleep(after.toMillis());
                } finally {
                    for (LoadGenerator l : loads) {
                        l.close();
                        issued += l.issued();
                        failed += l.failed();
                        failures.addAll(l.failures());
                    }
                    dataSources.forEach(HikariDataSource::close);
                }
                facts = proxy.connections();
            }
            if (trace != null) {
                writeTrace(facts, switchedAt);
            }
            return row(facts, switchedAt, borrowRate, drained, issued, failed, failures);
        }

        /** Every connection of the round, one line each, for a chart or a closer look. */
        private void writeTrace(List<ProxiedConnection> facts, Instant switchedAt) throws IOException {
            StringBuilder csv = new StringBuilder("pool,server,connected_s,closed_s\n");
            for (ProxiedConnection c : facts) {
                if (c.upstream() == null) {
                    continue;
                }
                csv.append(String.format(Locale.ROOT, "%d,%s,%.4f,%s%n",
                        poolOf(c), on(c, from) ? "old" : "new",
                        seconds(switchedAt, c.connectedAt()), c.closedAt()
                                .map(at -> String.format(Locale.ROOT, "%.4f", seconds(switchedAt, at))).orElse("")));
            }
            Path file = trace.resolveSibling(trace.getFileName() + "-" + Math.round(fleet.window() * 1000) + "ms.csv");
            Files.writeString(file, csv);
            FleetDrill.progress("connections written to " + file.toAbsolutePath());
        }

        private HikariConfig config(GoAwayProxy proxy, int i) {
            HikariConfig config = new HikariConfig();
            config.setPoolName("fleet-" + i);
            config.setJdbcUrl("jdbc:postgresql://127.0.0.1:" + proxy.port() + "/" + from.database());
            config.setUsername(from.user());
            config.setMaximumPoolSize(fleet.poolSize());
            config.setMinimumIdle(fleet.poolSize());
            config.addDataSourceProperty("localSocketAddress", "127.0.0." + (FIRST_HOST + i));
            PoolGoAway.install(config, EvictorSettings.builder()
                    .drainWindow(Duration.ofMillis(Math.round(fleet.window() * 1000))).build());
            return config;
        }

        private void awaitOpen(GoAwayProxy proxy, int total) throws InterruptedException {
            long deadline = System.nanoTime() + WARM_UP_TIMEOUT.toNanos();
            while (countOpen(proxy, from) < total) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("the pools opened " + countOpen(proxy, from) + " of " + total
                            + " connections to the old server in " + WARM_UP_TIMEOUT.toSeconds() + " s");
                }
                Thread.sleep(20);
            }
        }

        private void progress(GoAwayProxy proxy, Instant switchedAt, List<LoadGenerator> loads) {
            long ok = loads.stream().mapToLong(LoadGenerator::succeeded).sum();
            long failed = loads.stream().mapToLong(LoadGenerator::failed).sum();
            FleetDrill.progress(String.format(Locale.ROOT,
                    "%s %+6.1fs connections old %d new %d | requests ok %,d failed %,d", label,
                    Duration.between(switchedAt, Instant.now()).toMillis() / 1000.0, countOpen(proxy, from),
                    countOpen(proxy, to), ok, failed));
        }

        private String row(List<ProxiedConnection> facts, Instant switchedAt, double borrowRate, boolean drained,
                long issued, long failed, List<Throwable> failures) {
            double[] arrivals = facts.stream().filter(c -> on(c, to))
                    .mapToDouble(c -> seconds(switchedAt, c.connectedAt())).toArray();
            double[] drains = new double[fleet.instances()];
            for (ProxiedConnection c : facts) {
                if (on(c, from)) {
                    double closed = c.closedAt().map(at -> seconds(switchedAt, at)).orElse(Double.POSITIVE_INFINITY);
                    drains[poolOf(c)] = Math.max(drains[poolOf(c)], closed);
                }
            }
            ConnectionRate measured = ConnectionRate.of(arrivals);
            SetupTime cycle = perPoolGaps(facts, from, switchedAt);
            SetupTime drainGaps = perPoolGaps(facts, to, switchedAt);
            Fleet loaded = new Fleet(fleet.instances(), fleet.poolSize(), fleet.headroom(), fleet.window(),
                    fleet.spread(), cycle, 0);
            Summary simulated = FleetSimulation.summarise(loaded, SIMULATED_RUNS, 1);
            String failedText = failed + " of " + String.format(Locale.ROOT, "%,d", issued);
            if (failed > 0) {
                failedText += ": " + failures.get(0);
            }
            FleetDrill.progress(String.format(Locale.ROOT,
                    "%s: %d new connections, peak 1 s %.0f/s (simulated %.0f), peak 100 ms %.0f/s (simulated %.0f), "
                            + "drain max %s%s, %s failed", label, measured.count(), measured.peakPerSecond(1),
                    simulated.peak1s(), measured.peakPerSecond(0.1), simulated.peak100ms(),
                    FleetSimulation.seconds(ConnectionRate.percentile(drains, 1)),
                    drained ? "" : " (not drained)", failedText));
            return String.format(Locale.ROOT, "| %s | %.1f/s | %.0f / %.0f ms | %.0f / %.0f ms | %,.0f/s | %,.0f / %,.0f | %,.0f / %,.0f (%+.0f%%) "
                            + "| %,.0f / %,.0f (%+.0f%%) | %s / %s%s | %s / %s | %s |%n",
                    FleetSimulation.seconds(fleet.window()), borrowRate, cycle.median() * 1000, cycle.p90() * 1000,
                    drainGaps.median() * 1000, drainGaps.p90() * 1000,
                    loaded.predictedRate(),
                    measured.meanPerSecond(),
                    simulated.meanRate(), measured.peakPerSecond(1), simulated.peak1s(),
                    percent(measured.peakPerSecond(1), simulated.peak1s()), measured.peakPerSecond(0.1),
                    simulated.peak100ms(), percent(measured.peakPerSecond(0.1), simulated.peak100ms()),
                    FleetSimulation.seconds(ConnectionRate.percentile(drains, 0.5)),
                    FleetSimulation.seconds(ConnectionRate.percentile(drains, 1)), drained ? "" : " (not drained)",
                    FleetSimulation.seconds(simulated.drainP50()), FleetSimulation.seconds(simulated.drainP99()),
                    failedText);
        }

        /**
         * What one connection costs a pool's adder here: the gaps between a pool's consecutive connections while
         * the K pools filled at once, before the switchover (the same concurrency, proxy and wire layer as the
         * drain's replacements, HikariCP's own set-up of each connection and its 30 ms pause after each). Of the
         * replacements, the same gaps are the adder's turn where it was kept busy, and due times' gaps elsewhere.
         */
        private SetupTime perPoolGaps(List<ProxiedConnection> facts, PostgresUpstream server, Instant origin) {
            List<List<Double>> openedPerPool = new ArrayList<>();
            for (int i = 0; i < fleet.instances(); i++) {
                openedPerPool.add(new ArrayList<>());
            }
            for (ProxiedConnection c : facts) {
                if (on(c, server)) {
                    openedPerPool.get(poolOf(c)).add(seconds(origin, c.connectedAt()));
                }
            }
            List<Double> gaps = new ArrayList<>();
            for (List<Double> opened : openedPerPool) {
                opened.sort(null);
                for (int i = 1; i < opened.size(); i++) {
                    gaps.add(opened.get(i) - opened.get(i - 1));
                }
            }
            double[] g = gaps.stream().mapToDouble(Double::doubleValue).toArray();
            double median = ConnectionRate.percentile(g, 0.5);
            return new SetupTime(median, Math.max(median, ConnectionRate.percentile(g, 0.9)));
        }

        private static double percent(double measured, double predicted) {
            return (measured / predicted - 1) * 100;
        }
    }

    // ---- small things ------------------------------------------------------------------------------------------

    private static boolean on(ProxiedConnection c, PostgresUpstream server) {
        // Both servers are on localhost: the port tells them apart. A connection in its startup has no server yet.
        return c.upstream() != null && c.upstream().getPort() == server.port();
    }

    /** @return the pool that opened the connection, by the loopback address it bound to */
    private static int poolOf(ProxiedConnection c) {
        return (c.client().getAddress().getAddress()[3] & 0xff) - FIRST_HOST;
    }

    private static int countOpen(GoAwayProxy proxy, PostgresUpstream server) {
        return (int) proxy.openConnections().stream().filter(c -> on(c, server)).count();
    }

    private static double seconds(Instant from, Instant to) {
        return Duration.between(from, to).toNanos() / 1e9;
    }

    private static double loadAverage() {
        return java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    private static void progress(String line) {
        System.out.println("[fleet-drill] " + line);
    }
}
