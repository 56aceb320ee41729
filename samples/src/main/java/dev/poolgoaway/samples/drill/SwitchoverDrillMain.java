package dev.poolgoaway.samples.drill;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

import org.springframework.boot.Banner;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.samples.orders.OrdersApplication;
import dev.poolgoaway.samples.orders.PlaceOrder;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.drill.DrillOptions;
import dev.poolgoaway.testkit.drill.DrillResult;
import dev.poolgoaway.testkit.drill.SwitchoverDrill;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.search.Search;

/**
 * The switchover drill, the project's main job: two real PostgreSQL 18 servers (blue and green) behind the test
 * kit's GoAway-speaking proxy as the load balancer, a Spring Boot service with pool-goaway under steady load, then
 * a switchover (smart shutdown of blue, new connections to green). The same drill then runs with pool-goaway
 * switched off ({@code poolgoaway.enabled=false}), watched for a bounded window, for the comparison.
 *
 * <pre>
 * ./mvnw -B -DskipTests -Psample verify                                   # the defaults, under 2 minutes
 * ./mvnw -B -DskipTests -Psample verify -Dsample.args="--pool-size=40"    # --help lists every option
 * </pre>
 *
 * It prints a progress line a second, each drill's report, the comparison, and where it wrote the report, the
 * timelines (CSV) and the chart (PNG).
 */
public final class SwitchoverDrillMain {

    private SwitchoverDrillMain() {
    }

    /**
     * Runs the drill.
     *
     * @param args {@code --name=value} options; {@code --help} lists them
     * @throws Exception if a server, the proxy or the application cannot start
     */
    public static void main(String[] args) throws Exception {
        int status = DrillOptions.forDrills("switchover-drill")
                .option("drain-timeout", "30s", "how long the pool-goaway drill may take to drain")
                .option("compare", "true", "also run the drill with pool-goaway switched off (true/false)")
                .option("out", "target/drill", "directory for the report, timelines and chart")
                .run(args, SwitchoverDrillMain::run);
        if (status != 0) {
            System.exit(status);
        }
    }

    private static void run(DrillOptions options) throws Exception {
        int poolSize = options.poolSize();
        String compare = options.value("compare");
        if (!compare.equals("true") && !compare.equals("false")) {
            throw new IllegalArgumentException("--compare must be true or false, got " + compare);
        }
        Path out = Path.of(options.value("out")).toAbsolutePath();
        Files.createDirectories(out);

        progress("starting two PostgreSQL 18 servers, blue and green");
        Map<String, String> serverConfig = options.serverConfig();
        CompletableFuture<EmbeddedUpstream> greenStarting = EmbeddedUpstream.startInBackground(serverConfig);
        try (EmbeddedUpstream blue = EmbeddedUpstream.start(serverConfig); EmbeddedUpstream green = greenStarting.join()) {
            createSchema(blue);
            createSchema(green);
            progress("blue on port " + blue.port() + ", green on port " + green.port());

            List<DrillResult> results = new ArrayList<>();
            results.add(drill("with pool-goaway", true, blue, green, options, options.duration("drain-timeout")));
            if (compare.equals("true")) {
                results.add(drill("without pool-goaway", false, blue, green, options, options.duration("window")));
            }
            report(results, out, blue, green, options);
        }
    }

