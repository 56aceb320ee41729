package dev.poolgoaway.spring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import javax.sql.DataSource;

import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.hikari.GoAwayMetrics;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.testkit.ShutdownCompletion;
import io.micrometer.core.instrument.MeterRegistry;

/**
 * A whole Spring Boot application, configured by nothing but {@code spring.datasource.*}, through a switchover:
 * the test kit's GoAway-speaking proxy over a real PostgreSQL (blue) is pointed at another (green), then blue
 * shuts down smartly, and the application's pool must move to green with no failed request, visibly in its health
 * and metrics.
 */
class SpringDrainTest {

    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final int POOL_SIZE = 8;

    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");

    /** What an application needs: auto-configuration, nothing of pool-goaway's. */
    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class Application {
    }

    private static int serverPort(DataSource pool) throws SQLException {
        try (Connection c = pool.getConnection(); Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("select inet_server_port()")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    @Test
    void theApplicationsPoolMovesToTheNewServerWithNoFailedRequest() throws Exception {
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(blue).name("spring-drain").start();
                ConfigurableApplicationContext context = new SpringApplicationBuilder(Application.class)
                        .web(WebApplicationType.NONE)
                        .properties("spring.datasource.url=" + proxy.jdbcUrl("postgres"),
                                "spring.datasource.username=postgres",
                                "spring.datasource.hikari.pool-name=drill",
                                "spring.datasource.hikari.maximum-pool-size=" + POOL_SIZE,
                                "spring.datasource.hikari.minimum-idle=" + POOL_SIZE,
                                // Long enough to watch the drain in the health details.
                                "poolgoaway.drain-window=3s")
                        .run()) {
            HikariDataSource pool = context.getBean(HikariDataSource.class);
            assertThat(serverPort(pool)).isEqualTo(blue.port());
            await().atMost(WAIT).until(() -> pool.getHikariPoolMXBean().getTotalConnections() == POOL_SIZE);
            assertThat(BootHealth.report(context).pool("dataSource")).containsEntry("draining", false);

            try (LoadGenerator load = new LoadGenerator(pool, 4, Duration.ofMillis(2))) {
                await().atMost(WAIT).until(() -> load.succeeded() > 100);
                proxy.retarget(green);
                var drained = proxy.smartShutdown(blue);
                await().atMost(WAIT).pollInterval(Duration.ofMillis(20))
                        .until(() -> BootHealth.report(context).pool("dataSource").get("draining").equals(true));
                ShutdownCompletion done = drained.get(WAIT.toSeconds(), TimeUnit.SECONDS);
                assertThat(done.connectionsAtRequest()).isEqualTo(POOL_SIZE);
                long okAtDrain = load.succeeded();
                await().atMost(WAIT).until(() -> load.succeeded() > okAtDrain + 100);
                assertThat(load.failures()).isEmpty();
            }
            assertThat(serverPort(pool)).isEqualTo(green.port());

            await().atMost(WAIT).untilAsserted(() -> {
                HealthReport health = BootHealth.report(context);
                assertThat(health.status()).isEqualTo("UP");
                assertThat(health.pool("dataSource")).containsEntry("draining", false)
                        .containsEntry("flaggedConnections", 0).containsKey("lastDrain");
            });
            @SuppressWarnings("unchecked")
            Map<String, Object> lastDrain = (Map<String, Object>) BootHealth.report(context).pool("dataSource")
                    .get("lastDrain");
            assertThat(lastDrain).containsEntry("connections", POOL_SIZE)
                    .containsEntry("servers", List.of("localhost:" + proxy.port()))
                    .containsEntry("signals", Map.of("goaway", POOL_SIZE));

            MeterRegistry meters = context.getBean(MeterRegistry.class);
            double evictions = meters.find(GoAwayMetrics.EVICTIONS).tag("pool", "drill").counters().stream()
                    .mapToDouble(c -> c.count()).sum();
            assertThat(evictions).isEqualTo(POOL_SIZE);
            assertThat(meters.find(GoAwayMetrics.DRAIN_EPISODES).tag("pool", "drill").counter().count())
                    .isEqualTo(1);
            // Hikari's own meters, in the same registry, watch the pool refill on green.
            await().atMost(WAIT).untilAsserted(() -> assertThat(
                    meters.find("hikaricp.connections").tag("pool", "drill").gauge().value()).isEqualTo(POOL_SIZE));
        }
    }

}
