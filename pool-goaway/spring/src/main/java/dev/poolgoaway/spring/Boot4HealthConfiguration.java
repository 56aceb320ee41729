package dev.poolgoaway.spring;

import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.health.autoconfigure.contributor.ConditionalOnEnabledHealthIndicator;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** The health indicator on Spring Boot 4's health API ({@code spring-boot-health}). */
@Configuration(proxyBeanMethods = false)
@ConditionalOnClass(name = "org.springframework.boot.health.contributor.HealthIndicator")
@ConditionalOnEnabledHealthIndicator("poolgoaway")
class Boot4HealthConfiguration {

    @Bean
    @ConditionalOnMissingBean(name = "poolGoAwayHealthIndicator")
    HealthIndicator poolGoAwayHealthIndicator(PoolGoAwayInstaller installer) {
        return () -> Health.up().withDetails(PoolGoAwayHealth.details(installer)).build();
    }
}
