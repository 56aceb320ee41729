package dev.poolgoaway.spring;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringBootVersion;

/** Proves which Spring Boot a test run really used: this module runs on Boot 4, spring-boot3-tests on Boot 3.5. */
class BootVersionTest {

    @Test
    void theRunUsesTheBootItClaims() {
        assertEquals(System.getProperty("expected.boot.version"), SpringBootVersion.getVersion());
    }
}
