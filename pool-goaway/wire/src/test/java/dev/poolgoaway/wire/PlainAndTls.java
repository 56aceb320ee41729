package dev.poolgoaway.wire;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A test that runs twice, over plain TCP and over TLS: its {@code boolean tls} parameter says which. The TLS socket
 * filters above the handshake, the plain one below it; every end-to-end signal must come through both.
 */
@Target(ElementType.METHOD)
@Retention(RetentionPolicy.RUNTIME)
@ParameterizedTest(name = "tls={0}")
@ValueSource(booleans = {false, true})
@interface PlainAndTls {
}
