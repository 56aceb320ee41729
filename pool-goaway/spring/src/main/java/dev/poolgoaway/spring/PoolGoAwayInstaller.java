package dev.poolgoaway.spring;

import java.util.Collections;
import java.util.Map;
import java.util.SortedMap;
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
 */
public final class PoolGoAwayInstaller implements BeanPostProcessor, SmartInitializingSingleton, Ordered {

    private static final Logger log = LoggerFactory.getLogger(PoolGoAwayInstaller.class);

    private final ObjectProvider<EvictorSettings> settings;
    private final ObjectProvider<PoolGoAwayMeters> meters;
    private final SortedMap<String, GoAwayEvictor> evictors = new ConcurrentSkipListMap<>();
    /** The pools it did not install into, with the reason: health lists them beside the installed ones. */
    private final SortedMap<String, String> notInstalled = new ConcurrentSkipListMap<>();

    /**
     * Both are looked up at the first pool: a post-processor is created before the beans it could depend on.
     *
     * @param settings how to drain
     * @param meters   Micrometer glue, if Micrometer is there
     */
    PoolGoAwayInstaller(ObjectProvider<EvictorSettings> settings, ObjectProvider<PoolGoAwayMeters> meters) {
        this.settings = settings;
        this.meters = meters;
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
        try {
            PoolGoAwayMeters glue = meters.getIfAvailable();
            if (glue != null) {
                glue.beforeInstall(pool);
            }
            GoAwayEvictor evictor = PoolGoAway.install(pool, settings.getObject());
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
