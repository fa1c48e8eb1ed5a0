package testsvc_test

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kvflow/kvflow/internal/testsvc"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

func TestNewPostgres_StopStart_AnswersAgainWithData(t *testing.T) {
	p := testsvc.NewPostgres(t)
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("Postgres listens on %s, want 127.0.0.1", p.Addr())
	}
	db := openDB(t, p.URL())
	mustExec(t, db, "CREATE TABLE kept (v text)", "INSERT INTO kept VALUES ('before')")
	pid := p.PID()

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("postmaster pid %d still alive after Stop", pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("Ping succeeded with PostgreSQL stopped")
	}

	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRow("SELECT v FROM kept").Scan(&v); err != nil || v != "before" {
		t.Fatalf("after restart: %q, %v; want the row written before", v, err)
	}
}

func TestNewMinIO_StopStart_AnswersAgainWithData(t *testing.T) {
	m := testsvc.NewMinIO(t)
	client := minioClient(t, m.Endpoint(), m.AccessKey(), m.SecretKey())
	ctx := context.Background()
	if err := client.MakeBucket(ctx, "kept", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	live := "http://" + m.Endpoint() + "/minio/health/live"
	if err := get(live); err != nil {
		t.Fatal(err)
	}

	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if m.PID() != 0 {
		t.Fatal("PID reported after Stop")
	}
	if err := get(live); err == nil {
		t.Fatal("MinIO answered after Stop")
	}

	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if ok, err := client.BucketExists(ctx, "kept"); err != nil || !ok {
		t.Fatalf("after restart: bucket exists = %v, %v; want the bucket made before", ok, err)
	}
}

func TestPostgresURL_FreshDatabaseDroppedAtCleanup(t *testing.T) {
	admin := openDB(t, os.Getenv(testsvc.EnvPostgres))
	var urls [2]string
	t.Run("Use", func(t *testing.T) {
		for i := range urls {
			urls[i] = testsvc.PostgresURL(t)
		}
		if urls[0] == urls[1] {
			t.Fatalf("two calls gave the same database %s", urls[0])
		}
		a, b := openDB(t, urls[0]), openDB(t, urls[1])
		mustExec(t, a, "CREATE TABLE only_in_a (x int)")
		var n int
		if err := b.QueryRow("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil || n != 0 {
			t.Fatalf("table of one database seen in the other: %d, %v", n, err)
		}
		a.Close()
		b.Close()
	})
	for _, u := range urls {
		name := strings.TrimPrefix(mustParse(t, u).Path, "/")
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
			t.Fatalf("database %s: count %d, %v after cleanup; want dropped", name, n, err)
		}
	}
}

func TestS3URL_FreshBucketRemovedAtCleanup(t *testing.T) {
	u := mustParse(t, os.Getenv(testsvc.EnvS3))
	secret, _ := u.User.Password()
	client := minioClient(t, u.Host, u.User.Username(), secret)
	ctx := context.Background()
	var bucket string
	t.Run("Use", func(t *testing.T) {
		s3u := mustParse(t, testsvc.S3URL(t))
		bucket = s3u.Host
		if s3u.Scheme != "s3" || s3u.Query().Get("endpoint") != u.Host || s3u.Query().Get("secure") != "false" {
			t.Fatalf("S3URL = %s, want s3://BUCKET/PREFIX?endpoint=%s&secure=false...", s3u.Redacted(), u.Host)
		}
		if ok, err := client.BucketExists(ctx, bucket); err != nil || !ok {
			t.Fatalf("bucket %s exists = %v, %v", bucket, ok, err)
		}
		// Objects left behind must not keep the bucket alive.
		if _, err := client.PutObject(ctx, bucket, "objects/left", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if ok, err := client.BucketExists(ctx, bucket); err != nil || ok {
		t.Fatalf("bucket %s exists = %v, %v after cleanup; want removed", bucket, ok, err)
	}
}

func TestServices_BindLoopbackOnly(t *testing.T) {
	for _, env := range []string{testsvc.EnvPostgres, testsvc.EnvS3} {
		u := mustParse(t, os.Getenv(env))
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			t.Fatal(err)
		}
		if host != "127.0.0.1" {
			t.Errorf("%s names host %s, want 127.0.0.1", env, host)
		}
		// The same port on another local address must refuse.
		for _, ip := range otherAddrs(t) {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), time.Second)
			if err == nil {
				c.Close()
				t.Errorf("%s: port %s also answers on %s", env, port, ip)
			}
		}
	}
}

// otherAddrs lists this machine's non-loopback IPv4 addresses.
func otherAddrs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping %s: %v", url, err)
	}
	return db
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func minioClient(t *testing.T, endpoint, access, secret string) *minio.Client {
	t.Helper()
	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(u string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &url.Error{Op: "GET", URL: u, Err: os.ErrInvalid}
	}
	return nil
}
