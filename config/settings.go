package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
)

// Setting is one key of the configuration file.
type Setting struct {
	Key    string // as written in the file: dataDir, server.addr
	Env    string // the environment variable that overrides it, if any
	Secret bool   // printed redacted
}

// Settings lists every key of the configuration file, in file order.
var Settings = []Setting{
	{Key: "dataDir", Env: "KVFLOW_DATA_DIR"},
	{Key: "databaseURL", Env: "KVFLOW_DATABASE_URL", Secret: true},
	{Key: "storageURL", Env: "KVFLOW_STORAGE_URL", Secret: true},
	{Key: "secretKey", Env: "KVFLOW_SECRET_KEY", Secret: true},
	{Key: "secretKeyFile", Env: "KVFLOW_SECRET_KEY_FILE"},
	{Key: "secretOldKeys", Env: "KVFLOW_SECRET_OLD_KEYS", Secret: true},
	{Key: "allowedNamespaces", Env: "KVFLOW_ALLOWED_NAMESPACES"},
	{Key: "download.allow", Env: "KVFLOW_DOWNLOAD_ALLOW"},
	{Key: "server.addr", Env: "KVFLOW_ADDR"},
	{Key: "server.token", Env: "KVFLOW_API_TOKEN", Secret: true},
	{Key: "server.tokenFile", Env: "KVFLOW_API_TOKEN_FILE"},
	{Key: "server.insecure", Env: "KVFLOW_INSECURE"},
	{Key: "server.flows", Env: "KVFLOW_FLOWS"},
	{Key: "server.namespaces", Env: "KVFLOW_API_NAMESPACES"},
	{Key: "server.sweepInterval"},
	{Key: "server.sweepBatch"},
	{Key: "server.maxBodyBytes"},
	{Key: "server.shutdownTimeout"},
	{Key: "history.versions"},
	{Key: "history.maxAge"},
	{Key: "history.namespaces"},
	{Key: "history.changes"},
}

func envOf(key string) string {
	for _, s := range Settings {
		if s.Key == key {
			return s.Env
		}
	}
	return ""
}

// decodeFile reads a YAML configuration into c. It returns the line of
// every field the file gives, named as Validate names fields (server.addr,
// server.namespaces[1], history.namespaces[a].maxAge), and every problem,
// as FILE:LINE: KEY: what is wrong, in the file's own spelling, with the
// nearest known key for a misspelt one. Only a file that is not YAML is an
// error.
func decodeFile(file string, b []byte, c *Config) (map[string]int, []kvflow.FieldError, error) {
	d := &decoder{file: file, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return d.lines, nil, nil
		}
		return nil, nil, kvflow.Errorf(kvflow.EINVALID, "Configuration file %s is not YAML: %v.", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) > 0 {
		d.decodeStruct(doc.Content[0], reflect.ValueOf(c).Elem(), "", "", "")
	}
	return d.lines, d.problems, nil
}

// decoder walks a configuration file's nodes.
type decoder struct {
	file     string
	lines    map[string]int
	problems []kvflow.FieldError
}

func (d *decoder) add(n *yaml.Node, field, format string, args ...any) {
	d.problems = append(d.problems, kvflow.FieldError{File: d.file, Line: n.Line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// entries calls each with every key and value of the mapping n; a key
// given twice is a problem, and its second value is not read. key names n
// in the file's spelling ("" for the file itself), want what n must be.
func (d *decoder) entries(n *yaml.Node, key, want string, each func(k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		if key == "" {
			key = "the file"
		}
		d.add(n, key, "expected %s", want)
		return
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if line, dup := first[k.Value]; dup {
			d.add(k, join(key, k.Value), "given twice: line %d gives it first", line)
			continue
		}
		first[k.Value] = k.Line
		each(k, n.Content[i+1])
	}
}

// decodeStruct reads the mapping n into the struct v: key is n's path in
// the file's spelling (server), field as Validate names it, and hint what
// a "did you mean" puts before the nearest field name.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, key, field, hint string) {
	fields := map[string]int{}
	var names []string
	for i := 0; i < v.NumField(); i++ {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = i
			names = append(names, name)
		}
	}
	d.entries(n, key, "a mapping of settings (key: value)", func(k, val *yaml.Node) {
		name := join(key, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown setting %q", name)
			if near := kvflow.Nearest(k.Value, names); near != "" {
				msg += fmt.Sprintf("; did you mean %q?", hint+near)
			}
			d.add(k, "", "%s", msg)
			return
		}
		f, fieldName := v.Field(idx), join(field, k.Value)
		d.lines[fieldName] = k.Line
		switch {
		case f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Duration]():
			d.decodeStruct(val, f, name, fieldName, name+".")
		case f.Kind() == reflect.Map:
			d.decodeMap(val, f, name, fieldName)
		default:
			d.decodeValue(val, f, name, fieldName)
		}
	})
}

