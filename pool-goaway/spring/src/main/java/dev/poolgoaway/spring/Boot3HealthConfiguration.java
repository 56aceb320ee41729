package dev.poolgoaway.spring;

import org.springframework.boot.actuate.autoconfigure.health.ConditionalOnEnabledHealthIndicator;
import org.springframework.boot.actuate.health.Health;
import org.springframework.boot.actuate.health.HealthIndicator;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** The health indicator on Spring Boot 3's health API ({@code spring-boot-actuator}). */
@Configuration(proxyBeanMethods = false)
@ConditionalOnClass(name = "org.springframework.boot.actuate.health.HealthIndicator")
@ConditionalOnEnabledHealthIndicator("poolgoaway")
class Boot3HealthConfiguration {

    @Bean
    @ConditionalOnMissingBean(name = "poolGoAwayHealthIndicator")
    HealthIndicator poolGoAwayHealthIndicator(PoolGoAwayInstaller installer) {
        return () -> Health.up().withDetails(PoolGoAwayHealth.details(installer)).build();
    }
}
