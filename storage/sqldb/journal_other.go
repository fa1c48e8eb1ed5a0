//go:build !linux

package sqldb

import "os"

func preallocate(*os.File, int64) error { return nil }

func datasync(f *os.File) error { return f.Sync() }

// tryLock reports false: without Linux's flock the journal is not used and
// every commit syncs SQLite itself.
func tryLock(*os.File) (bool, error) { return false, nil }

// lockWait does nothing: without Linux's flock, processes that start at
// once on a new file may race to migrate it.
func lockWait(*os.File) error { return nil }
