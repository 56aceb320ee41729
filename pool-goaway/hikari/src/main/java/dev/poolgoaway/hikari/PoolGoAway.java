package dev.poolgoaway.hikari;


import java.util.Properties;
import java.util.Set;
import java.util.UUID;

import javax.sql.DataSource;

import org.postgresql.PGProperty;
import org.postgresql.ds.common.BaseDataSource;
import org.postgresql.ssl.LibPQFactory;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.util.PropertyElf;

import dev.poolgoaway.wire.PgGoAway;

/**
 * Installs pool-goaway into a HikariCP pool: one call, before the pool starts.
 *
 * <pre>{@code
 * HikariConfig config = new HikariConfig();
 * config.setJdbcUrl("jdbc:postgresql://db/app");
 * GoAwayEvictor evictor = PoolGoAway.install(config);
 * HikariDataSource ds = new HikariDataSource(config);   // the evictor starts with the pool, stops with it
 * }</pre>
 *
 * <p>It installs the wire layer into the pool's driver properties (a {@code jdbcUrl} pool) or into its pgjdbc
 * data source (a {@code dataSourceClassName} or {@code dataSource} pool), keeping a {@code socketFactory} or
 * {@code sslfactory} the user set, and attaches a {@link GoAwayEvictor} that starts when the pool does.
 */
public final class PoolGoAway {

    /**
     * System property: {@code false} makes pools started from now on run on HikariCP's public API alone, the
     * fallback for a HikariCP release whose internals pool-goaway does not know (see {@code docs/how-it-works.md}).
     */
    public static final String INTERNALS_PROPERTY = "poolgoaway.hikari.internals";

    private static final String[] WIRE_KEYS = {PGProperty.SOCKET_FACTORY.getName(), PGProperty.SSL_FACTORY.getName()};

    private PoolGoAway() {
    }

    /**
     * Installs with the default settings.
     *
     * @param config a pool configuration, or a {@link HikariDataSource} that has not started yet
     * @return the evictor, which starts with the pool
     * @see #install(HikariConfig, EvictorSettings)
     */
    public static GoAwayEvictor install(HikariConfig config) {
        return install(config, EvictorSettings.defaults());
    }

    /**
     * Installs pool-goaway into a pool that has not started.
     *
     * @param config   a pool configuration, or a {@link HikariDataSource} that has not started yet
     * @param settings how to drain
     * @return the evictor, which starts with the pool (inert if {@code settings.enabled()} is false)
     * @throws IllegalStateException    if the pool is running already, pool-goaway is installed already, or a
     *                                  Dropwizard/Prometheus {@code metricRegistry} is set (use a
     *                                  {@code metricsTrackerFactory} instead: pool-goaway chains to it)
     * @throws IllegalArgumentException if the pool is not a pgjdbc one
     */
    public static GoAwayEvictor install(HikariConfig config, EvictorSettings settings) {
        GoAwayEvictor evictor = new GoAwayEvictor(settings, config);
        if (!settings.enabled()) {
            return evictor;
        }
        String name = config.getPoolName() != null ? config.getPoolName() : "a HikariCP pool";
        if (config instanceof HikariDataSource ds && (ds.getHikariPoolMXBean() != null || ds.isClosed())) {
            throw new IllegalStateException(name + " is already running: install pool-goaway before the pool "
                    + "starts (before new HikariDataSource(config), or before the first getConnection())");
        }
        if (config.getMetricsTrackerFactory() instanceof PoolStartHook) {
            throw new IllegalStateException("pool-goaway is already installed in " + name);
        }
        if (config.getMetricRegistry() != null) {
            throw new IllegalStateException(name + " has a metricRegistry; HikariCP allows no metricsTrackerFactory "
                    + "beside it, and pool-goaway attaches through one. Use a metricsTrackerFactory (for Micrometer, "
                    + "MicrometerMetricsTrackerFactory): pool-goaway hands Hikari's metrics on to it.");
        }
        try {
            String group = installWireLayer(config, name);
            config.setMetricsTrackerFactory(new PoolStartHook(config.getMetricsTrackerFactory(), evictor, group));
            evictor.hooked(config.getMetricsTrackerFactory());
            if (group != null) {
                // A pool that connects without having attached the evictor started without the hook (a
                // metricsTrackerFactory set after install, then new HikariDataSource(config)): said at once.
                PgGoAway.onFirstConnection(group, () -> evictor.connectedWithoutEvictor(name));
            }
        } catch (IllegalStateException sealed) {
            throw new IllegalStateException(name + " is already running (its configuration is sealed): install "
                    + "pool-goaway before the pool starts", sealed);
        }
        if (config.getPoolName() != null && poolRunning(config.getPoolName())) {
            // new HikariDataSource(config) copies the configuration and leaves it unsealed: an install into it
            // afterwards changes nothing the running pool sees. Said at once; the evictor takes it back if a pool
            // does start from this configuration.
            evictor.startedBeforeInstall(config.getPoolName());
        }
        return evictor;
    }

