package dev.poolgoaway.testkit;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;

import javax.sql.DataSource;

/**
 * The test-kit code docs/testkit.md shows, compiled with the tests (DocSnippetsTest keeps the docs equal to it).
 * Both also run, in DocExamplesTest.
 */
final class DocExamples {

    private DocExamples() {
    }

    static String proxy(PostgresUpstream blue) throws IOException, GeneralSecurityException {
        // tag::proxy[]
        GoAwayProxy proxy = GoAwayProxy.builder()
                .upstream(blue)                                   // or .upstream("db.internal", 5432)
                .tls(TestCertificates.get().serverContext())      // optional: offer TLS to clients
                .name("drill")                                    // thread and log names
                .start();                                         // listens on localhost, ephemeral port
        String url = proxy.jdbcUrl("postgres");
        // end::proxy[]
        proxy.close();
        return url;
    }

    static Queue<Duration> load(DataSource pool) throws Exception {
        // tag::load[]
        Queue<Duration> borrows = new ConcurrentLinkedQueue<>();
        try (LoadGenerator load = LoadGenerator.builder()
                .workers(8)
                .requestsPerSecond(400)                              // open-loop; leave out for closed-loop
                .request(LoadGenerator.transaction(Duration.ofMillis(2)))
                .observer(outcome -> borrows.add(outcome.borrow()))  // every request's times and failure
                .start(pool)) {
            // ... switch over, wait for the drain ...
            await().atMost(Duration.ofSeconds(10)).until(() -> load.succeeded() >= 400);
            assertEquals(0, load.failed(), load::failureSummary);
        }   // close() waits for the requests in flight: then issued() == succeeded() + failed()
        // end::load[]
        return borrows;
    }
}
