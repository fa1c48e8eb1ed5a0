package sqldb_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/testsvc"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs/fstest"
	"github.com/kvflow/kvflow/storage/sqldb"
	"github.com/kvflow/kvflow/storage/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

func TestFeedPosition_AdvancedInTheConsumersTransaction(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			const ns = "company.team"
			db := sqldbtest.Open(t, dialect)
			s := storage.New(db, fstest.NewBucket(t), storage.Options{})
			for i := 0; i < 3; i++ {
				if _, err := s.Set(ctx, ns, fmt.Sprint("k", i), storage.String("v"), storage.SetOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			pos, err := db.FeedPosition(ctx, db.X, "trigger-1", ns)
			if err != nil || pos != 0 {
				t.Fatalf("first position = %d, %v", pos, err)
			}
			cs, _ := s.Changes(ctx, ns, pos, 2)
			// A consumer that fails rolls back: its position does not move.
			tx, err := db.X.BeginTxx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.AdvanceFeed(ctx, tx, "trigger-1", ns, pos, cs[1].Seq); err != nil {
				t.Fatal(err)
			}
			tx.Rollback()
			if pos, _ := db.FeedPosition(ctx, db.X, "trigger-1", ns); pos != 0 {
				t.Fatalf("position after a rollback = %d, want 0", pos)
			}
			// Two processes race from the same position: one wins, the other gets ECONFLICT.
			var wins, conflicts int
			for i := 0; i < 2; i++ {
				tx, err := db.X.BeginTxx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				err = db.AdvanceFeed(ctx, tx, "trigger-1", ns, 0, cs[1].Seq)
				switch kvflow.ErrorCode(err) {
				case "":
					wins++
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
				case kvflow.ECONFLICT:
					conflicts++
					tx.Rollback()
				default:
					t.Fatal(err)
				}
			}
			if wins != 1 || conflicts != 1 {
				t.Errorf("wins %d, conflicts %d; want 1 and 1", wins, conflicts)
			}
			if pos, _ := db.FeedPosition(ctx, db.X, "trigger-1", ns); pos != 2 {
				t.Errorf("position = %d, want 2", pos)
			}
			if err := db.AdvanceFeed(ctx, db.X, "trigger-1", ns, 2, 3); err != nil {
				t.Errorf("advance from 2 = %v", err)
			}
			if pos, _ := db.FeedPosition(ctx, db.X, "trigger-2", ns); pos != 0 {
				t.Errorf("another consumer's position = %d, want its own 0", pos)
			}
		})
	}
}

// Many consumers racing for one feed position, each in its own transaction:
// every committed advance moved from a distinct position, and the position
// ends at the number of committed advances (none lost, none doubled).
func TestFeedPosition_ManyRacingConsumers_EachStepOnce(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			const ns, consumer = "company.team", "trigger-race"
			db := sqldbtest.Open(t, dialect)
			var mu sync.Mutex
			from := map[int64]int{} // committed advances by the position they moved from
			var wg sync.WaitGroup
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 30; i++ {
						tx, err := db.X.BeginTxx(ctx, nil)
						if err != nil {
							t.Error(err)
							return
						}
						pos, err := db.FeedPosition(ctx, tx, consumer, ns)
						if err == nil {
							err = db.AdvanceFeed(ctx, tx, consumer, ns, pos, pos+1)
						}
						if err == nil {
							err = db.Err(tx.Commit())
						} else {
							tx.Rollback()
						}
						switch code := kvflow.ErrorCode(err); {
						case err == nil:
							mu.Lock()
							from[pos]++
							mu.Unlock()
						case code == kvflow.ECONFLICT, code == kvflow.EUNAVAILABLE: // lost the race, or SQLite busy: not committed
						default:
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			for p, n := range from {
				if n != 1 {
					t.Errorf("%d committed advances from position %d, want 1", n, p)
				}
			}
			pos, err := db.FeedPosition(ctx, db.X, consumer, ns)
			if err != nil || pos != int64(len(from)) || len(from) == 0 {
				t.Errorf("position %d, %v; want %d committed advances (more than 0)", pos, err, len(from))
			}
			t.Logf("%d of 480 attempts committed", len(from))
		})
	}
}
