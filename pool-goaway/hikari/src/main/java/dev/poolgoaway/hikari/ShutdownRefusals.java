package dev.poolgoaway.hikari;

import java.net.InetAddress;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.poolgoaway.wire.ConnectionSignals;
import dev.poolgoaway.wire.PgGoAway;
import dev.poolgoaway.wire.Termination;

/**
 * Asks a pool's connections to a server to leave when that server refuses a new connection of the pool with 57P03
 * ("the database system is shutting down"): a PostgreSQL in smart shutdown refuses new sessions and tells its open
 * ones nothing, and waits for them to end. Released PostgreSQL says no more than that; a multi-host URL or a load
 * balancer then lands the replacements elsewhere, and if they land on the same server again they are refused, which
 * the drain's pacing notices (no replacement, no further connection goes).
 *
 * <p>The wire layer tells it of every refused startup of the pool's group, with the refusing address; the
 * connections judged are those pooled to that address when the loop next runs.
 */
final class ShutdownRefusals implements LeaveSource {

    private static final Logger log = LoggerFactory.getLogger(ShutdownRefusals.class);
    static final String SHUTTING_DOWN = "57P03";
    private static final long LOG_INTERVAL_NANOS = TimeUnit.MINUTES.toNanos(1);

    private final String poolName;
    private final AutoCloseable registration;
    /** Refusals heard on connecting threads since the loop's last run. */
    private final Map<InetAddress, Instant> pending = new ConcurrentHashMap<>();
    /** Refusals the loop's current run judges connections by. */
    private final Map<InetAddress, Instant> current = new HashMap<>();
    private final Map<InetAddress, Long> logged = new HashMap<>();

    ShutdownRefusals(String poolName, String group, Runnable wake) {
        this.poolName = poolName;
        this.registration = PgGoAway.onStartupRefused(group, s -> {
            if (refusedAsShuttingDown(s)) {
                pending.putIfAbsent(s.peerAddress().get(), s.termination().get().at());
                wake.run();
            }
        });
    }

    private static boolean refusedAsShuttingDown(ConnectionSignals s) {
        Optional<Termination> t = s.termination();
        return t.isPresent() && SHUTTING_DOWN.equals(t.get().sqlState()) && s.peerAddress().isPresent();
    }

    @Override
    public long refresh(long now) {
        current.clear();
        for (InetAddress a : pending.keySet()) {
            Instant at = pending.remove(a);
            if (at != null) {
                current.put(a, at);
                Long last = logged.get(a);
                if (last == null || now - last >= LOG_INTERVAL_NANOS) {
                    logged.put(a, now);
                    log.info("{} - {} refused a new connection: the database system is shutting down ({}); the "
                            + "pool's connections to it are asked to leave ({})", poolName, a.getHostAddress(),
                            SHUTTING_DOWN, SignalKind.SERVER_SHUTTING_DOWN.tag());
                }
            }
        }
        return Long.MAX_VALUE;
    }

    @Override
    public Optional<PoolView.Heard> heard(PoolView.Signals connection) {
        if (current.isEmpty()) {
            return Optional.empty();
        }
        Instant at = connection.peerAddress().map(current::get).orElse(null);
        return at == null ? Optional.empty()
                : Optional.of(new PoolView.Heard(SignalKind.SERVER_SHUTTING_DOWN, at, null, null));
    }

    @Override
    public void close() {
        try {
            registration.close();
        } catch (Exception e) {
            // Removing a map entry does not fail.
        }
    }
}
