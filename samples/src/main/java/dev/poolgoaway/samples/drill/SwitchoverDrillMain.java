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
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.springframework.boot.Banner;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.samples.orders.OrdersApplication;
import dev.poolgoaway.samples.orders.PlaceOrder;
import dev.poolgoaway.testkit.DnsName;
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
 * <p>Then the second scenario, "DNS switchover, stock PostgreSQL": what users of released PostgreSQL (no GoAway)
 * get today. No proxy: blue and green listen on one port at two loopback addresses, the service's URL names them by
 * a DNS name, and the switchover re-points the name at green and shuts blue down smart. With and without
 * pool-goaway again. The JVM resolves the name from a hosts file with a 1 s DNS cache (the {@code sample} profile
 * starts it so); without those, or without the loopback addresses (macOS), the scenario is skipped, with a line
 * that says why.
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

    /** The DNS scenario's name and the servers' addresses (one port): blue, green, and the second drill's blue. */
    private static final String DNS_NAME = "db.drill.test";
    private static final String BLUE = "127.0.0.2";
    private static final String GREEN = "127.0.0.3";
    private static final String BLUE_AGAIN = "127.0.0.4";

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
                .option("scenarios", "goaway,dns", "which switchovers: goaway (through the GoAway proxy), dns (a DNS "
                        + "name re-pointed, stock PostgreSQL)")
                .option("out", "target/drill", "directory for the report, timelines and chart")
                .run(args, SwitchoverDrillMain::run);
        if (status != 0) {
            System.exit(status);
        }
    }

    private static void run(DrillOptions options) throws Exception {
        String compare = options.value("compare");
        if (!compare.equals("true") && !compare.equals("false")) {
            throw new IllegalArgumentException("--compare must be true or false, got " + compare);
        }
        List<String> scenarios = options.list("scenarios", List.of("goaway", "dns"));
        Path out = Path.of(options.value("out")).toAbsolutePath();
        Files.createDirectories(out);
        // This JVM resolves every name from the drill's hosts file, if it has one: localhost must be in it first.
        DnsName name = DnsName.available() ? DnsName.of(DNS_NAME) : null;
        if (name != null) {
            name.pointTo();
        }
        StringBuilder report = new StringBuilder("# Switchover drill\n\n");
        if (scenarios.contains("goaway")) {
            goAwayScenario(options, compare.equals("true"), out, report);
        }
        if (scenarios.contains("dns")) {
            String skip = name == null ? "this JVM resolves names through the system (run it with -D"
                    + DnsName.HOSTS_FILE + "=<file> -Dsun.net.inetaddr.ttl=1, as the sample profile does)"
                    : Stream.of(BLUE, GREEN, BLUE_AGAIN).filter(a -> !EmbeddedUpstream.canListenOn(a)).findFirst()
                            .map(a -> "this system does not answer on " + a).orElse(null);
            if (skip == null) {
                dnsScenario(name, options, compare.equals("true"), out, report);
            } else {
                progress("DNS scenario skipped: " + skip);
                report.append("DNS scenario skipped: ").append(skip).append(".\n");
            }
        }
        Path reportFile = out.resolve("report.md");
        Files.writeString(reportFile, report);
        System.out.println("report:   " + reportFile);
        System.out.println("timeline: " + out.resolve("*.csv"));
    }

    /** Blue and green behind the GoAway proxy: pool-goaway hears GoAway at blue's smart shutdown. */
    private static void goAwayScenario(DrillOptions options, boolean compare, Path out, StringBuilder report)
            throws Exception {
        progress("starting two PostgreSQL 18 servers, blue and green");
        Map<String, String> serverConfig = options.serverConfig();
        CompletableFuture<EmbeddedUpstream> greenStarting = EmbeddedUpstream.startInBackground(serverConfig);
        try (EmbeddedUpstream blue = EmbeddedUpstream.start(serverConfig); EmbeddedUpstream green = greenStarting.join()) {
            createSchema(blue);
            createSchema(green);
            progress("blue on port " + blue.port() + ", green on port " + green.port());
            List<DrillResult> results = new ArrayList<>();
            results.add(goAwayDrill("with pool-goaway", true, blue, green, options,
                    options.duration("drain-timeout")));
            if (compare) {
                results.add(goAwayDrill("without pool-goaway", false, blue, green, options,
                        options.duration("window")));
            }
            report(results, "GoAway switchover (the proxy speaks GoAway)", out, "timeline.png",
                    "blue = " + blue.host() + ":" + blue.port() + ", green = " + green.host() + ":" + green.port(),
                    options, report);
        }
    }

    private static DrillResult goAwayDrill(String label, boolean enabled, EmbeddedUpstream blue,
            EmbeddedUpstream green, DrillOptions options, Duration observeAtMost) throws Exception {
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("drill-lb").start()) {
            progress("drill \"" + label + "\": through the proxy on port " + proxy.port());
            return drill(label, enabled ? "orders" : "orders-plain", enabled, proxy.jdbcUrl(blue.database()),
                    SwitchoverDrill.builder(proxy, blue, green), options, observeAtMost);
        }
    }

    /**
     * A DNS name re-pointed from blue to green, stock PostgreSQL, no proxy: what pool-goaway's DNS leave-signal does
     * for users of released PostgreSQL. Blue's smart shutdown is for real, so each drill has a blue of its own (on
     * another address, the same port); green serves both.
     */
    private static void dnsScenario(DnsName name, DrillOptions options, boolean compare, Path out,
            StringBuilder report) throws Exception {
        int port = EmbeddedUpstream.freePort(BLUE, GREEN, BLUE_AGAIN);
        progress("starting PostgreSQL 18 servers on " + BLUE + " and " + GREEN + ", port " + port + ", named "
                + DNS_NAME);
        Map<String, String> serverConfig = options.serverConfig();
        try (EmbeddedUpstream green = EmbeddedUpstream.startOn(GREEN, port, serverConfig)) {
            createSchema(green);
            List<DrillResult> results = new ArrayList<>();
            for (String address : compare ? List.of(BLUE, BLUE_AGAIN) : List.of(BLUE)) {
                boolean enabled = address.equals(BLUE);
                try (EmbeddedUpstream blue = EmbeddedUpstream.startOn(address, port, serverConfig)) {
                    createSchema(blue);
                    name.pointTo(address);
                    awaitResolves(name, address);
                    String label = enabled ? "DNS, with pool-goaway" : "DNS, without pool-goaway";
                    progress("drill \"" + label + "\": " + DNS_NAME + " -> " + address + ", then -> " + GREEN);
                    results.add(drill(label, enabled ? "orders-dns" : "orders-dns-plain", enabled,
                            "jdbc:postgresql://" + DNS_NAME + ":" + port + "/" + blue.database(),
                            SwitchoverDrill.builder(name, blue, green), options,
                            options.duration(enabled ? "drain-timeout" : "window")));
                }
            }
            report(results, "DNS switchover, stock PostgreSQL (no proxy, no GoAway; JVM DNS cache 1 s)", out,
                    "timeline-dns.png", DNS_NAME + " on port " + port + ": blue = " + BLUE + (compare ? " (" + BLUE_AGAIN
                            + " for the drill without pool-goaway: the first blue shut down)" : "") + ", green = "
                            + GREEN, options, report);
        }
    }

    /** The drill re-points the name from blue: the JVM must resolve it to blue first (its cache expired). */
    private static void awaitResolves(DnsName name, String address) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!name.addresses().equals(List.of(address))) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(name + " does not resolve to " + address + ": " + name.addresses());
            }
            Thread.sleep(10);
        }
    }

    private static DrillResult drill(String label, String poolName, boolean enabled, String url,
            SwitchoverDrill.Builder drill, DrillOptions options, Duration observeAtMost) throws Exception {
        int poolSize = options.poolSize();
        progress("drill \"" + label + "\": starting the Spring Boot application (poolgoaway.enabled=" + enabled
                + "), pool of " + poolSize);
        Map<String, Object> properties = new LinkedHashMap<>();
        properties.put("spring.datasource.url", url);
        properties.put("spring.datasource.username", "postgres");
        properties.put("spring.datasource.hikari.pool-name", poolName);
        properties.put("spring.datasource.hikari.maximum-pool-size", poolSize);
        properties.put("spring.datasource.hikari.minimum-idle", poolSize);
        properties.put("poolgoaway.enabled", enabled);
        try (ConfigurableApplicationContext app = new SpringApplicationBuilder(OrdersApplication.class)
                .web(WebApplicationType.NONE).bannerMode(Banner.Mode.OFF).logStartupInfo(false)
                .properties(properties).run()) {
            HikariDataSource pool = app.getBean(HikariDataSource.class);
            DrillResult result = drill.label(label).warmUp(poolSize).load(options).request(new PlaceOrder())
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

    private static void report(List<DrillResult> results, String scenario, Path out, String chartFile,
            String servers, DrillOptions options, StringBuilder report) throws IOException {
        report.append("## ").append(scenario).append("\n\n")
                .append(String.format(Locale.ROOT, "Pool %s, %s workers, %s requests/s; %s.%n%n",
                        options.value("pool-size"), options.value("workers"), options.value("rate"), servers))
                .append(DrillResult.comparison(results)).append("\n");
        for (DrillResult r : results) {
            report.append("```\n").append(r.report()).append("```\n\n");
            Files.writeString(out.resolve(fileName(r.label()) + ".csv"), r.timelineCsv());
        }
        Path chart = out.resolve(chartFile);
        TimelineChart.write(results, "blue", "green", chart);
        report.append("Chart: ").append(chartFile).append("\n\n");

        System.out.println();
        System.out.println(scenario);
        System.out.println(DrillResult.comparison(results));
        for (DrillResult r : results) {
            System.out.println(verdict(r));
        }
        System.out.println("chart:    " + chart);
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
