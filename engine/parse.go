package engine

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// idRe is the rule for flow, task, input and output ids.
var idRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]*$`)

// The spec structs mirror the YAML; they are decoded strictly and turned
// into the model (Flow, Task...) by Parse.
type flowSpec struct {
	ID          string            `yaml:"id" required:"true"`
	Namespace   string            `yaml:"namespace" required:"true"`
	Description string            `yaml:"description"`
	Labels      map[string]string `yaml:"labels"`
	Inputs      []inputSpec       `yaml:"inputs"`
	Variables   map[string]any    `yaml:"variables"`
	Tasks       []yaml.Node       `yaml:"tasks" required:"true"`
	Errors      []yaml.Node       `yaml:"errors"`
	Outputs     []outputSpec      `yaml:"outputs"`
	KVSnapshot  bool              `yaml:"kvSnapshot"`
	Triggers    []yaml.Node       `yaml:"triggers"`
	Concurrency *concurrencySpec  `yaml:"concurrency"`
}

type inputSpec struct {
	ID          string    `yaml:"id" required:"true"`
	Type        string    `yaml:"type" required:"true"`
	Defaults    yaml.Node `yaml:"defaults"`
	Required    *bool     `yaml:"required"`
	Description string    `yaml:"description"`
	DisplayName string    `yaml:"displayName"`
}

type outputSpec struct {
	ID          string    `yaml:"id" required:"true"`
	Type        string    `yaml:"type"`
	Value       yaml.Node `yaml:"value" required:"true"`
	Description string    `yaml:"description"`
}

// taskSpec holds the properties every task has (taskrun.Reserved).
type taskSpec struct {
	ID           string     `yaml:"id" required:"true"`
	Type         string     `yaml:"type" required:"true"`
	Description  string     `yaml:"description"`
	Disabled     bool       `yaml:"disabled"`
	Timeout      string     `yaml:"timeout"`
	Retry        *retrySpec `yaml:"retry"`
	AllowFailure bool       `yaml:"allowFailure"`
}

type retrySpec struct {
	Type           string `yaml:"type" required:"true"`
	Interval       string `yaml:"interval"`
	MaxAttempt     *int   `yaml:"maxAttempt"`
	MaxAttempts    *int   `yaml:"maxAttempts"`
	MaxDuration    string `yaml:"maxDuration"`
	WarningOnRetry bool   `yaml:"warningOnRetry"`
}

// Parse reads a flow from YAML and checks it against reg (plugin.Default
// when nil). Every problem found is returned at once as ValidationErrors,
// each placed by file, line and field path.
func Parse(file string, src []byte, reg *plugin.Registry) (*Flow, error) {
	if reg == nil {
		reg = plugin.Default
	}
	p := &parser{errs: errs{file: file}, reg: reg, ids: map[string]string{}, order: map[string]int{}, lines: strings.Split(string(src), "\n")}
	f := p.flow(src)
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	f.File, f.Source = file, string(src)
	return f, nil
}

type parser struct {
	errs errs
	reg  *plugin.Registry
	ids  map[string]string // task id → path of its first use

	order map[string]int // task id → document order, for outputs.<id> in templates
	refs  []tplRef       // outputs.<id> found in templates (templates.go)
	tpls  []tplCheck     // templates to compile (templates.go)
	lines []string       // the file, to place template errors in block scalars
}

func (p *parser) flow(src []byte) *Flow {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line, msg := yamlError(err)
		p.errs.add(line, "", "invalid YAML: %s", msg)
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.errs.add(0, "", "the file is empty; a flow needs id, namespace and tasks")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errs.add(root.Line, "", "a flow is a map with id, namespace and tasks, not %s", taskrun.DescribeNode(root))
		return nil
	}
	var spec flowSpec
	p.errs.addField(taskrun.DecodeStrict(root, &spec, ""))
	lines := keyLines(root)

	f := &Flow{ID: spec.ID, Namespace: spec.Namespace, Description: spec.Description, Labels: spec.Labels, Variables: spec.Variables, KVSnapshot: spec.KVSnapshot}
	if spec.ID != "" && !idRe.MatchString(spec.ID) {
		p.errs.add(lines["id"], "id", "%q is not a valid id: it must start with a letter or a digit and contain only letters, digits, underscores (_) and hyphens (-)", kvflow.Clip(spec.ID))
	}
	if spec.Namespace != "" {
		if err := storage.ValidateNamespace(spec.Namespace); err != nil {
			p.errs.add(lines["namespace"], "namespace", "%s", kvflow.ErrorMessage(err))
		}
	}
	if _, ok := lines["tasks"]; ok && len(spec.Tasks) == 0 {
		p.errs.add(lines["tasks"], "tasks", "a flow needs at least one task")
	}
	f.Inputs = p.inputs(spec.Inputs, valueNode(root, "inputs"))
	f.Tasks = p.tasks(spec.Tasks, "tasks")
	f.Errors = p.tasks(spec.Errors, "errors")
	f.Outputs = p.outputs(spec.Outputs, valueNode(root, "outputs"))
	p.checkTemplates(valueNode(root, "variables"), "variables", -1)
	for i, o := range item0(valueNode(root, "outputs")) {
		p.checkTemplates(valueNode(o, "value"), fmt.Sprintf("outputs[%d].value", i), -1)
	}
	for i, t := range item0(valueNode(root, "triggers")) { // rendered when it fires, before any task: from 0
		p.checkTemplates(valueNode(t, "inputs"), fmt.Sprintf("triggers[%d].inputs", i), 0)
	}
	p.compileTemplates()
	p.checkRefs()
	f.Triggers = p.triggers(valueNode(root, "triggers"))
	p.triggerInputs(valueNode(root, "triggers"), f.Inputs)
	f.Concurrency = p.concurrency(spec.Concurrency, valueNode(root, "concurrency"))
	return f
}

func (p *parser) inputs(specs []inputSpec, list *yaml.Node) []Input {
	var out []Input
	seen := map[string]bool{}
	for i, s := range specs {
		path := fmt.Sprintf("inputs[%d]", i)
		n := item(list, i)
		lines := keyLines(n)
		in := Input{ID: s.ID, Description: s.Description, Required: s.Required == nil || *s.Required}
		if s.ID != "" {
			if !idRe.MatchString(s.ID) {
				p.errs.add(lines["id"], path+".id", "%q is not a valid id: it must start with a letter or a digit and contain only letters, digits, underscores (_) and hyphens (-)", kvflow.Clip(s.ID))
			} else if seen[s.ID] {
				p.errs.add(lines["id"], path+".id", "duplicate input id %q", s.ID)
			}
			seen[s.ID] = true
		}
		if s.Type != "" {
			t, err := parseInputType(s.Type)
			if err != nil {
				p.errs.add(lines["type"], path+".type", "%s", err)
			}
			in.Type = t
		}
		if s.Defaults.Kind != 0 && !(s.Defaults.Kind == yaml.ScalarNode && s.Defaults.Tag == "!!null") {
			var raw any
			if err := s.Defaults.Decode(&raw); err != nil {
				p.errs.add(s.Defaults.Line, path+".defaults", "%s", err)
			} else if in.Type != "" {
				v, err := convertInput(in.Type, raw)
				if err != nil {
					p.errs.add(s.Defaults.Line, path+".defaults", "%s", err)
				}
				in.Defaults, in.HasDefault = v, true
			}
		}
		out = append(out, in)
	}
	return out
}

func (p *parser) outputs(specs []outputSpec, list *yaml.Node) []Output {
	var out []Output
	seen := map[string]bool{}
	for i, s := range specs {
		path := fmt.Sprintf("outputs[%d]", i)
		lines := keyLines(item(list, i))
		o := Output{ID: s.ID}
		if s.ID != "" {
			if !idRe.MatchString(s.ID) {
				p.errs.add(lines["id"], path+".id", "%q is not a valid id: it must start with a letter or a digit and contain only letters, digits, underscores (_) and hyphens (-)", kvflow.Clip(s.ID))
			} else if seen[s.ID] {
				p.errs.add(lines["id"], path+".id", "duplicate output id %q", s.ID)
			}
			seen[s.ID] = true
		}
		if s.Type != "" {
			t, err := parseInputType(s.Type)
			if err != nil {
				p.errs.add(lines["type"], path+".type", "%s", err)
			}
			o.Type = t
		}
		if s.Value.Kind != 0 {
			if err := s.Value.Decode(&o.Value); err != nil {
				p.errs.add(s.Value.Line, path+".value", "%s", err)
			}
		}
		out = append(out, o)
	}
	return out
}

// tasks parses a list of task nodes found at path.
func (p *parser) tasks(nodes []yaml.Node, path string) []*Task {
	var out []*Task
	for i := range nodes {
		if t := p.task(&nodes[i], fmt.Sprintf("%s[%d]", path, i)); t != nil {
			out = append(out, t)
		}
	}
	return out
}

// task parses one task: the common properties into taskSpec, the flowable
// branches recursively, the rest into the task type's own struct.
func (p *parser) task(n *yaml.Node, path string) *Task {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		p.errs.add(n.Line, path, "a task is a map with id and type, not %s", taskrun.DescribeNode(n))
		return nil
	}
	common := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	props := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		dst := props
		for _, r := range taskrun.Reserved {
			if n.Content[i].Value == r {
				dst = common
			}
		}
		dst.Content = append(dst.Content, n.Content[i], n.Content[i+1])
	}
	var spec taskSpec
	p.errs.addField(taskrun.DecodeStrict(common, &spec, path))
	lines := keyLines(common)
	t := &Task{ID: spec.ID, Type: spec.Type, Description: spec.Description, Disabled: spec.Disabled, AllowFailure: spec.AllowFailure, Line: n.Line, Path: path}

	if spec.ID != "" {
		if !idRe.MatchString(spec.ID) {
			p.errs.add(lines["id"], path+".id", "%q is not a valid task id: it must start with a letter or a digit and contain only letters, digits, underscores (_) and hyphens (-)", kvflow.Clip(spec.ID))
		} else if first, dup := p.ids[spec.ID]; dup {
			p.errs.add(lines["id"], path+".id", "duplicate task id %q, already used at %s", spec.ID, first)
		} else {
			p.ids[spec.ID] = path
			p.order[spec.ID] = len(p.order)
		}
	}
	if spec.Timeout != "" {
		d, err := storage.ParseDuration(strings.TrimSpace(spec.Timeout))
		switch {
		case err != nil:
			p.errs.add(lines["timeout"], path+".timeout", "%q is not an ISO-8601 duration such as PT30S or PT5M", kvflow.Clip(spec.Timeout))
		case d.D <= 0:
			p.errs.add(lines["timeout"], path+".timeout", "%q must be positive", kvflow.Clip(spec.Timeout))
		default:
			t.Timeout = d.D
		}
	}
	if spec.Retry != nil {
		t.Retry = p.retry(spec.Retry, valueNode(common, "retry"), path+".retry")
	}

	if spec.Type == "" {
		return t
	}
	flowable, isFlowable := flowables[spec.Type]
	def, ok := p.reg.Lookup(spec.Type)
	if isFlowable {
		def, ok = flowable.def, true
	}
	if !ok {
		p.errs.add(lines["type"], path+".type", "unknown task type %q%s", kvflow.Clip(spec.Type), p.suggest(spec.Type))
		return t
	}
	var branches map[string][]*Task
	if isFlowable {
		if t.Retry != nil {
			p.errs.add(lines["retry"], path+".retry", "retry is not supported on the flowable task %s; set it on the tasks inside", spec.Type)
		}
		branches = map[string][]*Task{}
		kept := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: props.Line, Column: props.Column}
		for i := 0; i+1 < len(props.Content); i += 2 {
			k, v := props.Content[i], props.Content[i+1]
			if !flowable.hasBranch(k.Value) {
				kept.Content = append(kept.Content, k, v)
				continue
			}
			bp := path + "." + k.Value
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			if v.Kind != yaml.SequenceNode {
				p.errs.add(v.Line, bp, "expected a list of tasks, got %s", taskrun.DescribeNode(v))
				continue
			}
			list := make([]yaml.Node, len(v.Content))
			for j, c := range v.Content {
				list[j] = *c
			}
			branches[k.Value] = p.tasks(list, bp)
			if len(v.Content) == 0 && flowable.required(k.Value) {
				p.errs.add(v.Line, bp, "needs at least one task")
			}
		}
		for _, b := range flowable.branches {
			if _, ok := keyLines(props)[b.key]; !ok && b.required {
				p.errs.add(n.Line, path+"."+b.key, "missing required property %q", b.key)
			}
		}
		props = kept
	}
	impl, fe := taskrun.DecodeTask(def, props, path)
	p.errs.addField(fe)
	from := len(p.order) // the task's own order is len-1; it cannot read its own outputs
	if o, ok := p.order[spec.ID]; ok {
		from = o
	}
	p.checkTemplates(props, path, from)
	if impl == nil {
		return t
	}
	if isFlowable {
		flowable.set(impl, branches)
	}
	t.Impl = impl
	return t
}

func (p *parser) retry(s *retrySpec, n *yaml.Node, path string) *Retry {
	lines := keyLines(n)
	r := &Retry{WarningOnRetry: s.WarningOnRetry}
	if s.Type != "" && !strings.EqualFold(s.Type, "constant") {
		p.errs.add(lines["type"], path+".type", "retry type %q is not supported; expected constant", kvflow.Clip(s.Type))
	}
	duration := func(key, text string, required bool) time.Duration {
		if text == "" {
			if required {
				p.errs.add(line(n), path+"."+key, "missing required property %q", key)
			}
			return 0
		}
		d, err := storage.ParseDuration(strings.TrimSpace(text))
		if err != nil {
			p.errs.add(lines[key], path+"."+key, "%q is not an ISO-8601 duration such as PT1S or PT5M", kvflow.Clip(text))
			return 0
		}
		if d.D <= 0 {
			p.errs.add(lines[key], path+"."+key, "%q must be positive", kvflow.Clip(text))
			return 0
		}
		return d.D
	}
	r.Interval = duration("interval", s.Interval, true)
	r.MaxDuration = duration("maxDuration", s.MaxDuration, false)
	switch {
	case s.MaxAttempt != nil && s.MaxAttempts != nil:
		p.errs.add(lines["maxAttempts"], path+".maxAttempts", "give maxAttempts or maxAttempt, not both")
	case s.MaxAttempt != nil:
		r.MaxAttempts = *s.MaxAttempt
	case s.MaxAttempts != nil:
		r.MaxAttempts = *s.MaxAttempts
	case r.MaxDuration == 0:
		p.errs.add(line(n), path+".maxAttempts", "missing required property \"maxAttempts\" (or maxDuration)")
	default:
		r.MaxAttempts = int(^uint(0) >> 1)
	}
	if (s.MaxAttempt != nil || s.MaxAttempts != nil) && r.MaxAttempts < 1 {
		key := "maxAttempts"
		if s.MaxAttempt != nil {
			key = "maxAttempt"
		}
		p.errs.add(lines[key], path+"."+key, "must be at least 1, not %d", r.MaxAttempts)
	}
	return r
}

// suggest names the known type a misspelt typ may mean, else lists them
// (as kvflow task run does).
func (p *parser) suggest(typ string) string { return plugin.SuggestType(typ, p.knownTypes()) }

func (p *parser) knownTypes() []string {
	types := p.reg.Types()
	for name := range flowables {
		if _, ok := p.reg.Lookup(name); !ok {
			types = append(types, name)
		}
	}
	return types
}

// yamlError splits a yaml syntax error into its line and message.
func yamlError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			var line int
			if _, err := fmt.Sscanf(num, "%d", &line); err == nil {
				return line, after
			}
		}
	}
	return 0, msg
}

// keyLines maps each key of a mapping node to the line of its value.
func keyLines(n *yaml.Node) map[string]int {
	out := map[string]int{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1].Line
	}
	return out
}

// valueNode returns the value of key in a mapping node, or nil.
func valueNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// item0 returns the elements of a sequence node.
func item0(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// item returns the i-th element of a sequence node, or nil.
func item(n *yaml.Node, i int) *yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return nil
	}
	return n.Content[i]
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}
