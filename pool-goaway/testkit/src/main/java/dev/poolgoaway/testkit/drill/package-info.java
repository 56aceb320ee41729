/**
 * Switchover drills: steady load through an application's pool while a {@link dev.poolgoaway.testkit.GoAwayProxy}
 * (or a re-pointed {@linkplain dev.poolgoaway.testkit.DnsName DNS name}) moves the database from one server to
 * another, measured from both sides (the application's requests and the connections the servers have). {@link dev.poolgoaway.testkit.drill.SwitchoverDrill} runs one;
 * {@link dev.poolgoaway.testkit.drill.DrillResult} is what it saw.
 */
package dev.poolgoaway.testkit.drill;
