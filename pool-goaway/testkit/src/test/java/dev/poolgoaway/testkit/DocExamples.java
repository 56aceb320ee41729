package dev.poolgoaway.testkit;

import java.io.IOException;
import java.security.GeneralSecurityException;

/**
 * The test-kit code docs/testkit.md shows, compiled with the tests (DocSnippetsTest keeps the docs equal to it).
 * {@link #proxy} also runs, in DocExamplesTest.
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
}
