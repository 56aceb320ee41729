package dev.poolgoaway.spring;

import org.springframework.beans.factory.ObjectProvider;

import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.metrics.micrometer.MicrometerMetricsTrackerFactory;

import dev.poolgoaway.hikari.GoAwayEvictor;
import dev.poolgoaway.hikari.GoAwayMetrics;
import io.micrometer.core.instrument.MeterRegistry;

/**
 * Puts a pool's meters into the application's {@link MeterRegistry}: pool-goaway's, and HikariCP's own. Only
 * referenced where Micrometer is on the class path.
 */
final class PoolGoAwayMeters {

    private final ObjectProvider<MeterRegistry> registry;

    PoolGoAwayMeters(ObjectProvider<MeterRegistry> registry) {
        this.registry = registry;
    }

    /**
     * Does now what Spring Boot's data-source metrics would do later: give a pool without a tracker Hikari's
     * Micrometer tracker. pool-goaway attaches through a tracker of its own that hands on to the one set before;
     * Boot, seeing a tracker, would leave the pool without {@code hikaricp.connections.*} meters.
     */
    void beforeInstall(HikariDataSource pool) {
        MeterRegistry meters = registry.getIfUnique();
        if (meters != null && pool.getMetricRegistry() == null && pool.getMetricsTrackerFactory() == null) {
            pool.setMetricsTrackerFactory(new MicrometerMetricsTrackerFactory(meters));
        }
    }

    void bind(GoAwayEvictor evictor) {
        MeterRegistry meters = registry.getIfUnique();
        if (meters != null) {
            GoAwayMetrics.bind(evictor, meters);
        }
    }
}
