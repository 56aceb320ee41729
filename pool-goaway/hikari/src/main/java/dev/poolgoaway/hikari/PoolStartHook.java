package dev.poolgoaway.hikari;

import java.lang.reflect.Field;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import com.zaxxer.hikari.metrics.IMetricsTracker;
import com.zaxxer.hikari.metrics.MetricsTrackerFactory;
import com.zaxxer.hikari.metrics.PoolStats;
import com.zaxxer.hikari.pool.HikariPool;

/**
 * The moment a pool starts, seen from inside: HikariCP asks its {@link MetricsTrackerFactory} for a tracker while
 * constructing the pool, with a {@link PoolStats} that belongs to the pool. This factory attaches the evictor then
 * and hands the request on to the factory that was configured before (Micrometer's, say), so Hikari's own metrics
 * are unchanged.
 */
final class PoolStartHook implements MetricsTrackerFactory {

    private static final Logger log = LoggerFactory.getLogger(PoolStartHook.class);

    private final MetricsTrackerFactory delegate;
    private final GoAwayEvictor evictor;

    PoolStartHook(MetricsTrackerFactory delegate, GoAwayEvictor evictor) {
        this.delegate = delegate;
        this.evictor = evictor;
    }

    @Override
    public IMetricsTracker create(String poolName, PoolStats poolStats) {
        IMetricsTracker tracker = delegate != null ? delegate.create(poolName, poolStats) : new IMetricsTracker() {
        };
        try {
            HikariPool pool = poolOf(poolStats);
            evictor.attach(internals(pool, poolName), pool, poolStats, poolName);
        } catch (RuntimeException e) {
            // pool-goaway must never be why a pool does not start: without the evictor it is plain HikariCP.
            log.warn("{} - pool-goaway could not attach its evictor; the pool runs without it: {}", poolName,
                    e.toString(), e);
        }
        return tracker;
    }

    /** Hikari's internals, or null (with one WARN) for the public-API fallback. */
    private HikariAccess internals(HikariPool pool, String poolName) {
        if ("false".equalsIgnoreCase(System.getProperty(PoolGoAway.INTERNALS_PROPERTY))) {
            log.warn("{} - {}=false: pool-goaway runs on HikariCP's public API alone (a drain soft-evicts the "
                    + "whole pool)", poolName, PoolGoAway.INTERNALS_PROPERTY);
            return null;
        }
        try {
            return HikariAccess.of(pool);
        } catch (IllegalStateException e) {
            log.warn("{} - {}; pool-goaway falls back to HikariCP's public API (a drain soft-evicts the whole "
                    + "pool)", poolName, e.getMessage());
            return null;
        }
    }

    /** The pool's PoolStats is an inner class of the pool: its enclosing instance is the pool. */
    private static HikariPool poolOf(PoolStats stats) {
        for (Class<?> c = stats.getClass(); c != null && c != PoolStats.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (HikariPool.class.isAssignableFrom(f.getType())) {
                    try {
                        f.setAccessible(true);
                        return (HikariPool) f.get(stats);
                    } catch (ReflectiveOperationException | RuntimeException e) {
                        throw new IllegalStateException("pool-goaway cannot find the pool of HikariCP "
                                + HikariAccess.hikariVersion() + ": " + e, e);
                    }
                }
            }
        }
        throw new IllegalStateException("pool-goaway cannot find the pool of HikariCP " + HikariAccess.hikariVersion()
                + " from its PoolStats (" + stats.getClass().getName() + ")");
    }
}
