package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;
import org.slf4j.simple.SimpleLogger;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.wire.PgGoAway;

/**
 * HikariCP on the module path, as a modular application runs it: a JVM launched with HikariCP (and SLF4J, which it
 * requires) as named modules, pool-goaway and pgjdbc on the class path. HikariCP exports but does not open
 * {@code com.zaxxer.hikari.pool}; without {@code --add-opens} pool-goaway cannot reach the pool, and says so once;
 * with it, the evictor runs on HikariCP's internals.
 */
class ModulePathTest {

    private static GoAwayProxy proxy;

    @BeforeAll
    static void server() throws Exception {
        proxy = GoAwayProxy.builder().upstream(EmbeddedUpstream.shared("blue")).name("jpms-proxy").start();
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    /** The application in the launched JVM: one pool, one query, then what the evictor says. */
    public static final class Application {
        public static void main(String[] args) throws Exception {
            HikariConfig config = new HikariConfig();
            config.setJdbcUrl(args[0]);
            config.setUsername("postgres");
            config.setMaximumPoolSize(1);
            config.setPoolName("jpms");
            GoAwayEvictor evictor = PoolGoAway.install(config);
            try (HikariDataSource ds = new HikariDataSource(config); Connection c = ds.getConnection();
                    Statement s = c.createStatement()) {
                s.execute("select 1");
                System.out.println("module=" + HikariDataSource.class.getModule().getName());
                System.out.println("running=" + evictor.running());
                System.out.println("fallback=" + evictor.publicApiFallback());
                System.out.println("problem=" + evictor.problem().orElse(""));
            }
        }
    }

    private record Run(List<String> out, String err) {
        String value(String key) {
            return out.stream().filter(l -> l.startsWith(key + "=")).map(l -> l.substring(key.length() + 1))
                    .findFirst().orElseThrow(() -> new AssertionError("no " + key + " in " + out + "\n" + err));
        }
    }

    private static Run launch(String... jvmOptions) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(List.of(jvmOptions));
        command.addAll(List.of("--module-path", path(HikariDataSource.class, LoggerFactory.class, SimpleLogger.class),
                "--add-modules", "com.zaxxer.hikari,org.slf4j.simple",
                "-cp", path(PoolGoAway.class, PgGoAway.class, org.postgresql.Driver.class, ModulePathTest.class),
                Application.class.getName(), proxy.jdbcUrl("postgres")));
        Process p = new ProcessBuilder(command).start();
        p.getOutputStream().close();
        var err = p.getErrorStream().readAllBytes();
        var out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the launched JVM ends");
        String errText = new String(err, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), errText);
        return new Run(new String(out, StandardCharsets.UTF_8).lines().toList(), errText);
    }

    /** @return the jars or class directories the classes were loaded from */
    private static String path(Class<?>... classes) {
        List<String> entries = new ArrayList<>();
        for (Class<?> c : classes) {
            try {
                entries.add(Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString());
            } catch (URISyntaxException e) {
                throw new IllegalStateException(e);
            }
        }
        return String.join(File.pathSeparator, entries);
    }

    @Test
    void withoutAddOpensThePoolRunsAsPlainHikariAndPoolGoAwaySaysSoOnceNamingTheFlag() throws Exception {
        Run run = launch();
        assertEquals("com.zaxxer.hikari", run.value("module"), "HikariCP is a named module");
        assertEquals("false", run.value("running"));
        String problem = run.value("problem");
        assertTrue(problem.startsWith("jpms - ") && problem.contains(
                "--add-opens com.zaxxer.hikari/com.zaxxer.hikari.pool=ALL-UNNAMED"), problem);
        assertEquals(1, run.err().lines().filter(l -> l.contains("ERROR") && l.contains("pool-goaway")).count(),
                run.err());
    }

    @Test
    void withAddOpensTheEvictorRunsOnHikarisInternals() throws Exception {
        Run run = launch("--add-opens", "com.zaxxer.hikari/com.zaxxer.hikari.pool=ALL-UNNAMED");
        assertEquals("com.zaxxer.hikari", run.value("module"));
        assertEquals("true", run.value("running"));
        assertEquals("false", run.value("fallback"));
        assertEquals("", run.value("problem"));
        assertTrue(run.err().lines().noneMatch(l -> l.contains("ERROR")), run.err());
    }
}
