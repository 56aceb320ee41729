package dev.poolgoaway.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.Pooler;

/**
 * Every code snippet in README.md and docs/ is code that the build compiles or runs.
 *
 * <ul>
 *   <li>A {@code java}, {@code properties}, {@code yaml} or {@code json} block is preceded by
 *       {@code <!-- snippet: path -->} (a whole file) or {@code <!-- snippet: path#tag -->} (the lines between
 *       {@code tag::tag[]} and {@code end::tag[]} in that file), and equals that text, indentation aside. The files
 *       are sources, test resources or configuration the build compiles or loads.</li>
 *   <li>An {@code xml} block without a marker is a Maven dependency on one of this build's modules.</li>
 *   <li>A {@code sh} block's {@code ./mvnw} commands name profiles and modules that exist.</li>
 *   <li>A {@code sql} block runs on a real PostgreSQL 18, statement by statement (the admin-message patch's
 *       three-argument {@code pg_terminate_backend} is defined there as the terminate-with-message patch declares
 *       it, over the server's two-argument one; the {@code disconnect_requested} patch's
 *       {@code pg_request_disconnect_backend(pid)} as that patch describes it, answering whether the pid is a client
 *       backend, since the released server has no such setting to turn on). Preceded by
 *       {@code <!-- run on: pgbouncer -->} it runs on a real PgBouncer's admin console, by
 *       {@code <!-- run on: pgpool -->} through a real pgpool-II, each in front of that PostgreSQL, with psql
 *       (skipped where the pooler or psql is not installed: CI installs them).</li>
 *   <li>Blocks without a language are diagrams.</li>
 * </ul>
 */
class DocSnippetsTest {

    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final Pattern FENCE = Pattern.compile("^\\s*```(\\w*)\\s*$");
    private static final Pattern MARKER = Pattern.compile("^<!-- snippet: ([^#\\s]+)(?:#([\\w-]+))? -->$");
    private static final Pattern RUN_ON = Pattern.compile("^<!-- run on: (pgbouncer|pgpool) -->$");
    private static final List<String> QUOTED = List.of("java", "properties", "yaml", "json");

    private record Snippet(Path doc, int line, String language, String marker, String runOn, String text) {
        @Override
        public String toString() {
            return ROOT.relativize(doc) + ":" + line + " (" + language + ")";
        }
    }

    @TestFactory
    Stream<DynamicTest> everySnippetIsBuiltCode() throws IOException {
        List<Snippet> snippets = new ArrayList<>();
        for (Path doc : docs()) {
            snippets.addAll(snippets(doc));
        }
        assertFalse(snippets.isEmpty(), "no snippets found under " + ROOT);
        return snippets.stream().map(s -> DynamicTest.dynamicTest(s.toString(), () -> check(s)));
    }

    @Test
    void theReadmeTestCommandIsTheOneCiRuns() throws IOException {
        String readme = Files.readString(ROOT.resolve("README.md"));
        String ci = Files.readString(ROOT.resolve(".ci/run"));
        assertTrue(readme.contains("```sh\n./mvnw -B verify\n```"), "README shows the test command");
        assertTrue(ci.lines().anyMatch(l -> l.equals("./mvnw -B verify")), ".ci/run runs it");
    }

    private static List<Path> docs() throws IOException {
        List<Path> docs = new ArrayList<>(List.of(ROOT.resolve("README.md")));
        try (Stream<Path> files = Files.list(ROOT.resolve("docs"))) {
            files.filter(p -> p.toString().endsWith(".md")).sorted().forEach(docs::add);
        }
        return docs;
    }

