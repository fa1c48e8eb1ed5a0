// Package testsvc starts real, throwaway PostgreSQL and MinIO servers for
// tests: on 127.0.0.1 only, with data in temp dirs, stopped by PID.
//
// A package whose tests need them calls Main from TestMain; each test then
// takes a fresh database with PostgresURL and a fresh bucket with S3URL.
// Under `go run ./internal/testsvc/cmd/testsvc run -- go test ./...` one
// pair of servers is shared by every package through the environment.
// Nothing is ever skipped: a service that cannot start fails the run.
package testsvc

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Environment variables naming the shared servers.
const (
	// EnvPostgres is a PostgreSQL admin URL; tests create databases in it.
	EnvPostgres = "KVFLOW_TEST_POSTGRES_URL"
	// EnvS3 is http://ACCESS:SECRET@HOST:PORT of a MinIO (or S3) endpoint;
	// tests create buckets in it.
	EnvS3 = "KVFLOW_TEST_S3_URL"
)

// Main runs the tests of a package, first starting whichever of PostgreSQL
// and MinIO the environment does not already name, and stopping them after.
// Use it as: func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }
func Main(m *testing.M) int {
	if fuzzing() {
		return m.Run() // fuzz targets need no services, and each fuzz worker runs TestMain
	}
	svcs, err := StartMissing()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsvc: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := svcs.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "testsvc: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// fuzzing reports whether this process is a `go test -fuzz` run or worker.
func fuzzing() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzz") {
			return true
		}
	}
	return false
}

// Services are the servers StartMissing started.
type Services struct {
	Postgres *Postgres // nil when EnvPostgres was set
	MinIO    *MinIO    // nil when EnvS3 was set

	// How long each took to start, installs included.
	PostgresStartup, MinIOStartup time.Duration
}

// StartMissing starts, side by side, the servers that EnvPostgres and EnvS3
// do not name, and sets those variables for this process.
func StartMissing() (*Services, error) {
	s := &Services{}
	errc := make(chan error, 2)
	n := 0
	if os.Getenv(EnvPostgres) == "" {
		n++
		go func() {
			start := time.Now()
			p, err := StartPostgres()
			s.Postgres, s.PostgresStartup = p, time.Since(start)
			errc <- err
		}()
	}
	if os.Getenv(EnvS3) == "" {
		n++
		go func() {
			start := time.Now()
			m, err := StartMinIO()
			s.MinIO, s.MinIOStartup = m, time.Since(start)
			errc <- err
		}()
	}
	var errs []string
	for range n {
		if err := <-errc; err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		s.Close()
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	if s.Postgres != nil {
		os.Setenv(EnvPostgres, s.Postgres.URL())
	}
	if s.MinIO != nil {
		os.Setenv(EnvS3, s.MinIO.URL())
	}
	return s, nil
}

// Close stops the servers and removes their dirs.
func (s *Services) Close() error {
	var errs []string
	if s.Postgres != nil {
		if err := s.Postgres.Close(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if s.MinIO != nil {
		if err := s.MinIO.Close(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

const notStarted = "is not set: call testsvc.Main from TestMain, or run the tests under `go run ./internal/testsvc/cmd/testsvc run -- go test ./...`"

// PostgresURL creates an empty database on the shared server, drops it at
// cleanup, and returns its URL.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		tb.Fatalf("testsvc: %s %s", EnvPostgres, notStarted)
	}
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("testsvc: %s is not a URL: %v", EnvPostgres, err)
	}
	name := uniqueName(tb, "_", 63)
	// FILE_COPY (PostgreSQL 15+) is about four times faster than the default
	// here, as fsync is off.
	err = adminExec(admin, "CREATE DATABASE "+name+" STRATEGY FILE_COPY")
	if err != nil && strings.Contains(err.Error(), "STRATEGY") {
		err = adminExec(admin, "CREATE DATABASE "+name)
	}
	if err != nil {
		tb.Fatalf("testsvc: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := adminExec(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("testsvc: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func adminExec(admin, stmt string) error {
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// S3URL creates an empty bucket on the shared MinIO, removes it with its
// objects at cleanup, and returns a storage URL for it with prefix "objects".
func S3URL(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv(EnvS3)
	if admin == "" {
		tb.Fatalf("testsvc: %s %s", EnvS3, notStarted)
	}
	u, err := url.Parse(admin)
	if err != nil || u.Host == "" || u.User == nil {
		tb.Fatalf("testsvc: %s must look like http://ACCESS:SECRET@HOST:PORT", EnvS3)
	}
	secret, _ := u.User.Password()
	secure := u.Scheme == "https"
	client, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(u.User.Username(), secret, ""),
		Secure: secure,
	})
	if err != nil {
		tb.Fatalf("testsvc: %v", err)
	}
	bucket := uniqueName(tb, "-", 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		tb.Fatalf("testsvc: create bucket %s at %s: %v", bucket, u.Host, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := client.RemoveBucketWithOptions(ctx, bucket, minio.RemoveBucketOptions{ForceDelete: true})
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
			tb.Errorf("testsvc: remove bucket %s: %v", bucket, err)
		}
	})
	return s3URL(u.Host, u.User.Username(), secret, secure, bucket, "objects")
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// uniqueName makes a database or bucket name from the test's name and a
// random suffix: lowercase letters, digits and sep, at most max long.
func uniqueName(tb testing.TB, sep string, max int) string {
	suffix := sep + randomHex(4)
	base := strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(tb.Name()), sep), sep)
	if n := max - len(suffix) - 2; len(base) > n {
		base = strings.TrimRight(base[:n], sep)
	}
	return "t" + sep + base + suffix
}
