package dev.poolgoaway.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import dev.poolgoaway.testkit.EmbeddedUpstream;

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
 *   <li>A {@code sql} block runs on a real PostgreSQL 18 (the admin-message patch's three-argument
 *       {@code pg_terminate_backend} is defined there as the terminate-with-message patch declares it, over the
 *       server's two-argument
 *       one).</li>
 *   <li>Blocks without a language are diagrams.</li>
 * </ul>
 */
class DocSnippetsTest {

    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final Pattern FENCE = Pattern.compile("^\\s*```(\\w*)\\s*$");
    private static final Pattern MARKER = Pattern.compile("^<!-- snippet: ([^#\\s]+)(?:#([\\w-]+))? -->$");
    private static final List<String> QUOTED = List.of("java", "properties", "yaml", "json");

    private record Snippet(Path doc, int line, String language, String marker, String text) {
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
            String marker = start > 0 && MARKER.matcher(lines.get(start - 1).strip()).matches()
                    ? lines.get(start - 1).strip() : null;
            found.add(new Snippet(doc, start + 1, open.group(1), marker, text.toString()));
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

    private static EmbeddedUpstream server;

    @AfterAll
    static void stopServer() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    private static void runSql(Snippet s) throws Exception {
        if (server == null) {
            server = EmbeddedUpstream.start();
        }
        try (Connection c = DriverManager.getConnection("jdbc:postgresql://" + server.host() + ":" + server.port()
                + "/" + server.database(), server.user(), server.password()); Statement st = c.createStatement()) {
            st.execute(PATCHED_TERMINATE);
            st.execute(s.text());
        }
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
