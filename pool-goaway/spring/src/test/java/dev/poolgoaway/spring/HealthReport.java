package dev.poolgoaway.spring;

import java.util.Map;

/**
 * pool-goaway's health as the Actuator would show it, on whichever Boot runs the tests ({@code BootHealth}, in
 * src/test/boot4 here and in spring-boot3-tests, reads it).
 *
 * @param status  the status code
 * @param details the details
 */
record HealthReport(String status, Map<String, Object> details) {

    /** The indicator's name in the Actuator: its bean name without the standard suffix. */
    static final String NAME = "poolGoAway";

    /** @return the details of one pool, by data source bean name */
    @SuppressWarnings("unchecked")
    Map<String, Object> pool(String dataSourceBeanName) {
        return (Map<String, Object>) details.get(dataSourceBeanName);
    }
}
