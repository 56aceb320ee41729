package dev.poolgoaway.testkit;

import java.io.IOException;
import java.io.Writer;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Date;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;

import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A throwaway certificate authority and a server certificate it signed, for TLS in tests: one pair per JVM, made on
 * first use and valid for a day.
 *
 * <p>The server certificate is for {@code CN=localhost} with subject alternative names {@code localhost} and
 * {@code 127.0.0.1}, so clients that verify the host name (pgjdbc's {@code sslmode=verify-full}) accept it when they
 * trust the CA. Keys are RSA 2048, signatures SHA-256.
 *
 * <p>Serve it from a Java endpoint with {@link #serverContext()}, or from PostgreSQL by {@linkplain #write writing}
 * the PEM files and pointing {@code ssl_cert_file} and {@code ssl_key_file} at them; clients trust the CA file.
 */
public final class TestCertificates {

    private static final Logger log = LoggerFactory.getLogger(TestCertificates.class);

    /** Backdated so that a client clock slightly behind ours still accepts the certificates. */
    private static final long NOT_BEFORE_MILLIS = 3_600_000L;
    private static final long NOT_AFTER_MILLIS = 86_400_000L;

    private static TestCertificates instance;

    private final X509Certificate ca;
    private final KeyPair caKeys;
    private final X509Certificate server;
    private final KeyPair serverKeys;

    private TestCertificates(X509Certificate ca, KeyPair caKeys, X509Certificate server, KeyPair serverKeys) {
        this.ca = ca;
        this.caKeys = caKeys;
        this.server = server;
        this.serverKeys = serverKeys;
    }

    /**
     * The certificates of this JVM, made on the first call. Making RSA keys takes a noticeable fraction of a second,
     * and every server and client in a test run should agree on one CA, hence one shared instance.
     *
     * @return the shared instance
     * @throws IllegalStateException if the JVM cannot make RSA keys or sign certificates
     */
    public static synchronized TestCertificates get() {
        if (instance == null) {
            try {
                instance = generate();
            } catch (GeneralSecurityException | OperatorCreationException | IOException e) {
                throw new IllegalStateException("could not make the test certificates", e);
            }
        }
        return instance;
    }

    private static TestCertificates generate()
            throws GeneralSecurityException, OperatorCreationException, IOException {
        KeyPair caKeys = rsaKeys();
        long now = System.currentTimeMillis();
        Date from = new Date(now - NOT_BEFORE_MILLIS);
        Date to = new Date(now + NOT_AFTER_MILLIS);
        X500Name caName = new X500Name("CN=pool-goaway test CA");
        X509Certificate ca = sign(new JcaX509v3CertificateBuilder(caName, BigInteger.ONE, from, to, caName,
                caKeys.getPublic())
                .addExtension(Extension.basicConstraints, true, new BasicConstraints(true)), caKeys);
        TestCertificates made = withServer(ca, caKeys, BigInteger.TWO);
        log.debug("made a test CA and a server certificate for localhost, valid until {}", to);
        return made;
    }

    private static KeyPair rsaKeys() throws GeneralSecurityException {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("RSA");
        gen.initialize(2048, new SecureRandom());
        return gen.generateKeyPair();
    }

    private static TestCertificates withServer(X509Certificate ca, KeyPair caKeys, BigInteger serial)
            throws GeneralSecurityException, OperatorCreationException, IOException {
        KeyPair serverKeys = rsaKeys();
        X500Name caName = X500Name.getInstance(ca.getSubjectX500Principal().getEncoded());
        X509Certificate server = sign(new JcaX509v3CertificateBuilder(caName, serial, ca.getNotBefore(),
                ca.getNotAfter(), new X500Name("CN=localhost"), serverKeys.getPublic())
                .addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName[] {
                    new GeneralName(GeneralName.dNSName, "localhost"),
                    new GeneralName(GeneralName.iPAddress, "127.0.0.1")})), caKeys);
        return new TestCertificates(ca, caKeys, server, serverKeys);
    }

    /**
     * Another node of the same service: a server certificate for the same names, with a key of its own, signed by
     * the same CA (as cert-manager issues one per pod). Clients that trust the CA accept either; the two differ
     * byte for byte.
     *
     * @return the same CA with a new server certificate and key
     * @throws IllegalStateException if the JVM cannot make RSA keys or sign certificates
     */
    public TestCertificates anotherServer() {
        try {
            return withServer(ca, caKeys, server.getSerialNumber().add(BigInteger.ONE)
                    .add(BigInteger.valueOf(new SecureRandom().nextInt(1 << 30))));
        } catch (GeneralSecurityException | OperatorCreationException | IOException e) {
            throw new IllegalStateException("could not make another server certificate", e);
        }
    }

    /** @return the server certificate */
    public X509Certificate serverCertificate() {
        return server;
    }

    /**
     * Writes the CA certificate, the server certificate and the server's private key as PEM files. The key file gets
     * mode 0600 because PostgreSQL refuses to start with a key that others can read.
     *
     * @param rootCert where the CA certificate goes (what clients trust, e.g. pgjdbc's {@code sslrootcert})
     * @param serverCert where the server certificate goes (PostgreSQL's {@code ssl_cert_file})
     * @param serverKey where the server's private key goes (PostgreSQL's {@code ssl_key_file})
     * @throws IOException if a file cannot be written or its permissions set (needs a POSIX file system)
     */
    public void write(Path rootCert, Path serverCert, Path serverKey) throws IOException {
        writePem(rootCert, ca);
        writePem(serverCert, server);
        writePem(serverKey, serverKeys.getPrivate());
        Files.setPosixFilePermissions(serverKey, PosixFilePermissions.fromString("rw-------"));
    }

    /**
     * A TLS context for the server side: it presents the server certificate, with the CA in the chain. It does not
     * ask clients for certificates.
     *
     * @return a new, initialised context
     * @throws GeneralSecurityException if the JVM's TLS provider rejects the keys
     */
    public SSLContext serverContext() throws GeneralSecurityException {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try {
            ks.load(null, null);
        } catch (IOException e) {
            // Loading an empty in-memory key store reads nothing, so this cannot happen.
            throw new IllegalStateException(e);
        }
        // The key store never leaves this method, so its password only has to be non-empty.
        char[] password = "test".toCharArray();
        ks.setKeyEntry("server", serverKeys.getPrivate(), password, new Certificate[] {server, ca});
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, password);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), null, new SecureRandom());
        return context;
    }

    private static X509Certificate sign(X509v3CertificateBuilder builder, KeyPair issuer)
            throws OperatorCreationException, GeneralSecurityException {
        return new JcaX509CertificateConverter().getCertificate(
                builder.build(new JcaContentSignerBuilder("SHA256withRSA").build(issuer.getPrivate())));
    }

    private static void writePem(Path file, Object object) throws IOException {
        try (Writer w = Files.newBufferedWriter(file); JcaPEMWriter pem = new JcaPEMWriter(w)) {
            pem.writeObject(object);
        }
    }
}
