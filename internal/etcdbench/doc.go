// Package etcdbench holds the side-by-side benchmark of kvflow's durable
// writes against etcd (issue 16); it has no code of its own.
package etcdbench
