package storage_test

import (
	"os"
	"testing"

	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage/storagetest"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

func TestStore_SQLiteAndDir(t *testing.T) {
	storagetest.StoreAcceptance(t, storagetest.LocalPair)
}

func TestStore_PostgresAndMinIO(t *testing.T) {
	storagetest.StoreAcceptance(t, storagetest.ServicePair)
}
