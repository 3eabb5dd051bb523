//go:build race

package bolt

// raceEnabled is true when the tests run under the race detector, which
// makes a 100,000-key Apply several times slower.
const raceEnabled = true
