/**
 * Switchover drills: steady load through an application's pool while a {@link dev.poolgoaway.testkit.GoAwayProxy}
 * moves the database from one server to another, measured from both sides (the application's requests and the
 * proxy's connections). {@link dev.poolgoaway.testkit.drill.SwitchoverDrill} runs one;
 * {@link dev.poolgoaway.testkit.drill.DrillResult} is what it saw.
 */
package dev.poolgoaway.testkit.drill;
