package dev.poolgoaway.wire;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Date;
import java.util.Properties;

import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;

/**
 * One real PostgreSQL 18 per test JVM, with TLS on (a CA and a server certificate for {@code localhost} made at
 * start) and a SCRAM-only role for channel-binding tests. Trust for everyone else on loopback.
 */
final class TestPostgres {

    static final String SCRAM_USER = "scram_user";
    static final String SCRAM_PASSWORD = "s3cret-scram";

    private static TestPostgres instance;

    final EmbeddedPostgres pg;
    final Path rootCert;

    private TestPostgres(EmbeddedPostgres pg, Path rootCert) {
        this.pg = pg;
        this.rootCert = rootCert;
    }

    static synchronized TestPostgres get() {
        if (instance == null) {
            try {
                instance = start();
            } catch (Exception e) {
                throw new IllegalStateException("could not start the embedded PostgreSQL for tests", e);
            }
        }
        return instance;
    }

    int port() {
        return pg.getPort();
    }

    String url(String host) {
        return "jdbc:postgresql://" + host + ":" + port() + "/postgres";
    }

    /** A connection through the wire layer, as user postgres, with extra properties. */
    Connection connect(String... keyValues) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "postgres");
        for (int i = 0; i < keyValues.length; i += 2) {
            p.setProperty(keyValues[i], keyValues[i + 1]);
        }
        return DriverManager.getConnection(url("localhost"), PgGoAway.install(p));
    }

    private static TestPostgres start() throws Exception {
        Path dir = Files.createTempDirectory("pool-goaway-pg");
        dir.toFile().deleteOnExit();
        Path rootCert = dir.resolve("root.crt");
        Path serverCert = dir.resolve("server.crt");
        Path serverKey = dir.resolve("server.key");
        writeCertificates(rootCert, serverCert, serverKey);
        Path hba = dir.resolve("pg_hba.conf");
        Files.writeString(hba, String.join("\n",
                "local all all trust",
                "host all " + SCRAM_USER + " 127.0.0.1/32 scram-sha-256",
                "host all " + SCRAM_USER + " ::1/128 scram-sha-256",
                "host all all 127.0.0.1/32 trust",
                "host all all ::1/128 trust", ""));
        EmbeddedPostgres pg = EmbeddedPostgres.builder()
                .setServerConfig("ssl", "on")
                .setServerConfig("ssl_cert_file", serverCert.toString())
                .setServerConfig("ssl_key_file", serverKey.toString())
                .setServerConfig("hba_file", hba.toString())
                .setServerConfig("max_connections", "200")
                .start();
        try (Connection c = pg.getPostgresDatabase().getConnection(); Statement s = c.createStatement()) {
            s.execute("create role " + SCRAM_USER + " login password '" + SCRAM_PASSWORD + "'");
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                pg.close();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }));
        return new TestPostgres(pg, rootCert);
    }

    private static void writeCertificates(Path rootCert, Path serverCert, Path serverKey) throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("RSA");
        gen.initialize(2048, new SecureRandom());
        KeyPair caKeys = gen.generateKeyPair();
        KeyPair serverKeys = gen.generateKeyPair();
        Date from = new Date(System.currentTimeMillis() - 3_600_000L);
        Date to = new Date(System.currentTimeMillis() + 86_400_000L);
        X500Name caName = new X500Name("CN=pool-goaway test CA");
        X509v3CertificateBuilder ca = new JcaX509v3CertificateBuilder(caName, BigInteger.ONE, from, to, caName,
                caKeys.getPublic())
                .addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        X509Certificate caCert = sign(ca, caKeys);
        X509v3CertificateBuilder server = new JcaX509v3CertificateBuilder(caName, BigInteger.TWO, from, to,
                new X500Name("CN=localhost"), serverKeys.getPublic())
                .addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName[] {
                    new GeneralName(GeneralName.dNSName, "localhost"),
                    new GeneralName(GeneralName.iPAddress, "127.0.0.1")}));
        X509Certificate cert = sign(server, caKeys);
        writePem(rootCert, caCert);
        writePem(serverCert, cert);
        writePem(serverKey, serverKeys.getPrivate());
        Files.setPosixFilePermissions(serverKey, PosixFilePermissions.fromString("rw-------"));
    }

    private static X509Certificate sign(X509v3CertificateBuilder builder, KeyPair issuer) throws Exception {
        return new JcaX509CertificateConverter().getCertificate(
                builder.build(new JcaContentSignerBuilder("SHA256withRSA").build(issuer.getPrivate())));
    }

    private static void writePem(Path file, Object object) throws IOException {
        try (Writer w = Files.newBufferedWriter(file); JcaPEMWriter pem = new JcaPEMWriter(w)) {
            pem.writeObject(object);
        }
    }
}
