package all_test

import (
	"os"
	"testing"

	"github.com/kvflow/kvflow/internal/testsvc"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }
