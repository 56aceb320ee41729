package dev.poolgoaway.benchmarks;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.hikari.PoolGoAway;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.drill.DrillOptions;
import dev.poolgoaway.testkit.drill.DrillResult;
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

    private static final List<String> MODES = List.of("pool-goaway", "hikari", "pool-goaway-fast", "hikari-fast");

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
        List<DrillResult> results = new ArrayList<>();
        try {
            for (String mode : modes) {
                if (blue == null) {
                    System.out.println("[drain-benchmark] restarting blue after the fast shutdown");
                    blue = EmbeddedUpstream.start(serverConfig);
                }
                Switchover switchover = mode.endsWith("-fast") ? Switchover.FAST : Switchover.SMART;
                results.add(drill(mode, switchover, blue, green, poolSize, options));
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
                + " after, observed at most " + options.value("window") + ".\n\n" + DrillResult.comparison(results);
        Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(out, table);
        System.out.println();
        System.out.println(table);
        System.out.println("[drain-benchmark] table written to " + out.toAbsolutePath());
    }

    private static DrillResult drill(String mode, Switchover switchover, EmbeddedUpstream blue,
            EmbeddedUpstream green, int poolSize, DrillOptions options) throws Exception {
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("drain-" + mode).start()) {
            HikariConfig config = new HikariConfig();
            config.setPoolName(mode);
            config.setJdbcUrl(proxy.jdbcUrl(blue.database()));
            config.setUsername(blue.user());
            config.setMaximumPoolSize(poolSize);
            config.setMinimumIdle(poolSize);
            if (mode.startsWith("pool-goaway")) {
                PoolGoAway.install(config);
            }
            try (HikariDataSource pool = new HikariDataSource(config)) {
                DrillResult result = SwitchoverDrill.builder(proxy, blue, green).label(mode).switchover(switchover)
                        .warmUp(poolSize)
                        .load(options).observeAtMost(options.duration("window"))
                        .maxLifetime(Duration.ofMillis(config.getMaxLifetime()))
                        .progress(System.out::println).build().run(pool);
                System.out.println(result.report());
                return result;
            }
        }
    }
}
