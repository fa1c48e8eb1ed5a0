package storage_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/storage"
)

func TestExpandPaths_NestsDottedPaths_RefusesOverlaps(t *testing.T) {
	got, err := storage.ExpandPaths(map[string]any{"a.b": 1, "a.c.d": "x", "e": true})
	want := map[string]any{"a": map[string]any{"b": 1, "c": map[string]any{"d": "x"}}, "e": true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ExpandPaths = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []map[string]any{{"a": 1, "a.b": 2}, {"a..b": 1}, {"": 1}, {"a.": 1}} {
		if _, err := storage.ExpandPaths(bad); err == nil || !strings.Contains(err.Error(), "'") {
			t.Errorf("ExpandPaths(%v) = %v, want an error naming the path", bad, err)
		}
	}
}
