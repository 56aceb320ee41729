package dev.poolgoaway.wire;

/** A socket of the wire layer: it records what the server says into a {@link ConnectionSignals}. */
interface SignalSource {

    /** @return the signals of the connection this socket carries */
    ConnectionSignals signals();
}
