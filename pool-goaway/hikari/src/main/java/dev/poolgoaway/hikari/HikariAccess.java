package dev.poolgoaway.hikari;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.sql.Connection;
import java.util.List;
import java.util.Properties;

import com.zaxxer.hikari.pool.HikariPool;
import com.zaxxer.hikari.util.ConcurrentBag;
import com.zaxxer.hikari.util.ConcurrentBag.IConcurrentBagEntry;

/**
 * Everything pool-goaway needs from HikariCP that its public API does not offer, in one place: the pool's entries,
 * their real connections, and the soft-eviction path that max-lifetime rotation uses. HikariCP 5.1 to 7.x share
 * these internals; {@link #of(HikariPool)} checks them all at attach time and fails with the HikariCP version in
 * the message, never later in the middle of a drain.
 */
final class HikariAccess {

    private static final String HIKARI_VERSION = readHikariVersion();

    private final HikariPool pool;
    private final ConcurrentBag<IConcurrentBagEntry> bag;
    private final Field connectionField;
    private final Method markEvicted;
    private final Method softEvict;

    private HikariAccess(HikariPool pool, ConcurrentBag<IConcurrentBagEntry> bag, Field connectionField,
            Method markEvicted, Method softEvict) {
        this.pool = pool;
        this.bag = bag;
        this.connectionField = connectionField;
        this.markEvicted = markEvicted;
        this.softEvict = softEvict;
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
            Method softEvict = HikariPool.class.getDeclaredMethod("softEvictConnection", entryClass, String.class,
                    boolean.class);
            softEvict.setAccessible(true);
            return new HikariAccess(pool, (ConcurrentBag<IConcurrentBagEntry>) bagField.get(pool), connection,
                    markEvicted, softEvict);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("pool-goaway does not know the internals of HikariCP " + HIKARI_VERSION
                    + " (tested: 5.1.0, 6.3.x, 7.0.x): " + e, e);
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

    /** @return the pool's entries now, in every state */
    List<IConcurrentBagEntry> entries() {
        return bag.values();
    }

    /** @return the real (pgjdbc) connection of an entry, or null once it is closed */
    Connection connection(IConcurrentBagEntry entry) {
        try {
            return (Connection) connectionField.get(entry);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Takes an idle entry away from borrowers, exactly as Hikari's keepalive task does. */
    boolean reserve(IConcurrentBagEntry entry) {
        return bag.reserve(entry);
    }

    void unreserve(IConcurrentBagEntry entry) {
        bag.unreserve(entry);
    }

    /** Marks an entry so that Hikari closes it when it is returned (or next found idle). */
    void markEvicted(IConcurrentBagEntry entry) {
        invoke(markEvicted, entry);
    }

    /**
     * Closes a reserved entry through Hikari's own soft-eviction path, then lets the pool refill for any waiter,
     * as the max-lifetime and keepalive tasks do.
     */
    void evictReserved(IConcurrentBagEntry entry, String reason) {
        invoke(softEvict, pool, entry, reason, true);
        pool.addBagItem(bag.getWaitingThreadCount());
    }

    private static void invoke(Method m, Object target, Object... args) {
        try {
            m.invoke(target, args);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("HikariCP " + HIKARI_VERSION + ": " + m.getName() + " failed", e);
        }
    }
}
