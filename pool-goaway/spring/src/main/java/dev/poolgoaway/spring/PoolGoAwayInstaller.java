package dev.poolgoaway.spring;

import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.beans.factory.SmartInitializingSingleton;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.core.Ordered;

import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.GoAwayEvictor;
import dev.poolgoaway.hikari.PoolGoAway;

/**
 * Installs pool-goaway into every {@link HikariDataSource} bean of PostgreSQL, after Spring Boot bound its
 * {@code spring.datasource.hikari.*} settings and before the pool starts (Boot's pools start lazily, at the first
 * {@code getConnection()}), and keeps the evictors for the health indicator and for the application.
 *
 * <p>It never stops an application from starting: a pool it cannot install into (not PostgreSQL, started already,
 * a Dropwizard {@code metricRegistry}) is logged and left as it is. It runs first among the post-processors, so it
 * sees a {@code HikariDataSource} bean before anything wraps it.
 *
 * <p>Once every bean is initialized, it checks each pool again: an application bean that set a
 * {@code metricsTrackerFactory} on the data source after pool-goaway installed itself (the common
 * {@code @PostConstruct} wiring of Micrometer) replaced pool-goaway's start hook; the hook is put back in front of
 * that factory, so the pool still starts with its evictor. A pool that started without it meanwhile is reported
 * (an ERROR, and {@code problem} in the health details).
 *
 * <p>A pool's settings are the application's ({@code poolgoaway.*}, or its own {@link EvictorSettings} bean) with
 * what its entry under {@code poolgoaway.pools} sets, the entry found by HikariCP pool name, or by bean name for a
 * pool without one. An entry that matches no pool is logged once every bean is initialized: a misspelt name must
 * not pass for a setting.
 */
public final class PoolGoAwayInstaller implements BeanPostProcessor, SmartInitializingSingleton, Ordered {

    private static final Logger log = LoggerFactory.getLogger(PoolGoAwayInstaller.class);

    private final ObjectProvider<EvictorSettings> settings;
    private final ObjectProvider<PoolGoAwayProperties> properties;
    private final ObjectProvider<PoolGoAwayMeters> meters;
    private final SortedMap<String, GoAwayEvictor> evictors = new ConcurrentSkipListMap<>();
    /** The pools it did not install into, with the reason: health lists them beside the installed ones. */
    private final SortedMap<String, String> notInstalled = new ConcurrentSkipListMap<>();
    /** The keys of {@code poolgoaway.pools} that named a pool. */
    private final Set<String> matched = ConcurrentHashMap.newKeySet();

    /**
     * All are looked up at the first pool: a post-processor is created before the beans it could depend on.
     *
     * @param settings   how to drain, the application's settings
     * @param properties the {@code poolgoaway.*} properties, for the pools' own
     * @param meters     Micrometer glue, if Micrometer is there
     */
    PoolGoAwayInstaller(ObjectProvider<EvictorSettings> settings, ObjectProvider<PoolGoAwayProperties> properties,
            ObjectProvider<PoolGoAwayMeters> meters) {
        this.settings = settings;
        this.properties = properties;
        this.meters = meters;
    }

    /**
     * The pool's entry under {@code poolgoaway.pools}: by its pool name, else its bean name; each exactly, then
     * ignoring case, since Boot lower-cases the keys it binds from environment variables
     * ({@code POOLGOAWAY_POOLS_DATASOURCE_ENABLED} gives {@code datasource}, for the bean {@code dataSource}).
     */
    static String entryKey(Set<String> keys, String poolName, String beanName) {
        for (String name : new String[] {poolName, beanName}) {
            if (name != null && keys.contains(name)) {
                return name;
            }
        }
        for (String name : new String[] {poolName, beanName}) {
            for (String key : keys) {
                if (key.equalsIgnoreCase(name)) {
                    return key;
                }
            }
        }
        return null;
    }

    @Override
    public Object postProcessAfterInitialization(Object bean, String beanName) {
        if (bean instanceof HikariDataSource pool) {
            install(pool, beanName);
        }
        return bean;
    }

    private void install(HikariDataSource pool, String beanName) {
        if (pool.getHikariPoolMXBean() != null || pool.isClosed()) {
            String reason = "the pool started before pool-goaway could install itself (was it created with "
                    + "new HikariDataSource(config)? create it with new HikariDataSource() and set its properties, "
                    + "or let Spring Boot create it); it runs without pool-goaway";
            notInstalled.put(beanName, reason);
            log.warn("{} - {}", beanName, reason);
            return;
        }
        PoolGoAwayProperties props = properties.getObject();
        String key = entryKey(props.getPools().keySet(), pool.getPoolName(), beanName);
        PoolGoAwayProperties.Pool entry = key == null ? null : props.getPools().get(key);
        EvictorSettings poolSettings = settings.getObject();
        if (entry != null) {
            matched.add(key);
            poolSettings = entry.over(poolSettings, key);
        }
        if (!poolSettings.enabled()) {
            String reason = "turned off by " + (entry != null && entry.enabled() != null
                    ? PoolGoAwayProperties.poolPrefix(key) + "enabled=false"
                    : props.isEnabled() ? "the application's EvictorSettings bean (enabled false)"
                    : PoolGoAwayProperties.PREFIX + ".enabled=false");
            notInstalled.put(beanName, reason);
            log.info("{} - pool-goaway is {}", beanName, reason);
            return;
        }
        try {
            PoolGoAwayMeters glue = meters.getIfAvailable();
            if (glue != null) {
                glue.beforeInstall(pool);
            }
            GoAwayEvictor evictor = PoolGoAway.install(pool, poolSettings);
            if (glue != null) {
                glue.bind(evictor);
            }
            evictors.put(beanName, evictor);
            log.info("{} - pool-goaway installed", beanName);
        } catch (IllegalArgumentException notPostgres) {
            notInstalled.put(beanName, notPostgres.getMessage());
            log.info("{} - pool-goaway leaves this pool alone: {}", beanName, notPostgres.getMessage());
        } catch (IllegalStateException cannot) {
            notInstalled.put(beanName, cannot.getMessage());
            log.warn("{} - pool-goaway is not installed: {}", beanName, cannot.getMessage());
        }
    }

    @Override
    public void afterSingletonsInstantiated() {
        evictors.values().forEach(GoAwayEvictor::ensureHooked);
        Set<String> unmatched = new LinkedHashSet<>(properties.getObject().getPools().keySet());
        unmatched.removeAll(matched);
        for (String key : unmatched) {
            log.warn("{}* names no HikariDataSource created at startup (neither its pool name nor its bean name); "
                    + "its settings apply to no pool", PoolGoAwayProperties.poolPrefix(key));
        }
    }

    /** @return the evictors installed, by the name of their data source bean */
    public Map<String, GoAwayEvictor> evictors() {
        return Collections.unmodifiableSortedMap(evictors);
    }

    /** @return the data source beans it did not install into, by bean name, with the reason */
    public Map<String, String> notInstalled() {
        return Collections.unmodifiableSortedMap(notInstalled);
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE;
    }
}
