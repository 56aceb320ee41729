package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;

import org.junit.jupiter.api.Test;

/** The memory of peers that fail on the raised startup: bounded, self-cleaning, learning at most one failure. */
class ProtocolUpgradeTest {

    /** A peer learned the way the layer learns it: the raised attempt failed and pgjdbc's own request got through. */
    private static void learn(ProtocolUpgrade upgrade, String peer) {
        ProtocolUpgrade.Attempt raised = upgrade.begin(peer, 2, true);
        assertTrue(raised.failed(null, "closed the connection without a reply"));
        upgrade.replay(raised).ready();
    }

    @Test
    void aNewPeerBeyondTheBoundEvictsTheOldestInsteadOfBeingForgotten() {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        int peers = ProtocolUpgrade.MAX_REMEMBERED_PEERS + 1;
        for (int i = 0; i < peers; i++) {
            learn(upgrade, "pooler-" + i + ":6432");
        }
        assertEquals(ProtocolUpgrade.MAX_REMEMBERED_PEERS, upgrade.rememberedPeers());
        assertTrue(upgrade.refuses("pooler-" + (peers - 1) + ":6432"), "the newest is remembered");
        assertFalse(upgrade.refuses("pooler-0:6432"), "the oldest made room");
        assertTrue(upgrade.refuses("pooler-1:6432"));
    }

    @Test
    void expiredRefusalsArePurgedOnInsert() {
        Map<String, Long> refusing = new HashMap<>();
        ProtocolUpgrade upgrade = new ProtocolUpgrade(refusing);
        for (int i = 0; i < 100; i++) {
            refusing.put("gone-" + i + ":5432", System.nanoTime() - 1);
        }
        learn(upgrade, "pgbouncer:6432");
        assertEquals(1, upgrade.rememberedPeers());
    }

    @Test
    void aFailureAfterAChallengeOutsideClass28IsRememberedAtOnce() {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        upgrade.begin("pgpool:9999", 0, true).failedAfterChallenge("XX000",
                "invalid messages length(40) for BackendKeyData");
        assertTrue(upgrade.refuses("pgpool:9999"));
        assertEquals(0, upgrade.begin("pgpool:9999", 0, true).sentMinor(), "pgjdbc's own request next time");
    }

    @Test
    void aWrongPasswordAfterAChallengeIsNotAboutTheVersion() {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        upgrade.begin("pgpool:9999", 0, true).failedAfterChallenge("28P01", "password authentication failed");
        ProtocolUpgrade.Attempt readyFirst = upgrade.begin("other:9999", 0, true);
        readyFirst.ready();
        readyFirst.failedAfterChallenge("57P01", "terminating connection due to administrator command");
        assertEquals(0, upgrade.rememberedPeers());
    }
}