    private static DrillResult drill(String label, boolean enabled, EmbeddedUpstream blue, EmbeddedUpstream green,
            DrillOptions options, Duration observeAtMost) throws Exception {
        int poolSize = options.poolSize();
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("drill-lb").start()) {
            progress("drill \"" + label + "\": starting the Spring Boot application (poolgoaway.enabled=" + enabled
                    + "), pool of " + poolSize + " through the proxy on port " + proxy.port());
            Map<String, Object> properties = new LinkedHashMap<>();
            properties.put("spring.datasource.url", proxy.jdbcUrl(blue.database()));
            properties.put("spring.datasource.username", blue.user());
            properties.put("spring.datasource.hikari.pool-name", enabled ? "orders" : "orders-plain");
            properties.put("spring.datasource.hikari.maximum-pool-size", poolSize);
            properties.put("spring.datasource.hikari.minimum-idle", poolSize);
            properties.put("poolgoaway.enabled", enabled);
            try (ConfigurableApplicationContext app = new SpringApplicationBuilder(OrdersApplication.class)
                    .web(WebApplicationType.NONE).bannerMode(Banner.Mode.OFF).logStartupInfo(false)
                    .properties(properties).run()) {
                HikariDataSource pool = app.getBean(HikariDataSource.class);
                DrillResult result = SwitchoverDrill.builder(proxy, blue, green).label(label).warmUp(poolSize)
                        .load(options).request(new PlaceOrder())
                        .observeAtMost(observeAtMost)
                        .maxLifetime(Duration.ofMillis(pool.getMaxLifetime()))
                        .progress(System.out::println).build().run(pool);
                System.out.println(result.report());
                if (enabled) {
                    printMeters(app.getBean(MeterRegistry.class));
                }
                return result;
            }
        }
    }

    /** What the application's own metrics say about the drain (the meters a dashboard shows). */
    private static void printMeters(MeterRegistry registry) {
        System.out.printf(Locale.ROOT, "  application metrics: poolgoaway.signals %.0f, poolgoaway.evictions idle %.0f "
                + "in_use %.0f, poolgoaway.drain.episodes %.0f, hikaricp.connections %.0f%n",
                count(registry, "poolgoaway.signals", null), count(registry, "poolgoaway.evictions", "idle"),
                count(registry, "poolgoaway.evictions", "in_use"), count(registry, "poolgoaway.drain.episodes", null),
                registry.find("hikaricp.connections").gauges().stream().mapToDouble(g -> g.value()).sum());
    }

    private static double count(MeterRegistry registry, String name, String state) {
        Search search = registry.find(name);
        if (state != null) {
            search = search.tag("state", state);
        }
        return search.counters().stream().mapToDouble(c -> c.count()).sum();
    }

    private static void report(List<DrillResult> results, Path out, EmbeddedUpstream blue, EmbeddedUpstream green,
            DrillOptions options) throws IOException {
        StringBuilder report = new StringBuilder("# Switchover drill\n\n")
                .append(String.format(Locale.ROOT, "Pool %s, %s workers, %s requests/s; blue = %s:%d, green = %s:%d."
                        + "%n%n", options.value("pool-size"), options.value("workers"), options.value("rate"),
                        blue.host(), blue.port(), green.host(), green.port()))
                .append(DrillResult.comparison(results)).append("\n");
        for (DrillResult r : results) {
            report.append("```\n").append(r.report()).append("```\n\n");
            Files.writeString(out.resolve(fileName(r.label()) + ".csv"), r.timelineCsv());
        }
        Path reportFile = out.resolve("report.md");
        Files.writeString(reportFile, report);
        Path chart = out.resolve("timeline.png");
        TimelineChart.write(results, "blue", "green", chart);

        System.out.println();
        System.out.println(DrillResult.comparison(results));
        for (DrillResult r : results) {
            System.out.println(verdict(r));
        }
        System.out.println("report:   " + reportFile);
        System.out.println("chart:    " + chart);
        System.out.println("timeline: " + out.resolve("*.csv"));
    }

    private static String verdict(DrillResult r) {
        if (r.drained()) {
            return String.format(Locale.ROOT, "%s: all %d connections left blue in %d ms; %d of %,d requests failed.",
                    r.label(), r.oldAtSwitchover(), r.drainTime().orElseThrow().toMillis(), r.failedRequests(),
                    r.requests());
        }
        return String.format(Locale.ROOT, "%s: after %d s, %d of %d connections still on blue%s; %d of %,d requests "
                + "failed.", r.label(), r.observed().toSeconds(), r.stillOnOld(), r.oldAtSwitchover(),
                r.projectedWait().map(w -> " (maxLifetime would free it in about " + w.toMinutes() + " min)")
                        .orElse(""), r.failedRequests(), r.requests());
    }

    private static String fileName(String label) {
        return label.replaceAll("[^A-Za-z0-9]+", "-");
    }

    private static void createSchema(EmbeddedUpstream server) throws SQLException {
        try (Connection c = DriverManager.getConnection("jdbc:postgresql://" + server.host() + ":"
                + server.port() + "/" + server.database(), server.user(), server.password());
                Statement s = c.createStatement()) {
            s.execute(PlaceOrder.SCHEMA);
        }
    }

    private static void progress(String line) {
        System.out.println("[drill] " + line);
    }
}