    private static List<Snippet> snippets(Path doc) throws IOException {
        List<String> lines = Files.readAllLines(doc);
        List<Snippet> found = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            Matcher open = FENCE.matcher(lines.get(i));
            if (!open.matches()) {
                continue;
            }
            int start = i;
            StringBuilder text = new StringBuilder();
            for (i++; i < lines.size() && !lines.get(i).strip().startsWith("```"); i++) {
                text.append(lines.get(i)).append('\n');
            }
            String before = start > 0 ? lines.get(start - 1).strip() : "";
            String marker = MARKER.matcher(before).matches() ? before : null;
            Matcher runOn = RUN_ON.matcher(before);
            found.add(new Snippet(doc, start + 1, open.group(1), marker, runOn.matches() ? runOn.group(1) : null,
                    text.toString()));
        }
        return found;
    }

    private static void check(Snippet s) throws Exception {
        if (s.marker() != null) {
            assertEquals(quoted(s), dedent(s.text()), s + " differs from its source " + s.marker());
        } else if (QUOTED.contains(s.language())) {
            fail(s + " has no <!-- snippet: path#tag --> marker naming the built code it shows");
        } else if (s.language().equals("xml")) {
            checkDependency(s);
        } else if (s.language().equals("sh")) {
            checkCommands(s);
        } else if (s.language().equals("sql")) {
            runSql(s);
        } else {
            assertTrue(s.language().isEmpty() || s.language().equals("text"),
                    s + ": unknown snippet language " + s.language());
        }
    }

    /** The patch's signature, pg_terminate_backend(pid, timeout, message), over the released two-argument one. */
    private static final String PATCHED_TERMINATE = "create or replace function public.pg_terminate_backend("
            + "pid integer, timeout bigint, message text) returns boolean language sql "
            + "as 'select pg_catalog.pg_terminate_backend(pid, timeout)'";

    /** The disconnect_requested patch's pg_request_disconnect_backend(pid): whether pid is a client backend. */
    private static final String PATCHED_REQUEST_DISCONNECT = "create or replace function "
            + "public.pg_request_disconnect_backend(pid integer) returns boolean language sql as 'select exists("
            + "select 1 from pg_catalog.pg_stat_activity a where a.pid = $1 and a.backend_type = ''client backend'')'";

    private static EmbeddedUpstream server;
    private static final Map<Pooler.Kind, Pooler> poolers = new EnumMap<>(Pooler.Kind.class);

    @AfterAll
    static void stopServers() throws Exception {
        for (Pooler pooler : poolers.values()) {
            pooler.close();
        }
        if (server != null) {
            server.close();
        }
    }

    private static void runSql(Snippet s) throws Exception {
        if (server == null) {
            server = EmbeddedUpstream.start();
        }
        if (s.runOn() != null) {
            runOnPooler(s, Pooler.Kind.valueOf(s.runOn().toUpperCase(Locale.ROOT)));
            return;
        }
        try (Connection c = DriverManager.getConnection("jdbc:postgresql://" + server.host() + ":" + server.port()
                + "/" + server.database(), server.user(), server.password()); Statement st = c.createStatement()) {
            st.execute(PATCHED_TERMINATE);
            st.execute(PATCHED_REQUEST_DISCONNECT);
            for (String statement : statements(s)) {
                st.execute(statement);
            }
        }
    }

    /**
     * On PgBouncer's admin console, or through pgpool-II, with psql as the runbook says: pgjdbc cannot log in to
     * PgBouncer's admin console, which refuses the {@code extra_float_digits} pgjdbc always sends.
     */
    private static void runOnPooler(Snippet s, Pooler.Kind kind) throws Exception {
        Optional<String> missing = Pooler.missing(kind).or(() -> psql().isPresent() ? Optional.empty()
                : Optional.of("psql is not installed (apt-get install -y postgresql-client, as root)"));
        assumeTrue(missing.isEmpty(), () -> s + " skipped: " + missing.orElseThrow());
        Pooler pooler = poolers.get(kind);
        if (pooler == null) {
            pooler = Pooler.start(kind, server, false);
            poolers.put(kind, pooler);
        }
        Path script = Files.createTempFile("runbook", ".sql");
        try {
            Files.writeString(script, s.text());
            ProcessBuilder psql = new ProcessBuilder(psql().orElseThrow().toString(), "-X", "-v", "ON_ERROR_STOP=1",
                    "-h", pooler.host(), "-p", String.valueOf(pooler.port()), "-U", pooler.user(),
                    "-d", kind == Pooler.Kind.PGBOUNCER ? "pgbouncer" : pooler.database(), "-f", script.toString())
                    .redirectErrorStream(true);
            psql.environment().put("PGPASSWORD", pooler.password());
            Process run = psql.start();
            String output = new String(run.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(run.waitFor(1, TimeUnit.MINUTES), s + ": psql did not end");
            assertEquals(0, run.exitValue(), s + " on " + pooler + ":\n" + output + "\n" + pooler.logText());
        } finally {
            Files.delete(script);
        }
    }

    private static Optional<Path> psql() {
        return Stream.concat(Stream.of(System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)),
                Stream.of("/usr/bin", "/usr/local/bin")).map(dir -> Path.of(dir, "psql")).filter(Files::isExecutable)
                .findFirst();
    }

    /** The block's statements, each ending with a semicolon at the end of a line. */
    private static List<String> statements(Snippet s) {
        List<String> statements = Pattern.compile(";\\s*(\\n|$)").splitAsStream(s.text()).map(String::strip)
                .filter(t -> !t.isEmpty()).toList();
        assertFalse(statements.isEmpty(), s + " has no statement");
        return statements;
    }

    private static String quoted(Snippet s) throws IOException {
        Matcher m = MARKER.matcher(s.marker());
        assertTrue(m.matches());
        Path source = ROOT.resolve(m.group(1));
        assertTrue(Files.isRegularFile(source), s + ": no file " + m.group(1));
        assertTrue(isBuilt(m.group(1)), s + ": " + m.group(1) + " is not something the build compiles or loads");
        List<String> lines = Files.readAllLines(source);
        if (m.group(2) == null) {
            return dedent(String.join("\n", lines) + "\n");
        }
        String tag = m.group(2);
        int from = indexOf(lines, "tag::" + tag + "[]", 0);
        int to = indexOf(lines, "end::" + tag + "[]", from);
        assertTrue(from >= 0 && to > from, s + ": no tag::" + tag + "[] ... end::" + tag + "[] in " + m.group(1));
        StringBuilder region = new StringBuilder();
        for (String line : lines.subList(from + 1, to)) {
            if (!line.contains("tag::") && !line.contains("end::")) {
                region.append(line).append('\n');
            }
        }
        return dedent(region.toString());
    }

    private static boolean isBuilt(String path) {
        return path.contains("/src/main/") || path.contains("/src/test/") || path.endsWith("pom.xml")
                || path.startsWith("docs/grafana/");
    }

    private static int indexOf(List<String> lines, String text, int from) {
        for (int i = Math.max(from, 0); i < lines.size(); i++) {
            if (lines.get(i).contains(text)) {
                return i;
            }
        }
        return -1;
    }

    private static String dedent(String text) {
        List<String> lines = text.lines().toList();
        int indent = lines.stream().filter(l -> !l.isBlank()).mapToInt(l -> l.length() - l.stripLeading().length())
                .min().orElse(0);
        StringBuilder out = new StringBuilder();
        for (String line : lines) {
            out.append(line.isBlank() ? "" : line.substring(indent)).append('\n');
        }
        return out.toString();
    }

    private static void checkDependency(Snippet s) throws IOException {
        Matcher artifact = Pattern.compile("<artifactId>([\\w.-]+)</artifactId>").matcher(s.text());
        assertTrue(s.text().contains("<groupId>dev.poolgoaway</groupId>") && artifact.find(),
                s + ": an xml snippet without a marker must be a dependency on a pool-goaway module");
        String wanted = "<artifactId>" + artifact.group(1) + "</artifactId>";
        assertTrue(poms().stream().anyMatch(pom -> ownArtifactId(pom).equals(wanted)),
                s + ": no module " + artifact.group(1));
    }

    /** The module's own artifactId: the first one after its parent block. */
    private static String ownArtifactId(String pom) {
        Matcher m = Pattern.compile("<artifactId>[\\w.-]+</artifactId>").matcher(pom);
        return m.find(Math.max(pom.indexOf("</parent>"), 0)) ? m.group() : "";
    }

    private static void checkCommands(Snippet s) throws IOException {
        for (String line : s.text().lines().filter(l -> l.startsWith("./mvnw")).toList()) {
            Matcher profile = Pattern.compile("\\s-P([\\w,-]+)").matcher(line);
            while (profile.find()) {
                for (String id : profile.group(1).split(",")) {
                    assertTrue(profileExists(id), s + ": no Maven profile " + id + " in " + line);
                }
            }
            Matcher modules = Pattern.compile("\\s-pl\\s+([\\w/,.-]+)").matcher(line);
            while (modules.find()) {
                for (String module : modules.group(1).split(",")) {
                    assertTrue(Files.isRegularFile(ROOT.resolve(module).resolve("pom.xml")),
                            s + ": no module " + module + " in " + line);
                }
            }
        }
    }

    private static boolean profileExists(String id) throws IOException {
        return poms().stream().anyMatch(pom -> pom.contains("<id>" + id + "</id>"));
    }

    /** The text of every pom.xml of the build. */
    private static List<String> poms() throws IOException {
        List<String> poms = new ArrayList<>();
        try (Stream<Path> files = Files.walk(ROOT, 4)) {
            for (Path p : files.filter(p -> p.getFileName().toString().equals("pom.xml")
                    && !p.toString().contains("/target/")).toList()) {
                poms.add(Files.readString(p));
            }
        }
        return poms;
    }
}
