package dev.poolgoaway.testkit;

import java.time.Duration;
import java.time.Instant;

/**
 * The end of a smart shutdown: when it was asked for, when the last client left.
 *
 * @param requestedAt          when the smart shutdown was asked for
 * @param completedAt          when the last client connection ended
 * @param connectionsAtRequest how many client connections were open when it was asked for
 */
public record ShutdownCompletion(Instant requestedAt, Instant completedAt, int connectionsAtRequest) {

    /** @return how long the drain took */
    public Duration drainTime() {
        return Duration.between(requestedAt, completedAt);
    }
}
