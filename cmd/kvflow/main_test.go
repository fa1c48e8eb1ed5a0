package main

import (
	"os"
	"testing"

	"github.com/kvflow/kvflow/internal/testsvc"
)

// TestMain starts PostgreSQL and MinIO when the environment names none: the
// process tests run kvflow on both backend pairs.
func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }
