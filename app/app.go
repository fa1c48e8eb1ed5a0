// Package app opens what a configuration names: the metadata database, the
// object store and the KV store on top of them.
package app

import (
	"context"
	"io"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/config"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs"
	"github.com/kvflow/kvflow/storage/s3"
	"github.com/kvflow/kvflow/storage/sqldb"
)

// App is an opened configuration.
type App struct {
	Config config.Config
	DB     *sqldb.DB
	Bucket storage.Bucket
	Store  *storage.Store
}

// Open connects to the database and the object store the configuration names.
func Open(ctx context.Context, cfg config.Config) (*App, error) {
	bucket, err := OpenBucket(ctx, cfg.StorageURL)
	if err != nil {
		return nil, err
	}
	keys, err := cfg.Keys()
	if err != nil {
		return nil, err
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if jb, ok := bucket.(storage.JournalBucket); ok {
		if err := db.AttachBucket(ctx, jb); err != nil {
			db.Close()
			return nil, err
		}
	}
	return &App{Config: cfg, DB: db, Bucket: bucket, Store: storage.New(db, bucket, storage.Options{Keys: keys})}, nil
}

// OpenBucket opens s3://bucket/prefix?endpoint=… or file:///dir.
func OpenBucket(ctx context.Context, rawURL string) (storage.Bucket, error) {
	switch {
	case strings.HasPrefix(rawURL, "s3://"):
		cfg, err := s3.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return s3.New(ctx, cfg)
	case strings.HasPrefix(rawURL, "file://"):
		dir, err := fs.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return fs.New(dir)
	}
	return nil, kvflow.Errorf(kvflow.EINVALID, "Storage URL %q is not supported: expected s3://bucket/prefix?endpoint=host:port or file:///dir.", rawURL)
}

// Close releases the database connections and waits for the bucket's
// background work.
func (a *App) Close() error {
	if c, ok := a.Bucket.(io.Closer); ok {
		c.Close()
	}
	return a.DB.Close()
}
