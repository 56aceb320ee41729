package dev.poolgoaway.hikari;

import java.util.List;

import com.zaxxer.hikari.pool.HikariPool;

import dev.poolgoaway.wire.ConnectionSignals;
import dev.poolgoaway.wire.PgGoAway;

/**
 * A pool seen through HikariCP's public API alone, for a release whose internals {@link HikariAccess} does not
 * know: the wire layer lists the pool's connections (by its {@link PgGoAway#GROUP}), none can be reserved or evicted
 * one by one, and the one tool is {@link HikariPool#softEvictConnections()}. {@link HikariAccess} adds to it what
 * HikariCP's internals offer; what concerns the pool as a whole is the same for both.
 */
class PublicApiView implements PoolView {

    final HikariPool pool;
    private final String group;

    PublicApiView(HikariPool pool, String group) {
        this.pool = pool;
        this.group = group;
    }

    @Override
    public List<?> entries() {
        return group == null ? List.of() : PgGoAway.group(group);
    }

    @Override
    public Signals signals(Object entry) {
        return Signals.of((ConnectionSignals) entry);
    }

    @Override
    public Slot slot(Object entry) {
        return Slot.OTHER;
    }

    @Override
    public boolean reserve(Object entry) {
        return false;
    }

    @Override
    public void unreserve(Object entry) {
        throw new UnsupportedOperationException("public API: nothing is reserved");
    }

    @Override
    public void closeOnReturn(Object entry) {
        throw new UnsupportedOperationException("public API: use softEvictAll");
    }

    @Override
    public boolean evictedByHikari(Object entry) {
        return false;
    }

    @Override
    public void evict(Object entry, String reason) {
        throw new UnsupportedOperationException("public API: use softEvictAll");
    }

    @Override
    public void abort(Object entry) {
        throw new UnsupportedOperationException("public API: use softEvictAll");
    }

    /** The public API cannot let connections go one by one: nothing to replace. */
    @Override
    public void requestReplacements(int size) {
    }

    @Override
    public void endReplacements() {
    }

    @Override
    public int totalConnections() {
        return pool.getTotalConnections();
    }

    @Override
    public int maximumPoolSize() {
        return pool.config.getMaximumPoolSize();
    }

    @Override
    public Throwable lastCreationFailure() {
        return null;
    }

    @Override
    public boolean suspended() {
        return pool.poolState == HikariPool.POOL_SUSPENDED;
    }

    @Override
    public long connectionTimeoutMillis() {
        return pool.config.getConnectionTimeout();
    }

    @Override
    public boolean shutDown() {
        return pool.poolState == HikariPool.POOL_SHUTDOWN;
    }

    /** Not known through the public API: a pool whose constructor threw is not noticed here. */
    @Override
    public boolean started() {
        return true;
    }

    @Override
    public boolean canReserve() {
        return false;
    }
}
