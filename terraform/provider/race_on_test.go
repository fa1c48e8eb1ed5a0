//go:build race

package provider

// raceEnabled: the acceptance tests build the provider with -race too.
const raceEnabled = true
