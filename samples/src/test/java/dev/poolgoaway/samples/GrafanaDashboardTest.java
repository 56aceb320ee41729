package dev.poolgoaway.samples;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.springframework.boot.Banner;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.json.JsonParserFactory;
import org.springframework.context.ConfigurableApplicationContext;

import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.samples.orders.OrdersApplication;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;

/**
 * The example dashboard (docs/grafana) queries only series that exist: the drill's Spring Boot application, set up
 * as the quickstart says (docs/quickstart.md, nothing for pool-goaway), goes through a real drain behind the test
 * kit's proxy over a real PostgreSQL 18, and every series the dashboard names is one of the meters it registered,
 * named as Micrometer's Prometheus registry names them.
 */
class GrafanaDashboardTest {

    private static final Path DASHBOARD = Path.of("../docs/grafana/pool-goaway-dashboard.json");
    private static final int POOL = 4;

    @Test
    void everySeriesTheDashboardQueriesIsAMeterOfARealDrain() throws Exception {
        try (EmbeddedUpstream server = EmbeddedUpstream.start();
                GoAwayProxy proxy = GoAwayProxy.builder().upstream(server).name("dashboard-proxy").start();
                ConfigurableApplicationContext app = quickstartApplication(proxy, server)) {
            HikariDataSource pool = app.getBean(HikariDataSource.class);
            try (Connection c = pool.getConnection()) {
                assertTrue(c.isValid(1));
            }
            await().atMost(Duration.ofSeconds(20))
                    .until(() -> proxy.openConnections().size() == POOL);
            MeterRegistry registry = app.getBean(MeterRegistry.class);

            assertEquals(POOL, proxy.goAway(), "every pooled connection speaks 3.3: installed with zero configuration");
            await().atMost(Duration.ofSeconds(20)).until(() -> count(registry, "poolgoaway.evictions") >= POOL);
            await().atMost(Duration.ofSeconds(20)).until(() -> proxy.openConnections().stream()
                    .allMatch(c -> c.goAwaySentAt().isEmpty()) && proxy.openConnections().size() == POOL);

            Set<String> series = prometheusSeries(registry);
            List<String> queried = queriedSeries();
            assertFalse(queried.isEmpty());
            for (String name : queried) {
                assertTrue(series.contains(name), name + " is not a series of the application; it has " + series);
            }
        }
    }

    private static ConfigurableApplicationContext quickstartApplication(GoAwayProxy proxy, EmbeddedUpstream server)
            throws Exception {
        Properties quickstart = new Properties();
        try (InputStream in = GrafanaDashboardTest.class.getResourceAsStream("/quickstart.properties")) {
            quickstart.load(in);
        }
        Map<String, Object> properties = new HashMap<>();
        quickstart.forEach((k, v) -> properties.put((String) k, v));
        // Only where the database is differs from the quickstart.
        properties.put("spring.datasource.url", proxy.jdbcUrl(server.database()));
        properties.put("spring.datasource.username", server.user());
        properties.put("spring.datasource.hikari.maximum-pool-size", POOL);
        properties.put("spring.datasource.hikari.minimum-idle", POOL);
        return new SpringApplicationBuilder(OrdersApplication.class).web(WebApplicationType.NONE)
                .bannerMode(Banner.Mode.OFF).properties(properties).run();
    }

    private static double count(MeterRegistry registry, String name) {
        return registry.find(name).counters().stream().mapToDouble(c -> c.count()).sum();
    }

    /** The Prometheus series of every meter, as Micrometer's Prometheus naming convention writes them. */
    private static Set<String> prometheusSeries(MeterRegistry registry) {
        Set<String> series = new TreeSet<>();
        for (Meter meter : registry.getMeters()) {
            String base = meter.getId().getName().replace('.', '_');
            switch (meter.getId().getType()) {
                case COUNTER -> series.add(base + "_total");
                case GAUGE -> series.add(base);
                case TIMER -> {
                    for (String suffix : List.of("_count", "_sum", "_max")) {
                        series.add(base + "_seconds" + suffix);
                    }
                }
                default -> series.add(base);
            }
        }
        return series;
    }

    /** Every poolgoaway_* and hikaricp_* series in the dashboard's queries and variable definitions. */
    private static List<String> queriedSeries() throws Exception {
        String json = Files.readString(DASHBOARD);
        Map<String, Object> dashboard = JsonParserFactory.getJsonParser().parseMap(json);   // well-formed JSON
        assertTrue(dashboard.containsKey("panels") && dashboard.containsKey("templating"));
        List<String> names = new ArrayList<>();
        Matcher query = Pattern.compile("\"(?:expr|definition)\": \"((?:[^\"\\\\]|\\\\.)*)\"").matcher(json);
        while (query.find()) {
            Matcher m = Pattern.compile("\\b(?:poolgoaway|hikaricp)_[a-z_]+").matcher(query.group(1));
            while (m.find()) {
                names.add(m.group());
            }
        }
        return names;
    }
}
