package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Proves which HikariCP a test run really used: each surefire execution pins one. */
class HikariVersionTest {

    @Test
    void theRunUsesTheHikariItClaims() {
        assertEquals(System.getProperty("expected.hikari.version"), HikariAccess.hikariVersion());
    }
}
