package dev.poolgoaway.spring;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

import org.springframework.boot.convert.DurationStyle;

import dev.poolgoaway.hikari.DrainEpisode;
import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.GoAwayEvictor;
import dev.poolgoaway.wire.LogText;
import dev.poolgoaway.wire.PgGoAway;

/**
 * What the health indicator shows, whichever Spring Boot's health API carries it: the state of each pool's
 * evictor, by data source bean name. Always UP: a drain is the pool doing what the server asked, not a fault, and a
 * pool pool-goaway cannot drain is plain HikariCP, which works; that shows as its {@code problem} detail.
 */
final class PoolGoAwayHealth {

    private PoolGoAwayHealth() {
    }

    /**
     * Every {@code HikariDataSource} bean, installed or not: a pre-check before a switchover finds each pool here,
     * and a pool pool-goaway left alone shows {@code installed: false} with its {@code reason}.
     */
    static Map<String, Object> details(PoolGoAwayInstaller installer) {
        Map<String, Object> details = new TreeMap<>();
        installer.evictors().forEach((beanName, evictor) -> details.put(beanName, details(evictor)));
        installer.notInstalled().forEach((beanName, reason) -> details.put(beanName,
                Map.of("installed", false, "reason", reason)));
        return details;
    }

    private static Map<String, Object> details(GoAwayEvictor evictor) {
        Map<String, Object> pool = new LinkedHashMap<>();
        pool.put("installed", true);
        pool.put("pool", evictor.poolName());
        pool.put("running", evictor.running());
        pool.put("draining", evictor.draining());
        // Which leave signals besides the server's own this pool listens for.
        pool.put("dnsLeave", evictor.settings().dnsLeave());
        // While they fail, a switchover by DNS goes unseen: a count that grows is the alarm.
        pool.put("dnsLookupFailures", evictor.dnsLookupFailures());
        pool.put("flaggedConnections", evictor.flaggedConnections());
        pool.put("publicApiFallback", evictor.publicApiFallback());
        // Servers (of the whole JVM) that fail on the raised startup request: no GoAway from them.
        pool.put("serversRefusingGoAway", PgGoAway.serversRefusingGoAway());
        // A drain waiting for replacements that fail or do not come, or for a suspended pool: nothing more leaves.
        pool.put("stalled", evictor.stalled());
        evictor.stallReason().ifPresent(reason -> pool.put("stallReason", reason));
        pool.put("replacementFailures", evictor.replacementFailures());
        evictor.lastReplacementFailure().ifPresent(failure -> pool.put("lastReplacementFailure", failure));
        // Why pool-goaway does not drain this pool, if it does not: the pool, the cause and the fix.
        evictor.problem().ifPresent(problem -> pool.put("problem", problem));
        evictor.lastDrain().ifPresent(drain -> pool.put("lastDrain", details(drain)));
        pool.put("settings", details(evictor.settings()));
        return pool;
    }

    /** The pool's effective settings (its own {@code poolgoaway.pools} entry over the application's), as properties. */
    private static Map<String, Object> details(EvictorSettings settings) {
        Map<String, Object> effective = new LinkedHashMap<>();
        effective.put("tick", text(settings.tick()));
        effective.put("drain-window", text(settings.drainWindow()));
        effective.put("max-replacements-in-flight", settings.maxReplacementsInFlight().orElse(0));
        effective.put("max-extra-connections", settings.maxExtraConnections());
        settings.stragglerDeadline().ifPresent(d -> effective.put("straggler-deadline", text(d)));
        effective.put("abort-stragglers", settings.abortStragglers());
        effective.put("signals", settings.signals().stream()
                .map(s -> s.name().toLowerCase().replace('_', '-')).toList());
        effective.put("dns-leave", settings.dnsLeave());
        effective.put("dns-leave-interval", text(settings.dnsLeaveInterval()));
        settings.dnsLeaveWindow().ifPresent(w -> effective.put("dns-leave-window", text(w)));
        return effective;
    }

    private static String text(Duration duration) {
        return DurationStyle.SIMPLE.print(duration);
    }

    private static Map<String, Object> details(DrainEpisode drain) {
        Map<String, Object> episode = new LinkedHashMap<>();
        episode.put("startedAt", drain.startedAt().toString());
        episode.put("endedAt", drain.endedAt().toString());
        episode.put("durationMillis", drain.duration().toMillis());
        episode.put("servers", drain.servers());
        episode.put("connections", drain.connections());
        episode.put("signals", drain.kinds());
        if (!drain.goAwayGrants().isEmpty()) {
            episode.put("goAwayBy", drain.goAwayGrants());
        }
        drain.adminMessage().ifPresent(m -> episode.put("adminMessage", LogText.sanitize(m)));
        return episode;
    }
}
