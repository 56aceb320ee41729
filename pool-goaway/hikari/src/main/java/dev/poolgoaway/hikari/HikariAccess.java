package dev.poolgoaway.hikari;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;

import com.zaxxer.hikari.metrics.PoolStats;
import com.zaxxer.hikari.pool.HikariPool;
import com.zaxxer.hikari.util.ConcurrentBag;
import com.zaxxer.hikari.util.ConcurrentBag.IConcurrentBagEntry;

import dev.poolgoaway.wire.PgGoAway;

/**
 * Everything pool-goaway needs from HikariCP that its public API does not offer, in one place: the pool's entries,
 * their real connections, and the soft-eviction path that max-lifetime rotation uses; the {@link PoolView} of a
 * running pool. HikariCP 5.1 to 7.1 share these internals; {@link #of(HikariPool)} checks them all at attach time
 * and fails with the HikariCP version in the message, never later in the middle of a drain.
 */
final class HikariAccess extends PublicApiView {

    private static final String HIKARI_VERSION = readHikariVersion();
    /** The HikariCP releases the build tests (see the hikari module's pom). */
    static final String TESTED = "5.1.0, 6.3.3, 7.0.2, 7.1.0";

    private final ConcurrentBag<IConcurrentBagEntry> bag;
    private final Field connectionField;
    private final Method markEvicted;
    private final Method isMarkedEvicted;
    private final Method softEvict;
    private final Field houseKeeperTask;
    /** HikariCP's last failure to connect; null where this release has no such field. */
    private final Field lastConnectionFailure = failureField();
    /** The user's {@code minimumIdle} and {@code maximumPoolSize} while a drain raised them. */
    private int userMinimumIdle;
    private int userMaximumPoolSize;
    /** What a drain set them to; -1 while no drain asks for replacements. */
    private int raisedMinimumIdle = -1;
    private int raisedMaximumPoolSize = -1;

    private HikariAccess(HikariPool pool, ConcurrentBag<IConcurrentBagEntry> bag, Field connectionField,
            Method markEvicted, Method isMarkedEvicted, Method softEvict, Field houseKeeperTask) {
        super(pool, null);
        this.bag = bag;
        this.connectionField = connectionField;
        this.markEvicted = markEvicted;
        this.isMarkedEvicted = isMarkedEvicted;
        this.softEvict = softEvict;
        this.houseKeeperTask = houseKeeperTask;
    }

    /**
     * The pool a {@link PoolStats} belongs to: HikariCP's PoolStats is an inner class of the pool, and its enclosing
     * instance is the pool. On the module path HikariCP does not open {@code com.zaxxer.hikari.pool}, and nothing
     * else leads to the pool.
     *
     * @param stats the PoolStats HikariCP gave the metrics tracker factory
     * @return the pool
     * @throws InaccessibleObjectException on the module path without {@code --add-opens}
     * @throws IllegalStateException       if this HikariCP's PoolStats leads to no pool
     */
    static HikariPool poolOf(PoolStats stats) {
        for (Class<?> c = stats.getClass(); c != null && c != PoolStats.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (HikariPool.class.isAssignableFrom(f.getType())) {
                    try {
                        f.setAccessible(true);
                        return (HikariPool) f.get(stats);
                    } catch (ReflectiveOperationException e) {
                        throw new IllegalStateException("pool-goaway cannot read the pool of HikariCP "
                                + hikariVersion() + ": " + e, e);
                    }
                }
            }
        }
        throw new IllegalStateException("pool-goaway cannot find the pool of HikariCP " + hikariVersion()
                + " from its PoolStats (" + stats.getClass().getName() + ")");
    }

    /**
     * @param pool a running pool
     * @return access to its internals
     * @throws IllegalStateException if this HikariCP's internals are not the ones known
     */
    @SuppressWarnings("unchecked")
    static HikariAccess of(HikariPool pool) {
        try {
            Field bagField = HikariPool.class.getDeclaredField("connectionBag");
            bagField.setAccessible(true);
            Class<?> entryClass = Class.forName("com.zaxxer.hikari.pool.PoolEntry");
            Field connection = entryClass.getDeclaredField("connection");
            connection.setAccessible(true);
            Method markEvicted = entryClass.getDeclaredMethod("markEvicted");
            markEvicted.setAccessible(true);
            Method isMarkedEvicted = entryClass.getDeclaredMethod("isMarkedEvicted");
            isMarkedEvicted.setAccessible(true);
            Method softEvict = HikariPool.class.getDeclaredMethod("softEvictConnection", entryClass, String.class,
                    boolean.class);
            softEvict.setAccessible(true);
            Field houseKeeper = HikariPool.class.getDeclaredField("houseKeeperTask");
            houseKeeper.setAccessible(true);
            return new HikariAccess(pool, (ConcurrentBag<IConcurrentBagEntry>) bagField.get(pool), connection,
                    markEvicted, isMarkedEvicted, softEvict, houseKeeper);
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            throw new IllegalStateException("pool-goaway does not know the internals of HikariCP " + HIKARI_VERSION
                    + " (tested: " + TESTED + "): " + e, e);
        }
    }

    private static Field failureField() {
        try {
            Field f = Class.forName("com.zaxxer.hikari.pool.PoolBase").getDeclaredField("lastConnectionFailure");
            f.setAccessible(true);
            return AtomicReference.class.isAssignableFrom(f.getType()) ? f : null;
        } catch (ReflectiveOperationException | RuntimeException e) {
            // Only the failure's text is lost: replacements are still counted and the stall still reported.
            return null;
        }
    }

    static String hikariVersion() {
        return HIKARI_VERSION;
    }

    /** HikariCP's jar names its version only in its Maven metadata, not in the manifest. */
    private static String readHikariVersion() {
        try (InputStream in = HikariPool.class.getResourceAsStream("/META-INF/maven/com.zaxxer/HikariCP/pom.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                return p.getProperty("version", "unknown");
            }
        } catch (IOException e) {
            // fall through
        }
        return String.valueOf(HikariPool.class.getPackage().getImplementationVersion());
    }

    @Override
    public List<?> entries() {
        return bag.values();
    }

    @Override
    public Signals signals(Object entry) {
        Connection connection = connection(entry);
        if (connection == null) {
            return null;
        }
        try {
            return PgGoAway.signals(connection).map(Signals::of).orElse(null);
        } catch (SQLException notPgjdbc) {
            return null;
        }
    }

    /** @return the real (pgjdbc) connection of an entry, or null once it is closed */
    private Connection connection(Object entry) {
        try {
            return (Connection) connectionField.get(entry);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public Slot slot(Object entry) {
        return switch (((IConcurrentBagEntry) entry).getState()) {
            case IConcurrentBagEntry.STATE_NOT_IN_USE -> Slot.IDLE;
            case IConcurrentBagEntry.STATE_IN_USE -> Slot.IN_USE;
            default -> Slot.OTHER;
        };
    }

    /** Takes an idle entry away from borrowers, exactly as Hikari's keepalive task does. */
    @Override
    public boolean reserve(Object entry) {
        return bag.reserve((IConcurrentBagEntry) entry);
    }

    @Override
    public void unreserve(Object entry) {
        bag.unreserve((IConcurrentBagEntry) entry);
    }

    /** Marks an entry so that Hikari closes it when it is returned (or next found idle). */
    @Override
    public void closeOnReturn(Object entry) {
        invoke(markEvicted, entry);
    }

    @Override
    public boolean evictedByHikari(Object entry) {
        return (Boolean) invoke(isMarkedEvicted, entry);
    }

    /**
     * Closes an entry the caller owns (reserved, or in use and aborted) through Hikari's own soft-eviction path
     * ({@code owner = true}, as {@code HikariPool.evictConnection} does for a borrowed connection), then lets the
     * pool refill for any waiter, as the max-lifetime and keepalive tasks do.
     */
    @Override
    public void evict(Object entry, String reason) {
        invoke(softEvict, pool, entry, reason, true);
        pool.addBagItem(bag.getWaitingThreadCount());
    }

    @Override
    public void abort(Object entry) {
        Connection c = connection(entry);
        if (c != null) {
            try {
                c.abort(Runnable::run);
            } catch (SQLException e) {
                // Closed meanwhile, or the driver refused: the eviction below closes it either way.
            }
        }
        evict(entry, "(pool-goaway: straggler aborted)");
    }

    /**
     * HikariCP's adder opens connections while the pool is below {@code maximumPoolSize} and has fewer idle ones
     * than {@code minimumIdle} (or fewer than waiting borrowers), reading both from the configuration at each step.
     * So a drain raises them through the configuration's runtime setters (HikariConfigMXBean's): {@code minimumIdle}
     * to {@code size}, or a pool with {@code minimumIdle} below its size would replace nothing; and
     * {@code maximumPoolSize} to {@code size} where the drain opens a replacement before it lets a connection go,
     * or a full pool could open none. Then the adder is started, as a waiting borrower starts it. The user's values
     * are the floor, and {@link #endReplacements} puts them back.
     */
    @Override
    public synchronized void requestReplacements(int size) {
        // A value that is not the one last set here was set by the user (through the MXBean) meanwhile: it is
        // theirs from now on, the floor of this raise and what endReplacements puts back.
        if (raisedMinimumIdle < 0 || pool.config.getMinimumIdle() != raisedMinimumIdle) {
            userMinimumIdle = pool.config.getMinimumIdle();
        }
        if (raisedMaximumPoolSize < 0 || pool.config.getMaximumPoolSize() != raisedMaximumPoolSize) {
            userMaximumPoolSize = pool.config.getMaximumPoolSize();
        }
        int max = Math.max(userMaximumPoolSize, size);
        int min = Math.max(userMinimumIdle, size);
        // HikariCP reads the two without a lock: raised maximum first, lowered maximum last, so that minimumIdle
        // is never seen above it.
        if (max >= pool.config.getMaximumPoolSize()) {
            pool.config.setMaximumPoolSize(max);
            pool.config.setMinimumIdle(min);
        } else {
            pool.config.setMinimumIdle(min);
            pool.config.setMaximumPoolSize(max);
        }
        raisedMinimumIdle = min;
        raisedMaximumPoolSize = max;
        // Submits the adder if none is queued; it opens connections while the pool is short.
        pool.addBagItem(1);
    }

    @Override
    public synchronized void endReplacements() {
        if (raisedMinimumIdle < 0) {
            return;
        }
        // A value changed meanwhile (through the MXBean) is the user's now: left alone.
        if (pool.config.getMinimumIdle() == raisedMinimumIdle) {
            pool.config.setMinimumIdle(Math.min(userMinimumIdle, pool.config.getMaximumPoolSize()));
        }
        if (pool.config.getMaximumPoolSize() == raisedMaximumPoolSize) {
            pool.config.setMaximumPoolSize(Math.max(userMaximumPoolSize, pool.config.getMinimumIdle()));
        }
        raisedMinimumIdle = -1;
        raisedMaximumPoolSize = -1;
    }

    /** HikariCP keeps its last failure to connect (the cause of its "Connection is not available"). */
    @Override
    public Throwable lastCreationFailure() {
        if (lastConnectionFailure == null) {
            return null;
        }
        try {
            return ((AtomicReference<?>) lastConnectionFailure.get(pool)).get() instanceof Throwable t ? t : null;
        } catch (IllegalAccessException e) {
            return null;
        }
    }

    /** HikariCP schedules its housekeeper as the last thing its constructor does. */
    @Override
    public boolean started() {
        try {
            return houseKeeperTask.get(pool) != null;
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public boolean canReserve() {
        return true;
    }

    private static Object invoke(Method m, Object target, Object... args) {
        try {
            return m.invoke(target, args);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("HikariCP " + HIKARI_VERSION + ": " + m.getName() + " failed", e);
        }
    }
}
