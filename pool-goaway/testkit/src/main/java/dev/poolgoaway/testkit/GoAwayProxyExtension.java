package dev.poolgoaway.testkit;

import java.io.IOException;
import java.lang.reflect.Method;
import java.security.GeneralSecurityException;
import java.util.Locale;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Function;

import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ExtensionContext.Namespace;
import org.junit.jupiter.api.extension.ExtensionContext.Store;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolutionException;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.platform.commons.support.AnnotationSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * JUnit extension behind {@link GoAwayProxyTest}. It resolves parameters of three types:
 *
 * <ul>
 * <li>{@link PostgresUpstream}: a real PostgreSQL server, started when first asked for and shared by the test class
 * (and its {@code @Nested} classes), stopped after the class;
 * <li>{@link GoAwayProxy}: a proxy over that server, started when first asked for in a context and closed when that
 * context ends: a fresh one per test method, shared with the method's {@code @BeforeEach} and {@code @AfterEach}; one
 * asked for in {@code @BeforeAll} lives for the whole class and is the one its test methods get. It offers TLS if
 * {@link GoAwayProxyTest#tls()} says so;
 * <li>{@link TestCertificates}: the certificates of this JVM, to trust the proxy's TLS certificate.
 * </ul>
 *
 * <p>The server is embedded PostgreSQL 18 ({@link EmbeddedUpstream}) unless {@value #UPSTREAM_PROPERTY} is
 * {@code testcontainers}, as a system property or a JUnit configuration parameter: then a {@link ContainerUpstream}
 * if Docker is available, and embedded PostgreSQL with a warning if not, so that a test run never fails or skips for
 * want of Docker. The choice is made once per test run.
 *
 * <p>The servers and proxies are kept in JUnit's extension store, which closes them when their context ends.
 *
 * <p>Runs on JUnit Jupiter 5.10 and later, JUnit 6 included: it uses only API that all of them have.
 */
public final class GoAwayProxyExtension implements ParameterResolver {

    /** Selects the upstream: {@code embedded} (the default) or {@code testcontainers}. */
    public static final String UPSTREAM_PROPERTY = "poolgoaway.testkit.upstream";

    private static final Logger log = LoggerFactory.getLogger(GoAwayProxyExtension.class);

    private static final Namespace NAMESPACE = Namespace.create(GoAwayProxyExtension.class);

    /** Where the upstream of a test class comes from. */
    enum UpstreamKind {
        EMBEDDED {
            @Override
            PostgresUpstream start() throws IOException {
                return EmbeddedUpstream.start();
            }
        },
        TESTCONTAINERS {
            @Override
            PostgresUpstream start() {
                // Only reached once ContainerUpstream.dockerAvailable() said yes, so Testcontainers is there.
                return ContainerUpstream.start();
            }
        };

        abstract PostgresUpstream start() throws IOException;

        /** @return the value of {@value GoAwayProxyExtension#UPSTREAM_PROPERTY} that selects this kind */
        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    @Override
    public boolean supportsParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        // Exact types: a parameter declared as, say, Object or AutoCloseable is somebody else's.
        Class<?> type = parameterContext.getParameter().getType();
        return type == PostgresUpstream.class || type == GoAwayProxy.class || type == TestCertificates.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        Class<?> type = parameterContext.getParameter().getType();
        if (type == TestCertificates.class) {
            return TestCertificates.get();
        }
        if (type == PostgresUpstream.class) {
            return upstream(extensionContext);
        }
        return proxy(extensionContext);
    }

    /**
     * Decides where the upstream comes from. Logs the choice at INFO, and a warning when Testcontainers was asked for
     * but Docker is not available.
     *
     * @param requested the value of {@value #UPSTREAM_PROPERTY}; {@code null} or blank for the default
     * @param dockerAvailable asked only if {@code testcontainers} is requested
     * @return {@link UpstreamKind#TESTCONTAINERS} if requested and Docker is available, else
     *     {@link UpstreamKind#EMBEDDED}
     * @throws ExtensionConfigurationException if {@code requested} names neither: a typo should not silently pick
     *     another server
     */
    static UpstreamKind select(String requested, BooleanSupplier dockerAvailable) {
        UpstreamKind kind = parse(requested);
        if (kind == UpstreamKind.TESTCONTAINERS && !dockerAvailable.getAsBoolean()) {
            log.warn("{}={} but Docker is not available: using {} PostgreSQL instead", UPSTREAM_PROPERTY, kind,
                    UpstreamKind.EMBEDDED);
            kind = UpstreamKind.EMBEDDED;
        }
        log.info("PostgreSQL upstream for GoAwayProxy tests: {}", kind);
        return kind;
    }

    private static UpstreamKind parse(String requested) {
        if (requested == null || requested.isBlank()) {
            return UpstreamKind.EMBEDDED;
        }
        String value = requested.trim().toLowerCase(Locale.ROOT);
        for (UpstreamKind kind : UpstreamKind.values()) {
            if (kind.toString().equals(value)) {
                return kind;
            }
        }
        throw new ExtensionConfigurationException(UPSTREAM_PROPERTY + "=" + requested
                + " is not an upstream: expected " + UpstreamKind.EMBEDDED + " or " + UpstreamKind.TESTCONTAINERS);
    }

    private static PostgresUpstream upstream(ExtensionContext context) {
        return getOrCompute(testClassContext(context).getStore(NAMESPACE), PostgresUpstream.class,
                key -> new Stored<>(startUpstream(context))).value();
    }

    private static PostgresUpstream startUpstream(ExtensionContext context) {
        // Once per test run: the property does not change, and asking Docker can take seconds.
        UpstreamKind kind = getOrCompute(context.getRoot().getStore(NAMESPACE), UpstreamKind.class,
                key -> select(context.getConfigurationParameter(UPSTREAM_PROPERTY).orElse(null),
                        ContainerUpstream::dockerAvailable));
        try {
            PostgresUpstream upstream = kind.start();
            log.debug("{} is the upstream of {}", upstream, context.getRequiredTestClass().getName());
            return upstream;
        } catch (IOException e) {
            throw new ParameterResolutionException("could not start the " + kind + " PostgreSQL upstream", e);
        }
    }

    private static GoAwayProxy proxy(ExtensionContext context) {
        // Outside getOrCompute: the upstream may have to be started, in this same store for a class context.
        PostgresUpstream upstream = upstream(context);
        return getOrCompute(context.getStore(NAMESPACE), GoAwayProxy.class,
                key -> new Stored<>(startProxy(context, upstream))).value();
    }

    private static GoAwayProxy startProxy(ExtensionContext context, PostgresUpstream upstream) {
        String name = context.getRequiredTestClass().getSimpleName()
                + context.getTestMethod().map(Method::getName).map(method -> "." + method).orElse("");
        GoAwayProxy.Builder builder = GoAwayProxy.builder().upstream(upstream).name(name);
        try {
            if (tls(context)) {
                builder.tls(TestCertificates.get().serverContext());
            }
            GoAwayProxy proxy = builder.start();
            log.debug("proxy {} on {}:{} over {}", name, proxy.host(), proxy.port(), upstream);
            return proxy;
        } catch (IOException | GeneralSecurityException e) {
            throw new ParameterResolutionException("could not start a GoAwayProxy over " + upstream, e);
        }
    }

    private static boolean tls(ExtensionContext context) {
        // On the test class or, for a @Nested class, the nearest enclosing one that has it (walked by hand:
        // ExtensionContext.getEnclosingTestClasses() is JUnit 5.12+). Absent when the extension is registered with
        // @ExtendWith directly: no TLS then.
        for (Optional<ExtensionContext> c = Optional.of(context); c.flatMap(ExtensionContext::getTestClass).isPresent();
                c = c.get().getParent()) {
            Optional<GoAwayProxyTest> annotation = AnnotationSupport.findAnnotation(c.get().getRequiredTestClass(),
                    GoAwayProxyTest.class);
            if (annotation.isPresent()) {
                return annotation.get().tls();
            }
        }
        return false;
    }

    /**
     * The one store look-up that JUnit 5.10 to 6 all have: JUnit 6 deprecates {@code getOrComputeIfAbsent} in
     * favour of {@code computeIfAbsent}, which JUnit 5 lacks (calling it there is a {@link NoSuchMethodError}).
     */
    @SuppressWarnings({"deprecation", "unchecked"})   // the JUnit 5 API, on purpose; the key's type is the value's
    private static <V> V getOrCompute(Store store, Class<?> key, Function<Class<?>, V> create) {
        return (V) store.getOrComputeIfAbsent(key, create);
    }

    /**
     * A server or proxy in the store, closed when its context ends on every JUnit: JUnit 5.13 and later close a
     * stored {@link AutoCloseable} (and then ignore {@link Store.CloseableResource}), earlier ones close only a
     * {@code CloseableResource}. Either way it is closed once.
     */
    // deprecation: CloseableResource is deprecated in JUnit 5.13+, and the only close that JUnit 5.10-5.12 do.
    // try: close() declares AutoCloseable's Exception (an InterruptedException among them) for the values' sake;
    // only JUnit's store calls it, never a try-with-resources that could swallow an interrupt.
    @SuppressWarnings({"deprecation", "try"})
    record Stored<T extends AutoCloseable>(T value) implements AutoCloseable, Store.CloseableResource {
        @Override
        public void close() throws Exception {
            value.close();
        }
    }

    /** @return the context of the outermost test class, so that {@code @Nested} classes share its upstream */
    private static ExtensionContext testClassContext(ExtensionContext context) {
        ExtensionContext current = context;
        for (Optional<ExtensionContext> parent = current.getParent();
                parent.flatMap(ExtensionContext::getTestClass).isPresent();
                parent = current.getParent()) {
            current = parent.get();
        }
        return current;
    }
}
