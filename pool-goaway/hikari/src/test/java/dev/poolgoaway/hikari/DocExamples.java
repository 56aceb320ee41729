package dev.poolgoaway.hikari;

import java.time.Duration;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import io.micrometer.core.instrument.MeterRegistry;

/**
 * The HikariCP code README.md and docs/ show, compiled with the tests (DocSnippetsTest keeps the docs equal to it).
 * The running versions of the same calls are in DrainTest and InstallTest.
 */
final class DocExamples {

    private DocExamples() {
    }

    static HikariDataSource install(MeterRegistry meterRegistry) {
        // tag::install[]
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl("jdbc:postgresql://db.internal/app");
        GoAwayEvictor evictor = PoolGoAway.install(config);   // before the pool starts
        GoAwayMetrics.bind(evictor, meterRegistry);           // optional
        HikariDataSource ds = new HikariDataSource(config);
        // end::install[]
        return ds;
    }

    static GoAwayEvictor defaults(HikariConfig config) {
        // tag::defaults[]
        GoAwayEvictor evictor = PoolGoAway.install(config);
        // end::defaults[]
        return evictor;
    }

    static GoAwayEvictor settings(HikariConfig config) {
        // tag::settings[]
        GoAwayEvictor evictor = PoolGoAway.install(config, EvictorSettings.builder()
                .tick(Duration.ofMillis(250))
                .drainWindow(Duration.ofMillis(100))
                .build());
        // end::settings[]
        return evictor;
    }
}
