// Package all registers every built-in task type in plugin.Default: import
// it for its side effect.
package all

import (
	_ "github.com/kvflow/kvflow/tasks/core" // Log, Return, Download
	_ "github.com/kvflow/kvflow/tasks/kv"   // Set, Get, GetKeys, Delete, PurgeKV
)
