package dev.poolgoaway.testkit;

import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A host name that this JVM resolves from a hosts file the test re-points, for DNS switchovers without a DNS server:
 * the JVM's own resolver and its cache, as an application's pgjdbc uses them. The JVM must be started with
 * {@code -Djdk.net.hosts.file=<file>} (the JVM then resolves every name from that file alone, which this class
 * writes with {@code localhost} in it) and, for switchovers that take seconds rather than the default 30 s, a short
 * cache: {@code -Dsun.net.inetaddr.ttl=1 -Dsun.net.inetaddr.negative.ttl=1}. Both are read when the JVM starts.
 *
 * <pre>{@code
 * DnsName name = DnsName.of("db.example.test");
 * name.pointTo("127.0.0.2");      // blue, EmbeddedUpstream.startOn("127.0.0.2", port, Map.of())
 * // ... a pool on jdbc:postgresql://db.example.test:<port>/postgres
 * name.pointTo("127.0.0.3");      // green: the switchover
 * }</pre>
 */
public final class DnsName {

    /** The JDK's system property naming the hosts file its resolver reads instead of the system's. */
    public static final String HOSTS_FILE = "jdk.net.hosts.file";

    private final String name;
    private final Path hosts;

    private DnsName(String name, Path hosts) {
        this.name = name;
        this.hosts = hosts;
    }

    /** @return true if this JVM resolves names from a hosts file ({@value #HOSTS_FILE} is set) */
    public static boolean available() {
        return System.getProperty(HOSTS_FILE) != null;
    }

    /**
     * @param name the host name; one {@code DnsName} per hosts file (the file holds this name and {@code localhost})
     * @return the name, answering nothing until {@link #pointTo}
     * @throws IllegalStateException if this JVM was not started with {@value #HOSTS_FILE}
     */
    public static DnsName of(String name) {
        Objects.requireNonNull(name, "name");
        String file = System.getProperty(HOSTS_FILE);
        if (file == null) {
            throw new IllegalStateException("this JVM resolves names through the system's resolver: start it with -D"
                    + HOSTS_FILE + "=<file> (and -Dsun.net.inetaddr.ttl=1) to re-point names in a test");
        }
        return new DnsName(name, Path.of(file).toAbsolutePath());
    }

    /** @return the host name */
    public String name() {
        return name;
    }

    /**
     * Re-points the name, in one move of the file, so that no lookup reads half of it. The JVM answers the new
     * addresses once its cached answer expires.
     *
     * @param addresses what the name resolves to, in this order (pgjdbc connects to the first); none to make it
     *                  unknown
     * @throws IOException if the file cannot be written
     */
    public void pointTo(String... addresses) throws IOException {
        StringBuilder b = new StringBuilder("127.0.0.1 localhost\n");
        for (String a : addresses) {
            b.append(a).append(' ').append(name).append('\n');
        }
        Files.createDirectories(hosts.getParent());
        Path next = hosts.resolveSibling(hosts.getFileName() + ".next");
        Files.writeString(next, b);
        Files.move(next, hosts, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** @return what the JVM resolves the name to now (its cache included), in order; empty if it does not */
    public List<String> addresses() {
        try {
            return Arrays.stream(InetAddress.getAllByName(name)).map(InetAddress::getHostAddress).toList();
        } catch (UnknownHostException e) {
            return List.of();
        }
    }

    @Override
    public String toString() {
        return name + " (from " + hosts + ")";
    }
}
