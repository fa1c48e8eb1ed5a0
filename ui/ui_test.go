package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler_RootServesIndexWithSecurityHeaders(t *testing.T) {
	w := get(t, Handler(), "/ui/")
	if got, want := w.Code, 200; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got := w.Header().Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
		t.Fatalf("Content-Type = %q, want text/html", got)
	}
	if !strings.Contains(w.Body.String(), `<script type="module" src="app.js">`) {
		t.Fatalf("index does not load app.js:\n%s", w.Body.String())
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "ETag"} {
		if w.Header().Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestHandler_ModulesAreJavaScript(t *testing.T) {
	w := get(t, Handler(), "/ui/app.js")
	if got := w.Header().Get("Content-Type"); !strings.Contains(got, "javascript") {
		t.Fatalf("Content-Type = %q, want a JavaScript type (browsers refuse modules otherwise)", got)
	}
}

func TestHandler_StrippedPrefixWorksToo(t *testing.T) {
	if got, want := get(t, Handler(), "/style.css").Code, 200; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
}

func TestHandler_SameETag_NotModified(t *testing.T) {
	h := Handler()
	etag := get(t, h, "/ui/kv.js").Header().Get("ETag")
	if got, want := get(t, h, "/ui/kv.js", "If-None-Match", etag).Code, http.StatusNotModified; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
}

func TestHandler_UnknownFile_NotFound(t *testing.T) {
	for _, p := range []string{"/ui/nope.js", "/ui/../ui.go", "/ui/static/index.html"} {
		if got, want := get(t, Handler(), p).Code, 404; got != want {
			t.Errorf("%s: status = %d, want %d", p, got, want)
		}
	}
}

func TestHandler_NoSlash_RedirectsToUI(t *testing.T) {
	w := get(t, Handler(), "/ui")
	if got, want := w.Header().Get("Location"), "/ui/"; w.Code/100 != 3 || got != want {
		t.Fatalf("status %d Location %q, want a redirect to %q", w.Code, got, want)
	}
}

func TestHandler_Post_MethodNotAllowed(t *testing.T) {
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest("POST", "/ui/", nil))
	if got, want := w.Code, http.StatusMethodNotAllowed; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
}

// Every relative import and every file index.html names must be embedded,
// or the page breaks only in a browser.
func TestEmbed_EveryReferencedFileExists(t *testing.T) {
	ref := regexp.MustCompile(`(?:from\s+|import\s*\(\s*|src=|href=)["']\./?([\w.-]+\.(?:js|css|svg))["']`)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := static.ReadFile(p)
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			if _, err := fs.Stat(static, "static/"+m[1]); err != nil {
				t.Errorf("%s refers to %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
