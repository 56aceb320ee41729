package dev.poolgoaway.hikari;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.security.Security;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Asks a connection to leave when the host name it was opened for no longer resolves to its address: the DNS name
 * of the pool's URL was re-pointed (an RDS/Aurora blue/green switchover, a Route 53 failover record, Patroni or
 * Consul DNS, a Kubernetes {@code ExternalName}). New connections follow the name; pooled ones would stay on the old
 * address until {@code maxLifetime}.
 *
 * <p>Each host is judged on its own: a connection against the host it was opened for (its {@code server()}, which
 * for a multi-host URL is the host pgjdbc picked, {@code targetServerType} included), behind a pooler against the
 * pooler's name. Hosts that are IP literals, and connections without an IP peer (unix sockets, SOCKS proxies that
 * resolve the name themselves), are never looked up.
 *
 * <p>Lookups go through the JVM's resolver, so they honour its cache ({@code networkaddress.cache.ttl}): a name is
 * looked up every {@code interval}, which costs a map lookup while the cache holds it. Safeguards: a failed or empty
 * lookup drains nothing (a WARN says so); an address goes only once it was missing from at least two consecutive
 * lookups at least a second apart, and from every lookup over the window, so that a round-robin name answering
 * with changing subsets of a stable set does not churn the pool.
 */
final class DnsLeaveSource implements LeaveSource {

    private static final Logger log = LoggerFactory.getLogger(DnsLeaveSource.class);
    /** An address must be missing from lookups that span at least this long. */
    static final long MIN_MISSING_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final long WARN_INTERVAL_NANOS = TimeUnit.MINUTES.toNanos(1);
    private static final Pattern IPV4 = Pattern.compile("\\d{1,3}(\\.\\d{1,3}){3}");

    /** Resolves a host name; the JVM's resolver in production, a fake in tests. */
    interface Resolver {
        InetAddress[] resolve(String host) throws UnknownHostException;
    }

    /** The JVM's resolver, with its cache. */
    static final Resolver JVM = InetAddress::getAllByName;

    private final String poolName;
    private final Resolver resolver;
    private final long intervalNanos;
    private final long windowNanos;
    private final Clock clock;
    private final Map<String, Host> hosts = new HashMap<>();
    /**
     * Each connection's server ({@code host:port}) to its host, null for an IP literal: parsed once per server, not
     * once per connection per run.
     */
    private final Map<String, Host> byServer = new HashMap<>();
    /** Written by the evictor's thread only; read by meters on others. */
    // Counted when a lookup has answered, each result on its own counter, so that neither meter ever goes down
    // (a lookup counted before a slow answer, less the failures counted after it, would).
    private volatile long answeredLookups;
    private volatile long failedLookups;

    /**
     * @param window an address must be absent from every lookup over this long; null for
     *               {@link #defaultWindow()}
     */
    DnsLeaveSource(String poolName, Resolver resolver, Duration interval, Duration window, Clock clock) {
        this.poolName = poolName;
        this.resolver = resolver;
        this.intervalNanos = interval.toNanos();
        this.windowNanos = Math.max(MIN_MISSING_NANOS, (window != null ? window : defaultWindow()).toNanos());
        this.clock = clock;
    }

    /** What the loop knows of one host name. */
    private static final class Host {
        final String name;
        /** Successful lookups, oldest first. */
        final Deque<Lookup> lookups = new ArrayDeque<>();
        /**
         * Addresses of the pooled connections, as the run of the last lookup saw them: the next lookup judges
         * these. Collected on that run only (connections outlive a lookup interval; the runs between would collect
         * the same addresses again).
         */
        final Set<InetAddress> connected = new HashSet<>();
        /** This run of the loop looked the name up: it collects {@link #connected}. */
        boolean collecting;
        /** Addresses the name moved away from, and since when. */
        final Map<InetAddress, Instant> gone = new HashMap<>();
        long nextAt;
        boolean looked;
        int failures;
        long lastWarn;

        Host(String name) {
            this.name = name;
        }
    }

    private record Lookup(long at, Set<InetAddress> addresses) {
    }

    @Override
    public Optional<PoolView.Heard> heard(PoolView.Signals connection) {
        // Called for every connection on every run of the loop, often twice: kept to a map lookup or two.
        Optional<InetAddress> peer = connection.peerAddress();
        if (peer.isEmpty()) {
            return Optional.empty();
        }
        String server = connection.server();
        Host h = byServer.get(server);
        if (h == null && !byServer.containsKey(server)) {
            String host = hostOf(server);
            h = host == null ? null : hosts.computeIfAbsent(host, Host::new);
            byServer.put(server, h);
        }
        if (h == null) {
            return Optional.empty();
        }
        if (h.collecting) {
            h.connected.add(peer.get());
        }
        Instant since = h.gone.isEmpty() ? null : h.gone.get(peer.get());
        return since == null ? Optional.empty()
                : Optional.of(new PoolView.Heard(SignalKind.DNS_MOVED, since, null, null));
    }

