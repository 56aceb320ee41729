package dev.poolgoaway.spring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.InstanceOfAssertFactories.MAP;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Properties;
import java.util.function.Consumer;

import javax.sql.DataSource;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;
import org.springframework.boot.test.context.FilteredClassLoader;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.context.ApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.jdbc.datasource.DelegatingDataSource;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.metrics.micrometer.MicrometerMetricsTrackerFactory;

import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.GoAwayEvictor;
import dev.poolgoaway.hikari.GoAwayMetrics;
import dev.poolgoaway.hikari.LeaveSignal;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.wire.GoAwaySocketFactory;
import dev.poolgoaway.wire.PgGoAway;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * The auto-configuration in application contexts built from every auto-configuration on the class path (as an
 * application's {@code @SpringBootApplication} sees them), over a real embedded PostgreSQL.
 */
class PoolGoAwayAutoConfigurationTest {

    private static final EmbeddedUpstream server = EmbeddedUpstream.shared("blue");

    private final ApplicationContextRunner runner = new ApplicationContextRunner()
            .withUserConfiguration(Application.class);

    @Configuration(proxyBeanMethods = false)
    @EnableAutoConfiguration
    static class Application {
    }

    private static String url() {
        return "jdbc:postgresql://localhost:" + server.port() + "/postgres";
    }

    /** Boot's own data source, configured by properties alone: all it takes. */
    private ApplicationContextRunner withBootDataSource() {
        return runner.withPropertyValues("spring.datasource.url=" + url(), "spring.datasource.username=postgres",
                "spring.datasource.hikari.pool-name=app-pool");
    }

    /** The application's own pool bean for the embedded server, as {@code customize} changes it. */
    private ApplicationContextRunner withOwnPool(Consumer<HikariDataSource> customize) {
        return runner.withBean("dataSource", HikariDataSource.class, () -> {
            HikariDataSource pool = new HikariDataSource();
            pool.setJdbcUrl(url());
            pool.setUsername("postgres");
            customize.accept(pool);
            return pool;
        });
    }

    private static boolean hasWireLayer(HikariDataSource pool) {
        return GoAwaySocketFactory.class.getName().equals(pool.getDataSourceProperties().getProperty("socketFactory"));
    }

    private static void query(HikariDataSource pool) throws SQLException {
        try (Connection c = pool.getConnection()) {
            assertThat(c.isValid(5)).isTrue();
        }
    }

    @Test
    void installsIntoBootsPostgresPoolBeforeItStarts() {
        withBootDataSource().run(context -> {
            HikariDataSource pool = context.getBean(HikariDataSource.class);
            assertThat(pool.isRunning()).isFalse();
            assertThat(hasWireLayer(pool)).isTrue();
            GoAwayEvictor evictor = context.getBean(PoolGoAwayInstaller.class).evictors().get("dataSource");
            assertThat(evictor.settings()).isEqualTo(EvictorSettings.defaults());
            assertThat(evictor.running()).isFalse();
            query(pool);
            assertThat(evictor.running()).isTrue();
            assertThat(evictor.poolName()).isEqualTo("app-pool");
        });
    }

    @Test
    void backsOffWhenDisabled() {
        withBootDataSource().withPropertyValues("poolgoaway.enabled=false").run(context -> {
            assertThat(context).doesNotHaveBean(PoolGoAwayInstaller.class).doesNotHaveBean(EvictorSettings.class)
                    .doesNotHaveBean("poolGoAwayHealthIndicator");
            assertThat(hasWireLayer(context.getBean(HikariDataSource.class))).isFalse();
        });
    }

    @Test
    void backsOffWithoutHikari() {
        runner.withClassLoader(new FilteredClassLoader(HikariDataSource.class))
                .run(context -> assertThat(context).hasNotFailed().doesNotHaveBean(PoolGoAwayInstaller.class));
    }

    @Test
    void backsOffWithoutPgjdbc() {
        withBootDataSource().withClassLoader(new FilteredClassLoader(org.postgresql.Driver.class))
                .run(context -> assertThat(context).hasNotFailed().doesNotHaveBean(PoolGoAwayInstaller.class));
    }

    @Test
    void leavesAPoolOfAnotherDatabaseAlone() {
        withOwnPool(pool -> pool.setJdbcUrl("jdbc:mysql://localhost/app")).run(context -> {
            assertThat(context).hasNotFailed();
            assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).isEmpty();
            assertThat(hasWireLayer(context.getBean(HikariDataSource.class))).isFalse();
        });
    }

    @Test
    void leavesAPoolThatStartedAloneAndTheApplicationStarts() {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(url());
        config.setUsername("postgres");
        runner.withBean("dataSource", HikariDataSource.class, () -> new HikariDataSource(config)).run(context -> {
            assertThat(context).hasNotFailed();
            assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).isEmpty();
            query(context.getBean(HikariDataSource.class));
            // Shown as not installed, with the reason and the fix: a pre-check finds every pool in health.
            assertThat(BootHealth.report(context).pool("dataSource")).containsEntry("installed", false)
                    .hasEntrySatisfying("reason", reason -> assertThat((String) reason)
                            .contains("new HikariDataSource(config)"));
        });
    }

    @Test
    void leavesAPoolWithAMetricRegistryAloneAndTheApplicationStarts() {
        SimpleMeterRegistry own = new SimpleMeterRegistry();
        withOwnPool(pool -> pool.setMetricRegistry(own)).run(context -> {
            assertThat(context).hasNotFailed();
            assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).isEmpty();
            HikariDataSource pool = context.getBean(HikariDataSource.class);
            assertThat(hasWireLayer(pool)).isFalse();
            query(pool);
            assertThat(own.find("hikaricp.connections").gauge()).isNotNull();
        });
    }

    @Test
    void installsIntoTheApplicationsOwnPoolBean() {
        runner.withUserConfiguration(ReportingPoolConfiguration.class)
                .withPropertyValues("app.reporting.datasource.jdbc-url=" + url(),
                        "app.reporting.datasource.username=postgres")
                .run(context -> {
                    HikariDataSource pool = context.getBean(HikariDataSource.class);
                    assertThat(hasWireLayer(pool)).isTrue();
                    assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).containsOnlyKeys(
                            "reportingDataSource");
                    query(pool);
                });
    }

    /** Two pools of the application's own: {@code orders} (pool name {@code orders-pool}) and {@code reporting}. */
    private ApplicationContextRunner withTwoPools() {
        return runner.withBean("orders", HikariDataSource.class, () -> pool("orders-pool"))
                .withBean("reporting", HikariDataSource.class, () -> pool(null));
    }

    private static HikariDataSource pool(String poolName) {
        HikariDataSource pool = new HikariDataSource();
        pool.setJdbcUrl(url());
        pool.setUsername("postgres");
        pool.setPoolName(poolName);
        return pool;
    }

    private static GoAwayEvictor evictor(ApplicationContext context, String bean) {
        return context.getBean(PoolGoAwayInstaller.class).evictors().get(bean);
    }

    @Test
    void aPoolsOwnSettingsOverrideTheApplicationsByPoolNameOrBeanName() {
        withTwoPools().withPropertyValues("poolgoaway.drain-window=2s", "poolgoaway.tick=100ms",
                "poolgoaway.pools.orders-pool.drain-window=5s", "poolgoaway.pools.orders-pool.signals=goaway",
                "poolgoaway.pools.reporting.dns-leave=false", "poolgoaway.pools.reporting.straggler-deadline=30s",
                "poolgoaway.pools.reporting.abort-stragglers=true").run(context -> {
                    EvictorSettings application = context.getBean(EvictorSettings.class);
                    assertThat(evictor(context, "orders").settings()).isEqualTo(application.toBuilder()
                            .drainWindow(Duration.ofSeconds(5)).signals(EnumSet.of(LeaveSignal.GOAWAY)).build());
                    assertThat(evictor(context, "reporting").settings()).isEqualTo(application.toBuilder()
                            .dnsLeave(false).stragglerDeadline(Duration.ofSeconds(30)).abortStragglers(true)
                            .build());
                    // Health shows each pool's effective settings, as properties.
                    HealthReport health = BootHealth.report(context);
                    assertThat(health.pool("orders")).extractingByKey("settings").asInstanceOf(MAP)
                            .containsEntry("tick", "100ms").containsEntry("drain-window", "5000ms")
                            .containsEntry("signals", List.of("goaway")).containsEntry("dns-leave", true)
                            .doesNotContainKey("straggler-deadline");
                    assertThat(health.pool("reporting")).extractingByKey("settings").asInstanceOf(MAP)
                            .containsEntry("drain-window", "2000ms").containsEntry("dns-leave", false)
                            .containsEntry("straggler-deadline", "30000ms").containsEntry("abort-stragglers", true)
                            .containsEntry("signals", List.of("goaway", "disconnect-requested"));
                });
    }

    @Test
    void aPoolsOwnSettingsApplyOverTheApplicationsOwnSettingsBean() {
        EvictorSettings own = EvictorSettings.builder().tick(Duration.ofSeconds(1)).build();
        withTwoPools().withBean(EvictorSettings.class, () -> own)
                .withPropertyValues("poolgoaway.pools.reporting.drain-window=5s").run(context -> {
                    assertThat(evictor(context, "orders").settings()).isSameAs(own);
                    assertThat(evictor(context, "reporting").settings())
                            .isEqualTo(own.toBuilder().drainWindow(Duration.ofSeconds(5)).build());
                });
    }

    @Test
    void aPoolTurnedOffIsLeftAloneAndShownSo() {
        withTwoPools().withPropertyValues("poolgoaway.pools.reporting.enabled=false").run(context -> {
            assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).containsOnlyKeys("orders");
            HikariDataSource reporting = context.getBean("reporting", HikariDataSource.class);
            assertThat(hasWireLayer(reporting)).isFalse();
            query(reporting);
            assertThat(BootHealth.report(context).pool("reporting")).containsEntry("installed", false)
                    .containsEntry("reason", "turned off by poolgoaway.pools.reporting.enabled=false");
        });
    }

    @Test
    void aPoolsKeyMatchesWhateverItsCaseAsEnvironmentVariablesGiveIt() {
        // POOLGOAWAY_POOLS_REPORTINGDATASOURCE_ENABLED=false binds as the lower-case key below.
        runner.withBean("reportingDataSource", HikariDataSource.class, () -> pool(null))
                .withPropertyValues("poolgoaway.pools.reportingdatasource.enabled=false").run(context -> {
                    assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).isEmpty();
                    assertThat(BootHealth.report(context).pool("reportingDataSource")).containsEntry("reason",
                            "turned off by poolgoaway.pools.reportingdatasource.enabled=false");
                });
    }

    @Test
    void aPoolNameWithOtherCharactersIsAKeyInBrackets() {
        runner.withBean("orders", HikariDataSource.class, () -> pool("orders.pool_1"))
                .withPropertyValues("poolgoaway.pools.[orders.pool_1].enabled=false").run(context -> {
                    assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).isEmpty();
                    assertThat(BootHealth.report(context).pool("orders")).containsEntry("reason",
                            "turned off by poolgoaway.pools.[orders.pool_1].enabled=false");
                });
    }

    @Test
    void offForTheApplicationOnForOnePool() {
        withTwoPools().withPropertyValues("poolgoaway.enabled=false", "poolgoaway.pools.orders-pool.enabled=true")
                .run(context -> {
                    assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).containsOnlyKeys("orders");
                    assertThat(evictor(context, "orders").settings().enabled()).isTrue();
                    assertThat(hasWireLayer(context.getBean("orders", HikariDataSource.class))).isTrue();
                    assertThat(hasWireLayer(context.getBean("reporting", HikariDataSource.class))).isFalse();
                    assertThat(BootHealth.report(context).pool("reporting")).containsEntry("installed", false)
                            .containsEntry("reason", "turned off by poolgoaway.enabled=false");
                });
        // Off for the application and for every pool that says anything: nothing at all, as without entries.
        withTwoPools().withPropertyValues("poolgoaway.enabled=false", "poolgoaway.pools.orders-pool.enabled=false",
                "poolgoaway.pools.reporting.tick=1s").run(context -> assertThat(context)
                        .doesNotHaveBean(PoolGoAwayInstaller.class).doesNotHaveBean("poolGoAwayHealthIndicator"));
    }

    @Test
    void aBadValueOfAPoolStopsTheApplicationNamingThePoolsProperty() {
        withTwoPools().withPropertyValues("poolgoaway.pools.reporting.tick=-1s").run(context -> assertThat(context)
                .getFailure().rootCause().isInstanceOf(InvalidConfigurationPropertyValueException.class)
                .hasMessageContaining("poolgoaway.pools.reporting.tick").hasMessageContaining("-1"));
        withTwoPools().withPropertyValues("poolgoaway.pools.orders-pool.abort-stragglers=true").run(context ->
                assertThat(context).getFailure().rootCause()
                        .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                        .hasMessageContaining("poolgoaway.pools.orders-pool.abort-stragglers")
                        .hasMessageContaining("poolgoaway.pools.orders-pool.straggler-deadline"));
    }

    @Test
    void anEntryThatNamesNoPoolIsLogged() {
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream err = System.err;
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            withTwoPools().withPropertyValues("poolgoaway.pools.reportng.enabled=false",
                    "poolgoaway.pools.orders-pool.tick=1s").run(context -> assertThat(
                            context.getBean(PoolGoAwayInstaller.class).evictors()).containsOnlyKeys("orders",
                            "reporting"));
        } finally {
            System.setErr(err);
        }
        List<String> warned = captured.toString(StandardCharsets.UTF_8).lines()
                .filter(l -> l.contains("WARN") && l.contains("names no HikariDataSource")).toList();
        assertThat(warned).singleElement().asString().contains("poolgoaway.pools.reportng.* names no");
    }

    /** The pairs of an example properties file the docs show. */
    private static String[] example(String resource) throws IOException {
        Properties example = new Properties();
        try (InputStream in = PoolGoAwayAutoConfigurationTest.class.getResourceAsStream(resource)) {
            example.load(in);
        }
        return example.stringPropertyNames().stream().map(k -> k + "=" + example.getProperty(k))
                .toArray(String[]::new);
    }

    @Test
    void thePerPoolExampleDoesWhatItSays() throws IOException {
        runner.withBean("orders", HikariDataSource.class, () -> pool("orders-pool"))
                .withBean("reportingDataSource", HikariDataSource.class, () -> pool(null))
                .withPropertyValues(example("/poolgoaway-pools-example.properties")).run(context -> {
                    assertThat(context.getBean(PoolGoAwayInstaller.class).evictors()).containsOnlyKeys("orders");
                    assertThat(evictor(context, "orders").settings()).isEqualTo(EvictorSettings.builder()
                            .drainWindow(Duration.ofSeconds(10)).build());
                    assertThat(context.getBean(EvictorSettings.class).drainWindow()).isEqualTo(Duration.ofSeconds(2));
                    assertThat(hasWireLayer(context.getBean("reportingDataSource", HikariDataSource.class))).isFalse();
                });
    }

    @Test
    void bindsEveryProperty() throws IOException {
        withBootDataSource().withPropertyValues(example("/poolgoaway-example.properties")).run(context -> {
            EvictorSettings expected = EvictorSettings.builder().tick(Duration.ofMillis(100))
                    .drainWindow(Duration.ofSeconds(2)).maxReplacementsInFlight(4).maxExtraConnections(2)
                    .stragglerDeadline(Duration.ofSeconds(30)).abortStragglers(true)
                    .signals(EnumSet.of(LeaveSignal.GOAWAY)).dnsLeave(false).dnsLeaveInterval(Duration.ofSeconds(5))
                    .dnsLeaveWindow(Duration.ofSeconds(20)).build();
            assertThat(context.getBean(EvictorSettings.class)).isEqualTo(expected);
            assertThat(context.getBean(PoolGoAwayInstaller.class).evictors().get("dataSource").settings())
                    .isSameAs(context.getBean(EvictorSettings.class));
        });
    }

    /**
     * The common wiring of Micrometer into an application's pool: another bean sets the tracker in its init
     * callback ({@code @PostConstruct} or, as here, {@code afterPropertiesSet}), after pool-goaway installed itself.
     */
    static class MetricsWiring implements org.springframework.beans.factory.InitializingBean {
        private final HikariDataSource pool;
        final SimpleMeterRegistry own = new SimpleMeterRegistry();

        MetricsWiring(HikariDataSource pool) {
            this.pool = pool;
        }

        @Override
        public void afterPropertiesSet() {
            pool.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(own));
        }
    }

    @Test
    void aTrackerSetByAnotherBeanAfterInstallKeepsTheEvictor() {
        withBootDataSource().withBean(MetricsWiring.class).run(context -> {
            HikariDataSource pool = context.getBean(HikariDataSource.class);
            query(pool);
            GoAwayEvictor evictor = context.getBean(PoolGoAwayInstaller.class).evictors().get("dataSource");
            assertThat(evictor.running()).isTrue();
            assertThat(evictor.problem()).isEmpty();
            assertThat(context.getBean(MetricsWiring.class).own.find("hikaricp.connections").tag("pool", "app-pool")
                    .gauge()).isNotNull();
        });
    }

    @Test
    void aPoolStartedWithoutTheEvictorShowsItsProblemInTheHealthDetails() {
        withBootDataSource().run(context -> {
            HikariDataSource pool = context.getBean(HikariDataSource.class);
            // After the installer's last check: a tracker set now, and the pool started at once.
            pool.setMetricsTrackerFactory(null);
            pool.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(new SimpleMeterRegistry()));
            query(pool);
            assertThat(BootHealth.report(context).pool("dataSource")).containsEntry("running", false)
                    .hasEntrySatisfying("problem", problem -> assertThat((String) problem)
                            .startsWith("app-pool - ").contains("metricsTrackerFactory was replaced"));
        });
    }

    @Test
    void theApplicationsOwnSettingsWin() {
        EvictorSettings own = EvictorSettings.builder().tick(Duration.ofSeconds(1)).build();
        withBootDataSource().withBean(EvictorSettings.class, () -> own).run(context -> assertThat(
                context.getBean(PoolGoAwayInstaller.class).evictors().get("dataSource").settings()).isSameAs(own));
    }

    /** A post-processor that wraps data sources, as proxies for tracing or logging do. */
    static class Wrapping implements BeanPostProcessor {
        @Override
        public Object postProcessAfterInitialization(Object bean, String beanName) {
            return bean instanceof DataSource ds ? new DelegatingDataSource(ds) : bean;
        }
    }

    @Test
    void installsBeneathAWrapper() {
        withBootDataSource().withBean(Wrapping.class).run(context -> {
            assertThat(context.getBean(DataSource.class)).isInstanceOf(DelegatingDataSource.class);
            HikariDataSource pool = context.getBean(DataSource.class).unwrap(HikariDataSource.class);
            assertThat(hasWireLayer(pool)).isTrue();
            query(pool);
            assertThat(context.getBean(PoolGoAwayInstaller.class).evictors().get("dataSource").running()).isTrue();
        });
    }

    @Test
    void theDefaultsAreTheLibrarysDefaults() {
        assertThat(new PoolGoAwayProperties().toSettings()).hasToString(EvictorSettings.defaults().toString());
    }

    @Test
    void aBadValueStopsTheApplicationNamingTheProperty() {
        runner.withPropertyValues("poolgoaway.tick=-1s").run(context -> assertThat(context).getFailure()
                .rootCause().isInstanceOf(InvalidConfigurationPropertyValueException.class)
                .hasMessageContaining("poolgoaway.tick").hasMessageContaining("-1"));
        runner.withPropertyValues("poolgoaway.abort-stragglers=true").run(context -> assertThat(context)
                .getFailure().rootCause().isInstanceOf(InvalidConfigurationPropertyValueException.class)
                .hasMessageContaining("poolgoaway.abort-stragglers"));
        runner.withPropertyValues("poolgoaway.signals=").run(context -> assertThat(context).getFailure()
                .rootCause().isInstanceOf(InvalidConfigurationPropertyValueException.class)
                .hasMessageContaining("poolgoaway.signals"));
        runner.withPropertyValues("poolgoaway.dns-leave-interval=1ms").run(context -> assertThat(context)
                .getFailure().rootCause().isInstanceOf(InvalidConfigurationPropertyValueException.class)
                .hasMessageContaining("poolgoaway.dns-leave-interval"));
        runner.withPropertyValues("poolgoaway.max-replacements-in-flight=-2").run(context -> assertThat(context)
                .getFailure().rootCause().isInstanceOf(InvalidConfigurationPropertyValueException.class)
                .hasMessageContaining("poolgoaway.max-replacements-in-flight"));
    }

    @Test
    void contributesAHealthIndicatorThatIsUpWithEachPoolsState() {
        withBootDataSource().run(context -> {
            query(context.getBean(HikariDataSource.class));
            HealthReport health = BootHealth.report(context);
            assertThat(health.status()).isEqualTo("UP");
            assertThat(health.details()).containsOnlyKeys("dataSource");
            assertThat(health.pool("dataSource")).containsEntry("installed", true).containsEntry("pool", "app-pool")
                    .containsEntry("running", true)
                    .containsEntry("draining", false).containsEntry("flaggedConnections", 0)
                    .containsEntry("publicApiFallback", false).containsEntry("stalled", false)
                    .containsEntry("serversRefusingGoAway", PgGoAway.serversRefusingGoAway())
                    .containsEntry("replacementFailures", 0).doesNotContainKey("lastReplacementFailure")
                    .doesNotContainKey("lastDrain")
                    // The DNS leave-signal is on by default; localhost resolves.
                    .containsEntry("dnsLeave", true).containsEntry("dnsLookupFailures", 0L);
        });
    }

    @Test
    void noHealthIndicatorWithoutTheHealthApiOrWhenItIsDisabled() {
        withBootDataSource().withClassLoader(new FilteredClassLoader(BootHealth.API)).run(context -> assertThat(
                context).hasNotFailed().hasSingleBean(PoolGoAwayInstaller.class)
                .doesNotHaveBean("poolGoAwayHealthIndicator"));
        withBootDataSource().withPropertyValues("management.health.poolgoaway.enabled=false").run(context ->
                assertThat(context).hasSingleBean(PoolGoAwayInstaller.class)
                        .doesNotHaveBean("poolGoAwayHealthIndicator"));
    }

    @Test
    void hikarisMetersAndPoolGoAwaysShareTheApplicationsRegistryAndPoolTag() {
        withBootDataSource().run(context -> {
            query(context.getBean(HikariDataSource.class));
            MeterRegistry meters = context.getBean(MeterRegistry.class);
            assertThat(meters.find("hikaricp.connections").tag("pool", "app-pool").gauge()).isNotNull();
            assertThat(meters.find(GoAwayMetrics.FLAGGED).tag("pool", "app-pool").gauge()).isNotNull();
            assertThat(meters.find(GoAwayMetrics.DRAIN_EPISODES).tag("pool", "app-pool").counter()).isNotNull();
            // The DNS leave-signal is on by default: the pool's host (localhost) is looked up, and counted.
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(meters.find(GoAwayMetrics.DNS_LOOKUPS)
                    .tag("pool", "app-pool").tag("result", "ok").functionCounter().count()).isPositive());
            assertThat(meters.find(GoAwayMetrics.DNS_LOOKUPS).tag("pool", "app-pool").tag("result", "failed")
                    .functionCounter().count()).isZero();
        });
    }

    @Test
    void worksWithoutMicrometer() {
        withBootDataSource().withClassLoader(new FilteredClassLoader("io.micrometer")).run(context -> {
            assertThat(context).hasNotFailed().doesNotHaveBean(PoolGoAwayMeters.class);
            HikariDataSource pool = context.getBean(HikariDataSource.class);
            query(pool);
            assertThat(context.getBean(PoolGoAwayInstaller.class).evictors().get("dataSource").running()).isTrue();
        });
    }

    @Test
    void keepsTheApplicationsOwnMetricsTracker() {
        SimpleMeterRegistry own = new SimpleMeterRegistry();
        withOwnPool(pool -> {
            pool.setPoolName("own-tracker");
            pool.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(own));
        }).run(context -> {
            HikariDataSource pool = context.getBean(HikariDataSource.class);
            assertThat(hasWireLayer(pool)).isTrue();
            query(pool);
            assertThat(own.find("hikaricp.connections").tag("pool", "own-tracker").gauge()).isNotNull();
            MeterRegistry application = context.getBean(MeterRegistry.class);
            assertThat(application.find("hikaricp.connections").gauge()).isNull();
            assertThat(application.find(GoAwayMetrics.FLAGGED).tag("pool", "own-tracker").gauge()).isNotNull();
        });
    }
}
