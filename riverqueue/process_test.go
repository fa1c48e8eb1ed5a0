package riverqueue_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvflow/kvflow/internal/testsvc"
)

func TestMain(m *testing.M) { os.Exit(testsvc.Main(m)) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// kvflowBin builds the kvflow command once for the package's tests.
func kvflowBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kvflow-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kvflow")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/kvflow/kvflow/cmd/kvflow").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cluster is a set of kvflow processes on one database and object store.
type cluster struct {
	t    testing.TB
	mu   *sync.Mutex // guards api and apis for processes started together
	env  []string
	api  string   // base URL of the first server
	apis []string // base URLs of every server started
	db   string   // PostgreSQL URL, "" on the embedded default
}

// at returns c talking to the server at api.
func (c *cluster) at(api string) *cluster {
	cc := *c
	cc.api = api
	return &cc
}

// newCluster prepares the environment: PostgreSQL + MinIO, or the embedded
// default (SQLite + a directory) in a fresh data directory.
func newCluster(t testing.TB, backend string) *cluster {
	t.Helper()
	env := []string{"KVFLOW_CONFIG=", "KVFLOW_ALLOWED_NAMESPACES=", "KVFLOW_API_TOKEN=", "KVFLOW_DATA_DIR=" + t.TempDir(),
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	db := ""
	switch backend {
	case "postgres":
		db = testsvc.PostgresURL(t)
		env = append(env, "KVFLOW_DATABASE_URL="+db, "KVFLOW_STORAGE_URL="+testsvc.S3URL(t))
	case "embedded":
		env = append(env, "KVFLOW_DATABASE_URL=", "KVFLOW_STORAGE_URL=")
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	return &cluster{t: t, mu: &sync.Mutex{}, env: env, db: db}
}

// proc is one running kvflow process.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// start runs `kvflow args…` and waits until it is ready: a server answers
// /healthz, a worker logs "worker started".
func (c *cluster) start(name string, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	var addr string
	if args[0] == "server" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
		args = append(args, "--addr", addr)
	}
	p.cmd = exec.Command(kvflowBin(c.t), args...)
	p.cmd.Env = c.env
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "worker started") || strings.Contains(sc.Text(), "server listening") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	began := time.Now()
	c.t.Cleanup(func() {
		stopAt := time.Now()
		defer func() { c.t.Logf("%s stopped in %s", name, time.Since(stopAt)) }()
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(40 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if c.t.Failed() {
			c.t.Logf("--- %s output:\n%s", p.name, p.output())
		}
	})
	select {
	case <-ready:
	case <-p.done:
		c.t.Fatalf("%s exited at start:\n%s", name, p.output())
	case <-time.After(60 * time.Second):
		c.t.Fatalf("%s not ready after 60s:\n%s", name, p.output())
	}
	c.t.Logf("%s ready in %s", name, time.Since(began))
	if addr != "" {
		c.mu.Lock()
		c.apis = append(c.apis, "http://"+addr)
		if c.api == "" {
			c.api = "http://" + addr
		}
		c.mu.Unlock()
	}
	return p
}

// startTogether starts processes at the same moment, each named by its
// first argument and index, and waits until all are ready.
func (c *cluster) startTogether(argss ...[]string) []*proc {
	c.t.Helper()
	procs := make([]*proc, len(argss))
	var wg sync.WaitGroup
	for i, args := range argss {
		wg.Add(1)
		go func() {
			defer wg.Done() // start's Fatal ends this goroutine, failing the test
			procs[i] = c.start(fmt.Sprintf("%s%d", args[0], i), args...)
		}()
	}
	wg.Wait()
	if c.t.Failed() {
		c.t.FailNow()
	}
	return procs
}

// kill9 kills a process with SIGKILL and waits for it.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// stop sends SIGTERM and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM", p.name)
	}
}

type response struct {
	Status int
	Body   string
}

func (c *cluster) do(method, path, body string, headers ...string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.api+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, string(b)}
}

