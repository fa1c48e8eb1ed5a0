package etcdbench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testsvc"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

// target is one server under test, reached over HTTP/JSON.
type target struct {
	name     string
	put, get func(hc *http.Client, key string, value []byte) error
}

// BenchmarkEtcd compares etcd (Debian's etcd-server, single node, its JSON
// gateway) with `kvflow server` on the embedded default and on PostgreSQL +
// MinIO: sequential PUT and GET latency, and PUT throughput with 16
// concurrent writers, 1 KiB values. Sub-benchmarks interleave per -count, so
// every figure has its etcd beside it from the same moment; each round
// starts fresh servers.
//
//	go run ./internal/testsvc/cmd/testsvc run -- go test ./internal/etcdbench -run '^$' -bench . -benchtime 2000x -count 5
func BenchmarkEtcd(b *testing.B) {
	targets, err := setup(b)
	if err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 1024)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	for _, t := range targets {
		b.Run("PUT/"+t.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := t.put(hc, fmt.Sprintf("seq%04d", i%1000), value); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			report(b, lat)
		})
		b.Run("GET/"+t.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := t.get(hc, fmt.Sprintf("seq%04d", i%1000), value); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			report(b, lat)
		})
		b.Run("PUT16/"+t.name, func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			start := time.Now()
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := int(next.Add(1)); i <= b.N; i = int(next.Add(1)) {
						if err := t.put(hc, fmt.Sprintf("c%02d-%03d", w, i%500), value); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "put/s")
		})
	}
}

func report(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func setup(b *testing.B) ([]target, error) {
	dir := b.TempDir()
	etcd, err := testsvc.EtcdBin()
	if err != nil {
		return nil, err
	}
	start := func(logName string, env []string, bin string, args ...string) error {
		log, err := os.Create(filepath.Join(dir, logName))
		if err != nil {
			return err
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %v", bin, err)
		}
		b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); log.Close() })
		return nil
	}
	ep, peer := freeAddr(), freeAddr()
	if err := start("etcd.log", nil, etcd, "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+ep, "--advertise-client-urls", "http://"+ep,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "default=http://"+peer); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "kvflow")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/kvflow/kvflow/cmd/kvflow").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	embedded := freeAddr()
	if err := start("embedded.log", []string{"KVFLOW_DATA_DIR=" + filepath.Join(dir, "embedded")},
		bin, "server", "--addr", embedded); err != nil {
		return nil, err
	}
	pg := freeAddr()
	if err := start("pg.log", []string{"KVFLOW_DATABASE_URL=" + testsvc.PostgresURL(b), "KVFLOW_STORAGE_URL=" + testsvc.S3URL(b)},
		bin, "server", "--addr", pg); err != nil {
		return nil, err
	}
	for _, a := range []string{"http://" + ep + "/health", "http://" + embedded + "/readyz", "http://" + pg + "/readyz"} {
		if err := waitUp(a); err != nil {
			return nil, err
		}
	}
	return []target{etcdTarget("http://" + ep), kvflowTarget("embedded", "http://"+embedded), kvflowTarget("postgres+minio", "http://"+pg)}, nil
}

func etcdTarget(base string) target {
	b64 := base64.StdEncoding.EncodeToString
	return target{
		name: "etcd",
		put: func(hc *http.Client, key string, value []byte) error {
			body, _ := json.Marshal(map[string]string{"key": b64([]byte(key)), "value": b64(value)})
			return post(hc, base+"/v3/kv/put", body, nil)
		},
		get: func(hc *http.Client, key string, value []byte) error {
			body, _ := json.Marshal(map[string]string{"key": b64([]byte(key))})
			var out struct {
				KVs []struct{ Value string } `json:"kvs"`
			}
			if err := post(hc, base+"/v3/kv/range", body, &out); err != nil {
				return err
			}
			if len(out.KVs) != 1 {
				return fmt.Errorf("etcd range %s: %d values", key, len(out.KVs))
			}
			return nil
		},
	}
}

func kvflowTarget(name, base string) target {
	url := base + "/api/v1/namespaces/bench/kv/"
	return target{
		name: name,
		put: func(hc *http.Client, key string, value []byte) error {
			body, _ := json.Marshal(string(value))
			req, _ := http.NewRequest("PUT", url+key, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			return do(hc, req, nil)
		},
		get: func(hc *http.Client, key string, value []byte) error {
			req, _ := http.NewRequest("GET", url+key, nil)
			var out struct{ Value string }
			if err := do(hc, req, &out); err != nil {
				return err
			}
			if len(out.Value) != len(value) {
				return fmt.Errorf("kvflow GET %s: %d bytes", key, len(out.Value))
			}
			return nil
		},
	}
}

func post(hc *http.Client, url string, body []byte, out any) error {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return do(hc, req, out)
}

func do(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitUp(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 in 30 s", strings.TrimSuffix(url, "/"))
}