    @Override
    public long refresh(long now) {
        long next = Long.MAX_VALUE;
        for (Host h : hosts.values()) {
            h.collecting = !h.looked || now - h.nextAt >= 0;
            if (h.collecting) {
                h.looked = true;
                h.nextAt = now + intervalNanos;
                lookUp(h, now);
            }
            next = Math.min(next, h.nextAt - now);
        }
        return next;
    }

    private void lookUp(Host h, long now) {
        Set<InetAddress> found;
        try {
            InetAddress[] answer = resolver.resolve(h.name);
            found = answer == null ? Set.of() : new LinkedHashSet<>(Arrays.asList(answer));
        } catch (UnknownHostException | RuntimeException e) {
            failed(h, now, e.toString());
            return;
        }
        if (found.isEmpty()) {
            failed(h, now, "no address");
            return;
        }
        answeredLookups++;   // one writer: the increment is not contended
        if (h.failures > 0) {
            log.info("{} - {} resolves again ({}), after {} failed lookup{}", poolName, h.name, text(found),
                    h.failures, h.failures == 1 ? "" : "s");
            h.failures = 0;
        }
        h.lookups.addLast(new Lookup(now, found));
        // Kept: what covers the window, and at least the two last lookups.
        while (h.lookups.size() > 2 && now - h.lookups.peekFirst().at > windowNanos + 2 * intervalNanos) {
            h.lookups.removeFirst();
        }
        h.gone.keySet().removeIf(found::contains);
        for (InetAddress a : h.connected) {
            if (!h.gone.containsKey(a) && missing(h, a)) {
                h.gone.put(a, clock.instant());
                log.info("{} - {} moved: it no longer resolves to {} (now {}); the pool's connections to {} are asked "
                        + "to leave ({})", poolName, h.name, a.getHostAddress(), text(found), a.getHostAddress(),
                        SignalKind.DNS_MOVED.tag());
            }
        }
        h.connected.clear();
    }

    /**
     * @return true if the address is absent from the lookups of at least the window back, and there were at least
     *         two of them at least a second apart
     */
    private boolean missing(Host h, InetAddress a) {
        int misses = 0;
        long firstMiss = 0;
        long last = h.lookups.peekLast().at;
        for (var it = h.lookups.descendingIterator(); it.hasNext(); ) {
            Lookup l = it.next();
            if (l.addresses.contains(a)) {
                break;
            }
            misses++;
            firstMiss = l.at;
        }
        return misses >= 2 && last - firstMiss >= windowNanos;
    }

    private void failed(Host h, long now, String why) {
        failedLookups++;
        // Nothing changes: the name's last answers stand, and what they said is judged again after a good lookup.
        if (h.failures++ == 0 || now - h.lastWarn >= WARN_INTERVAL_NANOS) {
            h.lastWarn = now;
            log.warn("{} - DNS lookup of {} failed ({}{}): pool-goaway asks no connection to leave for it until a "
                    + "lookup succeeds", poolName, h.name, why, h.failures > 1 ? ", " + h.failures + " in a row" : "");
        }
    }

    private static String text(Set<InetAddress> addresses) {
        StringBuilder b = new StringBuilder();
        for (InetAddress a : addresses) {
            b.append(b.isEmpty() ? "" : ", ").append(a.getHostAddress());
        }
        return b.toString();
    }

    /** @return lookups done so far, failed ones included */
    long lookups() {
        return answeredLookups + failedLookups;
    }

    /** @return lookups that answered at least one address, so far */
    long answeredLookups() {
        return answeredLookups;
    }

    /** @return lookups that failed or answered no address, so far */
    long failedLookups() {
        return failedLookups;
    }

    /**
     * @param server a connection's server, {@code host:port}
     * @return the host, or null for an IP literal (or a server that names none)
     */
    static String hostOf(String server) {
        int colon = server == null ? -1 : server.lastIndexOf(':');
        String host = colon < 0 ? server : server.substring(0, colon);
        if (host == null || host.isEmpty() || host.indexOf(':') >= 0 || host.startsWith("[")
                || IPV4.matcher(host).matches()) {
            return null;
        }
        return host;
    }

    /**
     * The window's default: twice the JVM's DNS cache time ({@code networkaddress.cache.ttl}, else
     * {@code sun.net.inetaddr.ttl}, else the JVM's 30 s), so that a name answering with changing subsets shows at
     * least two answers within it.
     *
     * @return the default window
     */
    static Duration defaultWindow() {
        long ttl = cacheTtlSeconds();
        return Duration.ofSeconds(ttl > 0 ? 2 * ttl : 2);
    }

    /** @return the JVM's positive DNS cache time in seconds; -1 for forever, 0 for no caching */
    static long cacheTtlSeconds() {
        String v = Security.getProperty("networkaddress.cache.ttl");
        if (v == null) {
            v = System.getProperty("sun.net.inetaddr.ttl");
        }
        try {
            return v == null ? 30 : Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            return 30;
        }
    }
}
