package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;

import org.junit.jupiter.api.Test;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.wire.ConnectionSignals;
import dev.poolgoaway.wire.GoAwaySocketFactory;
import dev.poolgoaway.wire.GoAwaySslSocketFactory;
import dev.poolgoaway.wire.PgGoAway;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.postgresql.ds.PGSimpleDataSource;

/** Installing into every kind of pgjdbc pool configuration, refusing what cannot work, and doing nothing when no
 * server ever asks. */
class InstallTest {

    private static final EmbeddedUpstream pg = EmbeddedUpstream.shared("blue");

    private static ConnectionSignals signals(HikariDataSource ds) throws SQLException {
        try (Connection c = ds.getConnection()) {
            return PgGoAway.signals(c).orElseThrow();
        }
    }

    @Test
    void aServerThatNeverSendsGoAwayChangesNothing() throws Exception {
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(pg).start()) {
            HikariConfig config = new HikariConfig();
            config.setJdbcUrl(proxy.jdbcUrl("postgres"));
            config.setUsername(pg.user());
            config.setMaximumPoolSize(4);
            config.setMinimumIdle(4);
            GoAwayEvictor evictor = PoolGoAway.install(config, EvictorSettings.builder().tick(Duration.ofMillis(20))
                    .build());
            SimpleMeterRegistry meters = new SimpleMeterRegistry();
            GoAwayMetrics.bind(evictor, meters);
            try (HikariDataSource ds = new HikariDataSource(config)) {
                await().until(() -> ds.getHikariPoolMXBean().getTotalConnections() == 4);
                await().until(evictor::running);
                long sent = bytesToServer(proxy);
                // Many evictor runs (every 20 ms) over the idle connections: each one polls them all.
                await().pollDelay(Duration.ofMillis(500)).until(() -> true);
                assertEquals(sent, bytesToServer(proxy), "the evictor sends the server nothing: no query, no probe");
                assertFalse(evictor.draining());
                assertTrue(evictor.lastDrain().isEmpty());
                assertEquals(0.0, meters.find(GoAwayMetrics.SIGNALS).counters().stream()
                        .mapToDouble(c -> c.count()).sum());
                // Registered at 0 for every known tag once the pool started, before any signal: a rate panel sees
                // the first drain.
                for (SignalKind kind : SignalKind.values()) {
                    assertEquals(0.0, meters.get(GoAwayMetrics.SIGNALS).tag("kind", kind.tag()).counter().count());
                }
                for (EvictionState state : EvictionState.values()) {
                    assertEquals(0.0, meters.get(GoAwayMetrics.EVICTIONS).tag("state", state.tag()).counter()
                            .count());
                }
                for (String result : new String[] {"made", "failed"}) {
                    assertEquals(0.0, meters.get(GoAwayMetrics.REPLACEMENTS).tag("result", result).counter()
                            .count());
                }
                assertEquals(4, ds.getHikariPoolMXBean().getTotalConnections());
            }
        }
    }

    @Test
    void installAfterNewHikariDataSourceStartedThePoolIsReportedWithTheFix() {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl("jdbc:postgresql://" + pg.host() + ":" + pg.port() + "/postgres");
        config.setUsername(pg.user());
        config.setMaximumPoolSize(1);
        try (HikariDataSource ds = new HikariDataSource(config)) {
            GoAwayEvictor late = PoolGoAway.install(config);
            String problem = late.problem().orElseThrow(() -> new AssertionError("no problem() for a late install"));
            assertTrue(problem.contains(config.getPoolName()), problem);
            assertTrue(problem.contains("before new HikariDataSource(config)"), problem);
            assertFalse(late.running());
        }
        // The same configuration, installed before its pool starts: no problem, drained.
        HikariConfig fresh = new HikariConfig();
        fresh.setJdbcUrl("jdbc:postgresql://" + pg.host() + ":" + pg.port() + "/postgres");
        fresh.setUsername(pg.user());
        fresh.setMaximumPoolSize(1);
        GoAwayEvictor early = PoolGoAway.install(fresh);
        try (HikariDataSource ds = new HikariDataSource(fresh)) {
            await().until(early::running);
            assertTrue(early.problem().isEmpty(), () -> early.problem().orElse(""));
        }
    }

    private static long bytesToServer(GoAwayProxy proxy) {
        return proxy.openConnections().stream().mapToLong(c -> c.bytesToServer()).sum();
    }

    @Test
    void urlParametersThatWouldBypassTheLayerAreMovedIntoProperties() {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl("jdbc:postgresql://h/db?ApplicationName=x&sslfactory=org.example.F&protocolVersion=3.0"
                + "&ssl=true");
        PoolGoAway.install(config);
        assertEquals("jdbc:postgresql://h/db?ApplicationName=x&protocolVersion=3.0&ssl=true", config.getJdbcUrl(),
                "protocolVersion is pgjdbc's business: it stays");
        assertEquals("org.example.F", config.getDataSourceProperties().getProperty(PgGoAway.DELEGATE_SSL_FACTORY));
        assertEquals(GoAwaySslSocketFactory.class.getName(),
                config.getDataSourceProperties().getProperty("sslfactory"));
    }

    @Test
    void aPgjdbcDataSourceKeepsItsProtocolVersionAndItsGetterWorks() {
        PGSimpleDataSource plain = new PGSimpleDataSource();
        HikariConfig config = new HikariConfig();
        config.setDataSource(plain);
        PoolGoAway.install(config);
        assertEquals(0, plain.getProtocolVersion(), "unset, as without pool-goaway (pgjdbc's default 3.0)");
        assertEquals(GoAwaySocketFactory.class.getName(), plain.getSocketFactory());
        PGSimpleDataSource pinned = new PGSimpleDataSource();
        pinned.setProtocolVersion(3);
        HikariConfig second = new HikariConfig();
        second.setDataSource(pinned);
        PoolGoAway.install(second);
        assertEquals(3, pinned.getProtocolVersion());
    }

    @Test
    void aDataSourceClassNamePoolGetsTheLayerAndGoAway() throws Exception {
        try (GoAwayProxy proxy = GoAwayProxy.builder().upstream(pg).start()) {
            HikariConfig config = new HikariConfig();
            config.setDataSourceClassName("org.postgresql.ds.PGSimpleDataSource");
            config.addDataSourceProperty("serverName", "localhost");
            config.addDataSourceProperty("portNumber", String.valueOf(proxy.port()));
            config.addDataSourceProperty("databaseName", "postgres");
            config.addDataSourceProperty("user", pg.user());
            config.setMaximumPoolSize(2);
            PoolGoAway.install(config);
            try (HikariDataSource ds = new HikariDataSource(config)) {
                ConnectionSignals signals = signals(ds);
                assertTrue(signals.goAwayCapable(), "pgjdbc's 3.0 raised to 3.3, granted by the proxy");
            }
        }
    }

    @Test
    @SuppressWarnings("try")   // closing the pool inside the try is the point: its evictor must stop with it
    void aHikariDataSourceThatStartsLazilyGetsItsEvictorWhenItStarts() throws Exception {
        try (HikariDataSource ds = new HikariDataSource()) {
            ds.setJdbcUrl(pg.jdbcUrl());
            ds.setUsername(pg.user());
            ds.setMaximumPoolSize(2);
            ds.setPoolName("lazy");
            GoAwayEvictor evictor = PoolGoAway.install(ds);
            assertFalse(evictor.running(), "no pool yet, no thread");
            try (var c = ds.getConnection()) {
                assertTrue(PgGoAway.signals(c).isPresent(), "made through the wire layer");
            }
            await().until(evictor::running);
            assertEquals("lazy", evictor.poolName());
            ds.close();
            await().until(() -> !evictor.running());
        }
    }

    @Test
    void refusesWhatCannotWork() {
        HikariConfig mysql = new HikariConfig();
        mysql.setJdbcUrl("jdbc:mysql://h/db");
        assertThrows(IllegalArgumentException.class, () -> PoolGoAway.install(mysql));

        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(pg.jdbcUrl());
        config.setUsername(pg.user());
        config.setMaximumPoolSize(1);
        PoolGoAway.install(config);
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> PoolGoAway.install(config));
        assertTrue(twice.getMessage().contains("already installed"));
        try (HikariDataSource running = new HikariDataSource(config)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> PoolGoAway.install(running));
            assertTrue(e.getMessage().contains("already running"), e.getMessage());
        }

        HikariConfig custom = new HikariConfig();
        custom.setDataSourceClassName("org.postgresql.ds.PGSimpleDataSource");
        custom.addDataSourceProperty("sslfactory", "org.postgresql.ssl.NonValidatingFactory");
        assertThrows(IllegalArgumentException.class, () -> PoolGoAway.install(custom));

        HikariConfig disabled = new HikariConfig();
        disabled.setJdbcUrl(pg.jdbcUrl());
        GoAwayEvictor inert = PoolGoAway.install(disabled, EvictorSettings.builder().enabled(false).build());
        assertFalse(inert.running());
        assertTrue(disabled.getDataSourceProperties().isEmpty(), "disabled installs nothing");
    }

    @Test
    void userFactoriesOnAJdbcUrlPoolAreKeptAndWrapped() throws Exception {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(pg.jdbcUrl() + "?sslfactory=org.postgresql.ssl.NonValidatingFactory&sslmode=require");
        config.setUsername(pg.user());
        config.setMaximumPoolSize(1);
        PoolGoAway.install(config);
        assertEquals(GoAwaySocketFactory.class.getName(), config.getDataSourceProperties().get("socketFactory"));
        assertEquals("org.postgresql.ssl.NonValidatingFactory",
                config.getDataSourceProperties().get(PgGoAway.DELEGATE_SSL_FACTORY));
        assertFalse(config.getJdbcUrl().contains("sslfactory"));
    }

    @Test
    void settingsAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> EvictorSettings.builder().tick(Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> EvictorSettings.builder().drainWindow(Duration.ofDays(1)));
        assertThrows(IllegalArgumentException.class, () -> EvictorSettings.builder().maxReplacementsInFlight(-1));
        assertThrows(IllegalStateException.class, () -> EvictorSettings.builder().abortStragglers(true).build());
        assertThrows(IllegalArgumentException.class, () -> EvictorSettings.builder().signals(java.util.Set.of()));
        assertEquals(java.util.OptionalInt.empty(), EvictorSettings.defaults().maxReplacementsInFlight());
        assertEquals(java.util.OptionalInt.of(4),
                EvictorSettings.builder().maxReplacementsInFlight(4).build().maxReplacementsInFlight());
    }
}
