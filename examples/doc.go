// Package examples holds example flows: the KV Store docs' flows given an id
// and a namespace, and a few more. examples_test.go runs every one; embed/
// shows the engine inside another Go program.
package examples
