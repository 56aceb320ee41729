package dev.poolgoaway.hikari;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * One drain of a pool: from the first signal to the close of the last connection asked to leave, as the evictor saw
 * them (the wire layer's arrival time of the first signal; the moment the last connection was closed, or found closed
 * by the next pass: at most one drain pass, 50 ms, late).
 *
 * @param servers      the servers that asked ({@code host:port})
 * @param connections  how many connections were asked to leave
 * @param kinds        how many signals of each kind ({@code goaway}, {@code disconnect_requested},
 *                     {@code admin_terminated}, {@code server_closed})
 * @param goAwayGrants how the servers had agreed to send the GoAways of this drain ({@code protocol 3.3},
 *                     {@code protocol extension}: {@link dev.poolgoaway.wire.GoAwayGrant#description()}); empty
 *                     when no GoAway was among the signals
 * @param startedAt    when the first signal of the drain arrived
 * @param endedAt      when the last connection asked to leave was closed
 * @param adminMessage the administrator's own words in the first termination that had them (from the primary text
 *                     or DETAIL: {@link dev.poolgoaway.wire.Termination#adminMessage()}), unsanitized (use
 *                     {@code LogText.sanitize})
 */
public record DrainEpisode(List<String> servers, int connections, Map<String, Integer> kinds,
        List<String> goAwayGrants, Instant startedAt, Instant endedAt, Optional<String> adminMessage) {

    /** @return how long the drain took */
    public Duration duration() {
        return Duration.between(startedAt, endedAt);
    }
}
