package dev.poolgoaway.spring;

import org.springframework.boot.actuate.health.Health;
import org.springframework.boot.actuate.health.HealthContributorRegistry;
import org.springframework.boot.actuate.health.HealthIndicator;
import org.springframework.context.ApplicationContext;

/** The tests' view of Spring Boot 3's health API ({@code spring-boot-actuator}). */
final class BootHealth {

    /** A class of the health API, to hide it. */
    static final Class<?> API = HealthIndicator.class;

    private BootHealth() {
    }

    /** pool-goaway's health, as Boot's health registry (the Actuator's source) reports it. */
    static HealthReport report(ApplicationContext context) {
        HealthIndicator indicator = (HealthIndicator) context.getBean(HealthContributorRegistry.class)
                .getContributor(HealthReport.NAME);
        Health health = indicator.health();
        return new HealthReport(health.getStatus().getCode(), health.getDetails());
    }
}
