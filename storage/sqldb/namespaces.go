package sqldb

import (
	"context"
	"time"

	"github.com/kvflow/kvflow"
)

// CreateNamespace records a namespace created explicitly. It returns
// ECONFLICT when ns was already created. The caller validates ns.
func (db *DB) CreateNamespace(ctx context.Context, ns string, now time.Time) error {
	_, err := db.X.ExecContext(ctx, db.Rebind(`INSERT INTO namespaces (id, created_at) VALUES (?, ?)`), ns, now.UnixMicro())
	if err = db.Err(err); kvflow.ErrorCode(err) == kvflow.ECONFLICT {
		return kvflow.Errorf(kvflow.ECONFLICT, "Namespace '%s' already exists.", ns)
	}
	return err
}

// CreatedNamespaces returns the namespaces created explicitly, sorted.
func (db *DB) CreatedNamespaces(ctx context.Context) ([]string, error) {
	ids := []string{}
	err := db.X.SelectContext(ctx, &ids, `SELECT id FROM namespaces ORDER BY id`)
	return ids, db.Err(err)
}

// DeleteNamespace forgets an explicitly created namespace and reports whether
// it was recorded. Its flows and KV entries are not touched.
func (db *DB) DeleteNamespace(ctx context.Context, ns string) (bool, error) {
	res, err := db.X.ExecContext(ctx, db.Rebind(`DELETE FROM namespaces WHERE id = ?`), ns)
	if err != nil {
		return false, db.Err(err)
	}
	n, err := res.RowsAffected()
	return n > 0, db.Err(err)
}
