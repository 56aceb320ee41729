package dev.poolgoaway.wire;

import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.Properties;

/**
 * The wire-layer code README.md and docs/wire-layer.md show, compiled with the tests (DocSnippetsTest keeps the docs
 * equal to it). The running versions of the same calls are in RealPostgresTest and ThroughGoAwayProxyTest.
 */
final class DocExamples {

    private DocExamples() {
    }

    static void direct() throws SQLException, IOException {
        // tag::direct[]
        Properties props = PgGoAway.install(new Properties());   // socketFactory and sslfactory, nothing else
        props.setProperty("user", "app");
        try (Connection c = DriverManager.getConnection("jdbc:postgresql://db/app", props)) {
            ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
            signals.poll();                      // idle connection: read what the server sent, keep it for pgjdbc
            if (signals.goAwayReceived()) {      // libpq's PQgoAwayReceived()
                // close this connection when convenient
            }
        }
        // end::direct[]
    }

    static void signals(Connection connection) throws SQLException, IOException {
        // tag::signals[]
        Properties props = PgGoAway.install(new Properties());
        ConnectionSignals signals = PgGoAway.signals(connection).orElseThrow();
        signals.poll();                  // for an idle connection: see below
        signals.goAwayReceived();        // libpq's PQgoAwayReceived()
        // end::signals[]
    }

    static Properties draft() {
        // tag::draft[]
        Properties props = new Properties();
        props.setProperty(PgGoAway.GOAWAY_REQUEST, "extension");   // a server built from the 2026 drafts
        PgGoAway.install(props);
        // end::draft[]
        return props;
    }
}
