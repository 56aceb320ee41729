package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.pool.HikariPool;

/** The sizes a drain raises on a real HikariCP pool, and what it puts back. */
class HikariAccessTest {

    @Test
    void aSizeTheUserChangesDuringADrainIsTheirsAndIsWhatTheDrainPutsBack() throws Exception {
        HikariConfig config = new HikariConfig();
        // Nothing listens on port 1: the pool starts without connections and no server is needed.
        config.setJdbcUrl("jdbc:postgresql://127.0.0.1:1/none");
        config.setInitializationFailTimeout(-1);
        config.setMaximumPoolSize(10);
        config.setMinimumIdle(10);
        config.setPoolName("user-sizes");
        HikariPool pool = new HikariPool(config);
        try {
            HikariAccess access = HikariAccess.of(pool);
            access.requestReplacements(11);
            assertEquals(11, config.getMaximumPoolSize());
            assertEquals(11, config.getMinimumIdle());
            // The operator raises the pool through the MXBean while the drain runs; the next retry asks again.
            config.setMaximumPoolSize(20);
            access.requestReplacements(11);
            assertEquals(20, config.getMaximumPoolSize(), "the user's larger maximum stands");
            access.endReplacements();
            assertEquals(20, config.getMaximumPoolSize(), "and is not put back to 10 at the drain's end");
            assertEquals(10, config.getMinimumIdle());
            // The same for minimumIdle lowered during a drain: the drain's end puts back the user's new value.
            access.requestReplacements(21);
            config.setMinimumIdle(0);
            access.requestReplacements(21);
            access.endReplacements();
            assertEquals(0, config.getMinimumIdle());
            assertEquals(20, config.getMaximumPoolSize());
        } finally {
            pool.shutdown();
        }
    }
}
