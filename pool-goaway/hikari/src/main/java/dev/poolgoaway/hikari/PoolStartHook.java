package dev.poolgoaway.hikari;

import java.lang.reflect.InaccessibleObjectException;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.metrics.IMetricsTracker;
import com.zaxxer.hikari.metrics.MetricsTrackerFactory;
import com.zaxxer.hikari.metrics.PoolStats;
import com.zaxxer.hikari.pool.HikariPool;

/**
 * The moment a pool starts, seen from inside: HikariCP asks its {@link MetricsTrackerFactory} for a tracker while
 * constructing the pool, with a {@link PoolStats} that belongs to the pool. This factory attaches the evictor then
 * and hands the request on to the factory that was configured before (Micrometer's, say), so Hikari's own metrics
 * are unchanged. Then it puts that factory back into the pool's configuration: the running pool looks as if
 * pool-goaway had never been there, so a tracker factory set on it later is taken as plain HikariCP takes it. The
 * tracker it returns forwards everything; HikariCP's reports of a connection made and of one returned also wake
 * the evictor while it drains, and its {@code close()} (HikariCP's last act of a shutdown) stops the evictor.
 */
final class PoolStartHook implements MetricsTrackerFactory {

    private static final Logger log = LoggerFactory.getLogger(PoolStartHook.class);

    private final MetricsTrackerFactory delegate;
    private final GoAwayEvictor evictor;
    private final String group;

    PoolStartHook(MetricsTrackerFactory delegate, GoAwayEvictor evictor, String group) {
        this.delegate = delegate;
        this.evictor = evictor;
        this.group = group;
    }

    /** @return the same hook in front of another factory: one set after pool-goaway's */
    PoolStartHook inFrontOf(MetricsTrackerFactory replacement) {
        return new PoolStartHook(replacement, evictor, group);
    }

    @Override
    public IMetricsTracker create(String poolName, PoolStats poolStats) {
        IMetricsTracker tracker = delegate != null ? delegate.create(poolName, poolStats) : new IMetricsTracker() {
        };
        boolean attached = false;
        try {
            HikariPool pool = poolOf(poolStats, poolName);
            if (pool != null) {
                attached = evictor.attach(view(pool, poolName), poolName, pool.config);
                restoreFactory(pool.config);
            }
        } catch (RuntimeException | LinkageError e) {
            // pool-goaway must never be why a pool does not start: without the evictor it is plain HikariCP.
            log.error("{} - pool-goaway could not attach its evictor; the pool runs without it: {}", poolName,
                    e.toString(), e);
            evictor.fail(poolName, "attaching failed (" + e + ")", "report it with the HikariCP version ("
                    + HikariAccess.hikariVersion() + ")");
        }
        // The evictor stops with the pool it drains, not with a second pool of the same configuration.
        return attached ? new StopSignal(tracker, evictor) : tracker;
    }

    /** Only while the pool is being constructed, so no tracker factory set meanwhile can be lost. */
    private void restoreFactory(HikariConfig poolConfig) {
        if (poolConfig.getMetricsTrackerFactory() == this) {
            poolConfig.setMetricsTrackerFactory(delegate);
        }
    }

    /** Hikari's internals, or (with one WARN) the public-API fallback. */
    private PoolView view(HikariPool pool, String poolName) {
        if ("false".equalsIgnoreCase(System.getProperty(PoolGoAway.INTERNALS_PROPERTY))) {
            log.warn("{} - {}=false: pool-goaway runs on HikariCP's public API alone (it cannot drain the pool "
                    + "one connection at a time, and says so at each drain)", poolName,
                    PoolGoAway.INTERNALS_PROPERTY);
            return publicApi(pool, poolName);
        }
        try {
            return HikariAccess.of(pool);
        } catch (IllegalStateException e) {
            log.warn("{} - {}; pool-goaway falls back to HikariCP's public API (it cannot drain the pool one "
                    + "connection at a time, and says so at each drain)", poolName, e.getMessage());
            return publicApi(pool, poolName);
        }
    }

    private PoolView publicApi(HikariPool pool, String poolName) {
        if (group == null) {
            evictor.fail(poolName, "a pgjdbc data-source pool cannot list its connections without HikariCP's "
                    + "internals", "use a jdbcUrl pool, whose connections the wire layer lists for the fallback");
        }
        return new PublicApiView(pool, group);
    }

    /**
     * The pool's PoolStats is an inner class of the pool: its enclosing instance is the pool. On the module path
     * HikariCP does not open its {@code com.zaxxer.hikari.pool} package, and nothing else leads to the pool.
     *
     * @return the pool, or null (with one ERROR naming the fix) where it cannot be reached
     */
    private HikariPool poolOf(PoolStats stats, String poolName) {
        try {
            return HikariAccess.poolOf(stats);
        } catch (InaccessibleObjectException e) {
            evictor.fail(poolName, "HikariCP's module does not open com.zaxxer.hikari.pool to pool-goaway ("
                    + e.getMessage() + ")", "start the JVM with --add-opens com.zaxxer.hikari/com.zaxxer.hikari.pool="
                    + ownModule() + " (see docs/limitations.md)");
            return null;
        }
    }

    private static String ownModule() {
        Module m = PoolStartHook.class.getModule();
        return m.isNamed() ? m.getName() : "ALL-UNNAMED";
    }

    /** HikariCP's tracker for the pool, unchanged, except that the pool's shutdown stops the evictor too. */
    private record StopSignal(IMetricsTracker tracker, GoAwayEvictor evictor) implements IMetricsTracker {

        @Override
        public void recordConnectionCreatedMillis(long connectionCreatedMillis) {
            tracker.recordConnectionCreatedMillis(connectionCreatedMillis);
            evictor.connectionCreated();
        }

        @Override
        public void recordConnectionAcquiredNanos(long elapsedAcquiredNanos) {
            tracker.recordConnectionAcquiredNanos(elapsedAcquiredNanos);
        }

        @Override
        public void recordConnectionUsageMillis(long elapsedBorrowedMillis) {
            tracker.recordConnectionUsageMillis(elapsedBorrowedMillis);
            evictor.connectionReturned();
        }

        @Override
        public void recordConnectionTimeout() {
            tracker.recordConnectionTimeout();
        }

        @Override
        public void close() {
            try {
                evictor.close();
            } finally {
                tracker.close();
            }
        }
    }
}
