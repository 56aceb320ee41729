package dev.poolgoaway.hikari;

/**
 * Where a connection asked to leave was when it was closed; the tag is the {@code state} of the
 * {@code poolgoaway.evictions} meter.
 */
enum EvictionState {
    /** Closed by the evictor while idle (reserved, so no borrower could race). */
    IDLE("idle"),
    /** Closed by HikariCP when its borrower returned it (the evictor had marked it for that), or aborted. */
    IN_USE("in_use");

    private final String tag;

    EvictionState(String tag) {
        this.tag = tag;
    }

    /** @return the metric tag */
    String tag() {
        return tag;
    }
}
