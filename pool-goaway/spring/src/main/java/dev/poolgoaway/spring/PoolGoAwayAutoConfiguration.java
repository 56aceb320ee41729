package dev.poolgoaway.spring;

import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Conditional;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;

import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.hikari.EvictorSettings;
import io.micrometer.core.instrument.MeterRegistry;

/**
 * Auto-configuration of pool-goaway for the application's PostgreSQL HikariCP pools: installs it into each before
 * the pool starts, binds its meters to the application's {@link MeterRegistry} and contributes a health indicator
 * (see {@code docs/spring-boot.md}). Off with {@code poolgoaway.enabled=false}, unless a pool's own
 * {@code poolgoaway.pools.<pool>.enabled=true} turns it on for that pool.
 */
@AutoConfiguration
@ConditionalOnClass({HikariDataSource.class, org.postgresql.Driver.class})
@Conditional(PoolGoAwayEnabledCondition.class)
@EnableConfigurationProperties(PoolGoAwayProperties.class)
@Import({Boot4HealthConfiguration.class, Boot3HealthConfiguration.class})
public class PoolGoAwayAutoConfiguration {

    /**
     * @param properties the {@code poolgoaway.*} properties
     * @return the settings of every pool's evictor
     */
    @Bean
    @ConditionalOnMissingBean
    EvictorSettings poolGoAwayEvictorSettings(PoolGoAwayProperties properties) {
        return properties.toSettings();
    }

    @Bean
    static PoolGoAwayInstaller poolGoAwayInstaller(ObjectProvider<EvictorSettings> settings,
            ObjectProvider<PoolGoAwayProperties> properties, ObjectProvider<PoolGoAwayMeters> meters) {
        return new PoolGoAwayInstaller(settings, properties, meters);
    }

    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass(MeterRegistry.class)
    static class MetricsConfiguration {

        @Bean
        PoolGoAwayMeters poolGoAwayMeters(ObjectProvider<MeterRegistry> registry) {
            return new PoolGoAwayMeters(registry);
        }
    }
}