    /**
     * Whether a HikariCP pool of this name runs in this JVM: its housekeeper thread ({@code <name>:housekeeper} in
     * HikariCP 7, {@code <name> housekeeper} before; HikariCP's own names when no threadFactory is set) is alive. {@code new HikariDataSource(config)} names
     * the configuration it copies ({@code HikariPool-N}) when it has no name, so that case is always seen.
     */
    private static boolean poolRunning(String poolName) {
        Set<String> housekeeper = Set.of(poolName + ":housekeeper", poolName + " housekeeper");
        return Thread.getAllStackTraces().keySet().stream()
                .anyMatch(t -> t.isAlive() && housekeeper.contains(t.getName()));
    }

    /**
     * Everything that can refuse the pool is checked before anything of it is changed: a refused pool is left as
     * the user made it.
     *
     * @return the wire layer's group of the pool's connections, or null for a data-source pool (no group there)
     */
    private static String installWireLayer(HikariConfig config, String name) {
        if (config.getJdbcUrl() != null) {
            if (!config.getJdbcUrl().startsWith("jdbc:postgresql:")) {
                throw new IllegalArgumentException(name + " is not a PostgreSQL pool: jdbcUrl " + config.getJdbcUrl());
            }
            // Parameters in the URL win over driver properties in pgjdbc: the wire layer moves its own out of it.
            // Worked out on a copy, since the wire layer can still refuse (a setting it cannot use).
            Properties props = new Properties();
            props.putAll(config.getDataSourceProperties());
            String url = PgGoAway.install(config.getJdbcUrl(), props);
            String group = "hikari-" + UUID.randomUUID();
            props.setProperty(PgGoAway.GROUP, group);
            config.setJdbcUrl(url);
            // The same Properties object: a HikariDataSource made from this configuration shares it.
            config.getDataSourceProperties().putAll(props);
            return group;
        }
        DataSource ds = config.getDataSource();
        boolean fromClassName = ds == null && config.getDataSourceClassName() != null;
        if (fromClassName) {
            ds = instantiate(config.getDataSourceClassName(), name);
            if (ds instanceof BaseDataSource) {
                // Configure it exactly as Hikari would; Hikari gets the instance once it is known to fit.
                PropertyElf.setTargetFromProperties(ds, config.getDataSourceProperties());
            }
        }
        if (!(ds instanceof BaseDataSource pg)) {
            throw new IllegalArgumentException(name + " is not a pgjdbc pool: set a jdbc:postgresql: jdbcUrl, or a "
                    + "pgjdbc data source (dataSourceClassName org.postgresql.ds.PGSimpleDataSource)");
        }
        installInto(pg, name);
        if (fromClassName) {
            // Hikari ignores dataSourceProperties beside a dataSource: they stay as the user set them.
            config.setDataSource(ds);
            config.setDataSourceClassName(null);
        }
        return null;
    }

    /** A pgjdbc data source takes only pgjdbc's own properties, so user factories cannot be kept there. */
    private static void installInto(BaseDataSource ds, String name) {
        Properties props = new Properties();
        if (ds.getSocketFactory() != null) {
            props.setProperty(PGProperty.SOCKET_FACTORY.getName(), ds.getSocketFactory());
        }
        String sslFactory = ds.getSslfactory();
        if (sslFactory != null && !sslFactory.equals(PGProperty.SSL_FACTORY.getDefaultValue())
                && !sslFactory.equals(LibPQFactory.class.getName())) {
            props.setProperty(PGProperty.SSL_FACTORY.getName(), sslFactory);
        }
        PgGoAway.install(props);
        if (props.containsKey(PgGoAway.DELEGATE_SOCKET_FACTORY) || props.containsKey(PgGoAway.DELEGATE_SSL_FACTORY)) {
            throw new IllegalArgumentException(name + " sets its own socketFactory or sslfactory on a pgjdbc data "
                    + "source, which cannot carry pool-goaway's wrapper settings: configure the pool with a jdbcUrl "
                    + "and driver properties instead, where pool-goaway keeps and wraps them");
        }
        for (String key : WIRE_KEYS) {
            ds.setProperty(PGProperty.forName(key), props.getProperty(key));
        }
    }

    private static DataSource instantiate(String className, String name) {
        try {
            return (DataSource) Class.forName(className).getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException | ClassCastException e) {
            throw new IllegalArgumentException(name + ": cannot instantiate dataSourceClassName " + className, e);
        }
    }
}
