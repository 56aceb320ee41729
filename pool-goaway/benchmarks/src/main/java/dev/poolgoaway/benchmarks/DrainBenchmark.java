package dev.poolgoaway.benchmarks;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.LockSupport;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.HikariPoolMXBean;

import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.PoolGoAway;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
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
                .option("repeat", "5", "how many times each smart-shutdown pool-goaway drill runs, rounds "
                        + "interleaved, for the median drain time")
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
        String table = "Pool " + poolSize + ", " + options.value("workers") + " workers, " + options.value("rate")
                + " requests/s, " + options.value("before") + " before, " + options.value("after")
                + " after, observed at most " + options.value("window") + ".\n\n" + DrillResult.comparison(results)
                + "\nThe first run of each drill above; every run of the repeated ones:\n\n" + summary(repeated);
        Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(out, table);
        System.out.println();
        System.out.println(table);
        System.out.println("[drain-benchmark] table written to " + out.toAbsolutePath());
    }

    private static boolean repeated(String mode) {
        return mode.startsWith("pool-goaway") && !mode.endsWith("-fast");
    }

    /**
     * One drill and the most borrowers waiting at once meanwhile, sampled every millisecond from HikariCP's MXBean
     * (a pool that shrank below its load makes them wait).
     */
    private record Measured(DrillResult result, int mostWaiting) {
    }

    private static Measured drill(String mode, Switchover switchover, EmbeddedUpstream blue,
            EmbeddedUpstream green, int poolSize, DrillOptions options) throws Exception {
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("drain-" + mode).start()) {
            HikariConfig config = new HikariConfig();
            config.setPoolName(mode);
            config.setJdbcUrl(proxy.jdbcUrl(blue.database()));
            config.setUsername(blue.user());
            config.setMaximumPoolSize(poolSize);
            config.setMinimumIdle(poolSize);
            if (mode.equals("pool-goaway-previous")) {
                PoolGoAway.install(config, EvictorSettings.builder().drainWindow(Duration.ofMillis(250))
                        .maxReplacementsInFlight(Math.max(2, poolSize / 4)).build());
            } else if (mode.startsWith("pool-goaway")) {
                PoolGoAway.install(config);
            }
            try (HikariDataSource pool = new HikariDataSource(config); PoolSampler sampler = new PoolSampler(pool)) {
                DrillResult result = SwitchoverDrill.builder(proxy, blue, green).label(mode).switchover(switchover)
                        .warmUp(poolSize)
                        .load(options).observeAtMost(options.duration("window"))
                        .maxLifetime(Duration.ofMillis(config.getMaxLifetime()))
                        .progress(System.out::println).build().run(pool);
                System.out.println(result.report());
                return new Measured(result, sampler.mostWaiting);
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
                    drains.isEmpty() ? "-" : ms(drains.get(0)), drains.isEmpty() ? "-" : ms(drains.get(drains.size() - 1)),
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