func (c *cluster) createFlow(src string) {
	c.t.Helper()
	if r := c.do("POST", "/api/v1/flows", src, "Content-Type: application/x-yaml"); r.Status != 201 {
		c.t.Fatalf("create flow: %d %s", r.Status, r.Body)
	}
}

type attempt struct {
	State  string `json:"state"`
	Worker string `json:"worker"`
}

type taskRun struct {
	ID       string    `json:"id"`
	TaskID   string    `json:"taskId"`
	State    string    `json:"state"`
	Attempts []attempt `json:"attempts"`
}

type execution struct {
	ID       string    `json:"id"`
	FlowID   string    `json:"flowId"`
	State    string    `json:"state"`
	Worker   string    `json:"worker"`
	TaskRuns []taskRun `json:"taskRuns"`
	Error    string    `json:"error"`
	Trigger  *struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		Variables map[string]any `json:"variables"`
	} `json:"trigger"`
	Outputs map[string]any `json:"outputs"`
	Logs    []struct {
		Message string `json:"message"`
	} `json:"logs"`
}

func (c *cluster) execute(ns, flow, query string) execution {
	c.t.Helper()
	r := c.do("POST", "/api/v1/executions/"+ns+"/"+flow+query, "")
	if r.Status != 200 {
		c.t.Fatalf("execute %s/%s: %d %s", ns, flow, r.Status, r.Body)
	}
	var ex execution
	if err := json.Unmarshal([]byte(r.Body), &ex); err != nil {
		c.t.Fatal(err)
	}
	return ex
}

func (c *cluster) execution(id string) execution {
	c.t.Helper()
	r := c.do("GET", "/api/v1/executions/"+id, "")
	if r.Status != 200 {
		c.t.Fatalf("get execution %s: %d %s", id, r.Status, r.Body)
	}
	var ex execution
	if err := json.Unmarshal([]byte(r.Body), &ex); err != nil {
		c.t.Fatal(err)
	}
	return ex
}

func (c *cluster) logs(id string) string {
	c.t.Helper()
	return c.do("GET", "/api/v1/executions/"+id+"/logs", "").Body
}

// list returns the executions of a flow, newest first.
func (c *cluster) list(ns, flow string) []execution {
	c.t.Helper()
	r := c.do("GET", "/api/v1/executions?limit=1000&namespace="+ns+"&flowId="+flow, "")
	if r.Status != 200 {
		c.t.Fatalf("list executions: %d %s", r.Status, r.Body)
	}
	var out []execution
	json.Unmarshal([]byte(r.Body), &out)
	return out
}

// waitAll waits until every listed execution is terminal.
func (c *cluster) waitAll(ns, flow string, n int, within time.Duration) []execution {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		list := c.list(ns, flow)
		over := 0
		for _, ex := range list {
			switch ex.State {
			case "SUCCESS", "WARNING", "FAILED", "KILLED":
				over++
			}
		}
		if len(list) >= n && over == len(list) {
			return list
		}
		if time.Now().After(deadline) {
			var open []string
			for _, ex := range list {
				if ex.State == "CREATED" || ex.State == "RUNNING" {
					full := c.execution(ex.ID)
					open = append(open, fmt.Sprintf("%s %s worker=%q tasks=%+v logs=%q", ex.ID, ex.State, full.Worker, full.TaskRuns, c.logs(ex.ID)))
				}
			}
			c.t.Fatalf("after %s: %d executions, %d over, want %d over; not over: %v", within, len(list), over, n, open)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kvNumber reads a NUMBER entry.
func (c *cluster) kvNumber(ns, key string) float64 {
	c.t.Helper()
	r := c.do("GET", "/api/v1/namespaces/"+ns+"/kv/"+key, "")
	var v struct {
		Value float64 `json:"value"`
	}
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &v) != nil {
		c.t.Fatalf("kv %s/%s: %d %s", ns, key, r.Status, r.Body)
	}
	return v.Value
}
