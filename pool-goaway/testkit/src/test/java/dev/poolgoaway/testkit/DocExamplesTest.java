package dev.poolgoaway.testkit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

@GoAwayProxyTest
class DocExamplesTest {

    @Test
    void theProxyExampleStartsAProxyOverTheUpstream(PostgresUpstream blue) throws Exception {
        String url = DocExamples.proxy(blue);
        assertTrue(url.matches("jdbc:postgresql://localhost:\\d+/postgres.*"), url);
    }
}
