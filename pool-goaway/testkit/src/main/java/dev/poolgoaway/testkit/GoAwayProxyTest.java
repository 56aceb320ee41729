package dev.poolgoaway.testkit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Runs a test class with {@link GoAwayProxyExtension}: its test methods (and lifecycle methods) can take a
 * {@link GoAwayProxy}, a fresh one per test method, the {@link PostgresUpstream} it forwards to, one per test class,
 * and the {@link TestCertificates}.
 *
 * <pre>{@code
 * @GoAwayProxyTest
 * class DrainTest {
 *     @Test
 *     void drains(GoAwayProxy proxy, PostgresUpstream upstream) throws SQLException {
 *         try (Connection c = DriverManager.getConnection(proxy.jdbcUrl("postgres"), upstream.user(),
 *                 upstream.password())) {
 *             // ...
 *         }
 *     }
 * }
 * }</pre>
 *
 * <p>The upstream is embedded PostgreSQL unless the system property (or JUnit configuration parameter)
 * {@value GoAwayProxyExtension#UPSTREAM_PROPERTY} says {@code testcontainers}; see {@link GoAwayProxyExtension}.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Documented
@ExtendWith(GoAwayProxyExtension.class)
public @interface GoAwayProxyTest {

    /**
     * Whether the proxy offers TLS to its clients, with the {@linkplain TestCertificates#serverContext() test
     * server certificate}; clients that verify it trust the CA that {@link TestCertificates#write} writes.
     *
     * @return {@code true} to answer SSLRequest with 'S', {@code false} (the default) to refuse TLS
     */
    boolean tls() default false;
}