// decodeMap reads a map from a namespace: to a list of namespaces, or to
// a namespace's retention, whose misspelt fields are told as such.
func (d *decoder) decodeMap(n *yaml.Node, f reflect.Value, key, field string) {
	m := reflect.MakeMap(f.Type())
	d.entries(n, key, expected(f.Type()), func(k, val *yaml.Node) {
		elem := reflect.New(f.Type().Elem()).Elem()
		name, fieldName := join(key, k.Value), field+"["+k.Value+"]"
		d.lines[fieldName] = k.Line
		if elem.Kind() == reflect.Struct {
			d.decodeStruct(val, elem, name, fieldName, "")
		} else {
			d.decodeValue(val, elem, name, fieldName)
		}
		m.SetMapIndex(reflect.ValueOf(k.Value), elem)
	})
	f.Set(m)
}

// decodeValue reads a scalar or a list, noting the line of each item.
func (d *decoder) decodeValue(n *yaml.Node, f reflect.Value, key, field string) {
	if err := n.Decode(f.Addr().Interface()); err != nil {
		d.add(n, key, "%q is not %s", kvflow.Clip(nodeText(n)), expected(f.Type()))
		return
	}
	if n.Kind == yaml.SequenceNode {
		for i, item := range n.Content {
			d.lines[fmt.Sprintf("%s[%d]", field, i)] = item.Line
		}
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// expected names what a field's YAML must be, in a user's words.
func expected(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration such as 30s, 1m or 2h"
	case t.Kind() == reflect.String:
		return "text"
	case t.Kind() == reflect.Bool:
		return "a boolean (true or false)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "a whole number"
	case t.Kind() == reflect.Slice:
		return "a list of " + strings.TrimPrefix(expected(t.Elem()), "a ")
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Struct:
		return "a mapping from a namespace to {versions, maxAge}"
	case t.Kind() == reflect.Map:
		return "a mapping from a namespace to a list of namespaces"
	}
	return "of the expected type"
}

func nodeText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.Encode(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// Value is a setting's effective value as text, secrets redacted: a URL
// keeps its scheme, host and path, a token is shown as REDACTED. Without a
// secretKey it is where the key comes from (KeySource); history limits say
// when they are none.
func (c *Config) Value(s Setting) string {
	switch s.Key {
	case "secretKey":
		if c.SecretKey == "" {
			return c.KeySource()
		}
	case "history.versions":
		return versionsText(c.History.Versions)
	case "history.maxAge":
		return maxAgeText(c.History.MaxAge)
	}
	v := reflect.ValueOf(c).Elem()
	for _, part := range strings.Split(s.Key, ".") {
		for i := 0; i < v.NumField(); i++ {
			if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name == part {
				v = v.Field(i)
				break
			}
		}
	}
	var text string
	switch x := v.Interface().(type) {
	case time.Duration:
		text = x.String()
	case []string:
		text = strings.Join(x, ",")
	case map[string][]string:
		froms := make([]string, 0, len(x))
		for from := range x {
			froms = append(froms, from)
		}
		sort.Strings(froms)
		var rules []string
		for _, from := range froms {
			rules = append(rules, from+"="+strings.Join(x[from], ","))
		}
		text = strings.Join(rules, ";")
	case map[string]Retention:
		var rules []string
		for _, ns := range slices.Sorted(maps.Keys(x)) {
			rules = append(rules, fmt.Sprintf("%s: versions %s, maxAge %s", ns, versionsText(x[ns].Versions), maxAgeText(x[ns].MaxAge)))
		}
		text = strings.Join(rules, "; ")
	case bool:
		text = strconv.FormatBool(x)
	default:
		text = fmt.Sprint(x)
	}
	if s.Secret && text != "" {
		if strings.Contains(text, "://") {
			return RedactURL(text)
		}
		return "REDACTED"
	}
	return text
}

func versionsText(n int) string {
	if n < 0 {
		return strconv.Itoa(n) + " (no limit)"
	}
	return strconv.Itoa(n)
}

func maxAgeText(d time.Duration) string {
	if d == 0 {
		return "0s (no limit)"
	}
	return d.String()
}

// secretParams are the query parameters of a URL that hold credentials.
var secretParams = []string{"accessKey", "secretKey", "password", "sslpassword", "sessionToken"}

// RedactURL hides a URL's password and credential parameters, for logs and
// `kvflow config show`.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "REDACTED"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	q := u.Query()
	changed := false
	for k := range q {
		for _, p := range secretParams {
			if strings.EqualFold(k, p) {
				q.Set(k, "REDACTED")
				changed = true
			}
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}
