package dev.poolgoaway.testkit.drill;

import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.ProxiedConnection;

/**
 * The pool connects through the test kit's proxy, which sees every connection open and close, and which sends GoAway
 * at the old server's smart shutdown.
 */
final class ProxyRoute implements Route {

    private final GoAwayProxy proxy;

    ProxyRoute(GoAwayProxy proxy) {
        this.proxy = proxy;
    }

    @Override
    public String currentTarget() {
        return proxy.currentUpstream().toString();
    }

    @Override
    public boolean sendsTo(PostgresUpstream server) {
        return is(proxy.currentUpstream().getHostString(), proxy.currentUpstream().getPort(), server);
    }

    @Override
    public void switchTo(PostgresUpstream server) {
        proxy.retarget(server);
    }

    @Override
    public void smartShutdown(PostgresUpstream server) {
        proxy.smartShutdown(server);
    }

    @Override
    public List<Open> openOn(PostgresUpstream server) {
        return proxy.openConnections().stream().filter(c -> on(c, server))
                .map(c -> new Open(c.id(), c.connectedAt())).toList();
    }

    @Override
    public Optional<Instant> lastClose(List<Open> connections) {
        Set<Long> ids = connections.stream().map(Open::id).collect(Collectors.toSet());
        return proxy.connections().stream().filter(c -> ids.contains(c.id()))
                .flatMap(c -> c.closedAt().stream()).max(Instant::compareTo);
    }

    @Override
    public List<Instant> openedOn(PostgresUpstream server) {
        return proxy.connections().stream().filter(c -> on(c, server)).map(ProxiedConnection::connectedAt).toList();
    }

    private static boolean on(ProxiedConnection c, PostgresUpstream server) {
        // A connection still in its startup has no server yet.
        return c.upstream() != null && is(c.upstream().getHostString(), c.upstream().getPort(), server);
    }

    private static boolean is(String host, int port, PostgresUpstream server) {
        return port == server.port() && host.equals(server.host());
    }
}
