package dev.poolgoaway.testkit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import org.junit.jupiter.api.Test;

@GoAwayProxyTest
class DocExamplesTest {

    @Test
    void theProxyExampleStartsAProxyOverTheUpstream(PostgresUpstream blue) throws Exception {
        String url = DocExamples.proxy(blue);
        assertTrue(url.matches("jdbc:postgresql://localhost:\\d+/postgres.*"), url);
    }

    @Test
    void theLoadExampleRunsOnAPool(PostgresUpstream blue) throws Exception {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(blue.jdbcUrl());
        config.setUsername(blue.user());
        try (HikariDataSource pool = new HikariDataSource(config)) {
            assertTrue(DocExamples.load(pool).size() >= 400, "the observer heard of every request");
        }
    }
}
